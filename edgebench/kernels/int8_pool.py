"""NHWC integer max pool: one vector of channels per output pixel, a vector max per tap.

Why our own: TVM's max_pool2d on an NHWC uint8 tensor, with the single tuning trial the int8
glue gets, took ~2 ms of ResNet-18's ~10 ms int8 run (results/int8/amx/profile-*.md), more
than any conv; a pool over 56x56x64 bytes is a few tens of microseconds of vector maxes.

Padding needs no padded copy and no compare: with dilation 1 a window is a contiguous range
that always holds at least one real element (PyTorch requires padding <= kernel / 2; a
ceil_mode window starts inside the input), so clamping an out-of-range row or column to the
nearest edge reads an element the window holds anyway, and the max is unchanged (exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgebench.kernels.int8_conv import OPAQUE
from edgebench.kernels.layer import Layer, int8_reason

VECTOR_BYTES = 64  # channels per vector at most (a zmm; LLVM splits it into NEON q registers)


@dataclass(frozen=True)
class PoolShape:
    """An NHWC max pool: input n, h, w, c; window, stride, padding (top/left = bottom/right,
    as aten's), ceil_mode."""

    n: int
    h: int
    w: int
    c: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False

    def _out(self, size: int, k: int, s: int, p: int) -> int:
        span = size + 2 * p - k
        out = (span + (s - 1 if self.ceil_mode else 0)) // s + 1
        if self.ceil_mode and (out - 1) * s >= size + p:  # aten: the last window starts inside
            out -= 1
        return out

    @property
    def oh(self) -> int:
        return self._out(self.h, self.kernel[0], self.stride[0], self.padding[0])

    @property
    def ow(self) -> int:
        return self._out(self.w, self.kernel[1], self.stride[1], self.padding[1])


def max_window(T, s: PoolShape, x, n, oh, ow, c):
    """The max of NHWC x over output pixel (oh, ow)'s window at channel c, as a TIR expression
    built when the kernel is parsed (the integer and the FP32 max pool share it). Taps are
    clamped into the image, not padded: a clamped tap repeats a pixel inside the same window
    (pool_fits), which leaves the max unchanged."""
    (KH, KW), (SH, SW), (PH, PW) = s.kernel, s.stride, s.padding
    best = None
    for kh in range(KH):
        ih = T.max(T.min(oh * SH + (kh - PH), s.h - 1), 0)
        for kw in range(KW):
            iw = T.max(T.min(ow * SW + (kw - PW), s.w - 1), 0)
            best = x[n, ih, iw, c] if best is None else T.max(best, x[n, ih, iw, c])
    return best


def pool_fits(s: PoolShape, dilation: tuple[int, int] = (1, 1)) -> bool:
    """Dilation 1 (contiguous windows, see the module doc) and padding at most half the
    window (aten's own rule, checked again here)."""
    return dilation == (1, 1) and all(2 * p <= k for p, k in zip(s.padding, s.kernel, strict=True))


def max_pool_kernel(s: PoolShape, dtype: str):
    """TIR PrimFunc (x[n, h, w, c] dtype, y[n, oh, ow, c] dtype): the max over each window."""
    from tvm.script import tirx as T

    if dtype not in ("uint8", "int8"):
        raise ValueError(f"max_pool_kernel: unsupported dtype {dtype!r}")
    if not pool_fits(s):
        raise ValueError(f"max_pool_kernel: {s} needs padding <= kernel / 2")
    N, H, W, C = s.n, s.h, s.w, s.c
    OH, OW = s.oh, s.ow
    VL = math.gcd(C, VECTOR_BYTES)  # channels per vector: the largest power of 2 dividing C

    def window(x, n, oh, ow, c):
        return max_window(T, s, x, n, oh, ow, c)

    # One input, one output: Relax's reshape detection (RewriteDataflowReshape) analyses such
    # a call_tir and asserts its body is a block, so the loops sit in a root block, which the
    # parse-time TIR verifier does not accept (the build lowers it like any TE function's).
    @T.prim_func(check_well_formed=False)
    def max_pool_nhwc(x: T.Buffer((N, H, W, C), dtype), y: T.Buffer((N, OH, OW, C), dtype)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        with T.sblock("root"):
            for n, oh, ow, cb in T.grid(N, OH, OW, C // VL):
                for lane in T.vectorized(VL):
                    y[n, oh, ow, cb * VL + lane] = window(x, n, oh, ow, cb * VL + lane)

    return max_pool_nhwc


# ---- the registry's interface (kernels/registry.py): layer.quant is the PoolShape ----
NAME = "int8_pool"
INSTRUCTION = None  # plain vector maxes: no instruction to check
KERNEL = "max_pool"


def fits(layer: Layer, target) -> str | None:
    reason = int8_reason(layer, ("max_pool2d",))
    if reason:
        return reason
    return None if pool_fits(layer.quant, layer.dilation) else \
        "dilated, or padding above half the window"


def emit(layer: Layer, target):
    return max_pool_kernel(layer.quant, layer.dtype)


def pack(layer: Layer, target, *_) -> list:
    return []
