"""Depthwise FP32 conv (groups = C = K) on NHWC activations: no reduction over channels, so a
vector of 16 channels (8 on AVX2, 4 on NEON; twice that in FP16) is both the input operand
and the output; the KH x KW taps are unrolled, U output pixels per step keep U independent
FMA chains, and the channel block is the outer loop so its KH * KW weight vectors stay in
registers over the whole image (the int8 depthwise kernel's order). Bias first, ReLU/ReLU6
(and a residual add) in the epilogue.

The input arrives padded (spatially) with C a multiple of the lanes (extra channels have zero
weights and bias: they stay 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.kernels.fp32_conv import activation, fma, fp32_kernel
from edgebench.kernels.layer import (
    AVX512,
    NO_EPILOGUE,
    Epilogue,
    Layer,
    SlidingWindow,
    Vectors,
    fp32_reason,
    round_up,
    vector_lanes,
    vectors,
)

NAME = "fp32_depthwise"

PIXELS = 4  # output pixels per step (independent FMA chains over the taps)


@dataclass(frozen=True)
class Depthwise(SlidingWindow):
    """Geometry of one depthwise conv on its padded NHWC input."""

    n: int
    h: int
    w: int
    c: int  # a multiple of lanes
    kh: int
    kw: int
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    vec: Vectors = AVX512

    @property
    def lanes(self) -> int:
        return self.vec.lanes

    @property
    def macs(self) -> int:
        return self.n * self.oh * self.ow * self.c * self.kh * self.kw


def pack_weights(w: np.ndarray, s: Depthwise) -> np.ndarray:
    """[C, 1, KH, KW] -> [KH, KW, s.c] (zero channels as padding)."""
    out = np.zeros((s.kh, s.kw, s.c), np.float32)
    out[:, :, : w.shape[0]] = w[:, 0].transpose(1, 2, 0)
    return out


def depthwise_kernel(s: Depthwise, ep: Epilogue = NO_EPILOGUE):
    """TIR PrimFunc: args (x[n,h,w,c] padded, w[kh,kw,c], bias[c], [residual[n,oh,ow,c]],
    y[n,oh,ow,c])."""
    from tvm.script import tirx as T

    N, H, W, C, KH, KW = s.n, s.h, s.w, s.c, s.kh, s.kw
    SH, SW = s.stride
    DH, DW = s.dilation
    OH, OW, L = s.oh, s.ow, s.lanes
    U = min(PIXELS, OW)
    TAIL = OW % U
    vec, DT = s.vec.vec, s.vec.dtype

    def tile(u: int):
        @T.macro
        def block(x, w, bias, y, res, n, cb, oh, ow0):
            acc = T.alloc_buffer((u * L,), DT, scope="global")
            for p in T.unroll(u):
                acc[T.ramp(p * L, 1, L)] = bias.vload([cb * L], vec)
            for kh in T.unroll(KH):
                for kw in T.unroll(KW):
                    for p in T.unroll(u):
                        acc[T.ramp(p * L, 1, L)] = fma(
                            T, acc.vload([p * L], vec),
                            x.vload([n, oh * SH + kh * DH, (ow0 + p) * SW + kw * DW, cb * L],
                                    vec),
                            w.vload([kh, kw, cb * L], vec), L, DT)
            for p in T.unroll(u):
                for lane in T.vectorized(L):
                    y[n, oh, ow0 + p, cb * L + lane] = activation(
                        T, acc[p * L + lane]
                        + (res[n, oh, ow0 + p, cb * L + lane] if ep.residual
                           else T.Cast(DT, 0)), ep.act, DT)

        return block

    main, tail = tile(U), tile(max(TAIL, 1))

    @T.macro
    def body(x, w, bias, y, res):
        for n, cb, oh in T.grid(N, C // L, OH):
            for owo in range(OW // U):
                main(x, w, bias, y, res, n, cb, oh, owo * U)
            if TAIL > 0:
                tail(x, w, bias, y, res, n, cb, oh, OW - TAIL)

    return fp32_kernel("dw_f32", body, (N, H, W, C), (KH, KW, C), C, (N, OH, OW, C),
                       ep.residual, dtype=DT)


# ---- the registry's interface (kernels/registry.py) ----

def shape(layer: Layer, target) -> Depthwise:
    """The kernel geometry: padded input, channels padded to whole vectors."""
    vec = vectors(target, layer.dtype)
    ph, pw = layer.padding
    return Depthwise(layer.n, layer.h + 2 * ph, layer.w + 2 * pw, round_up(layer.c, vec.lanes),
                     *layer.kernel, layer.stride, layer.dilation, vec)


def fits(layer: Layer, target) -> str | None:
    if not layer.depthwise:
        return "not a depthwise conv2d (groups = in = out channels)"
    if layer.cp not in (None, round_up(layer.c, vector_lanes(target, layer.dtype) or 1)):
        return f"input carries {layer.cp} channels, the kernel reads whole vectors"
    return fp32_reason(layer, target)


def emit(layer: Layer, target):
    return depthwise_kernel(shape(layer, target), layer.epilogue)


def pack(layer: Layer, target, weight: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    from edgebench.kernels.fp32_conv import pad_bias

    s = shape(layer, target)
    return [pack_weights(weight, s), pad_bias(bias, layer.c, s.c)]
