"""The model input's quantization, layout change and padding in one kernel: float32 NCHW in,
the first conv's padded NHWC integer input out (channels padded too, all with the zero point).

Why our own: as Relax glue (quantize, transpose, pad) with the one tuning trial the int8 glue
gets, this took ~0.2 ms before ResNet-18's and MobileNetV2's stems, 5% of the int8 run; the
transpose is the slow part. Here each input row is read as 16-float vectors per channel,
quantized (arith.quantize's float32 rule: round half to even, zero point, clamp) and the
channels interleaved into 16 pixels x CP bytes with one shuffle per store.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.kernels.int8_conv import OPAQUE
from edgebench.kernels.layer import Layer, int8_reason

LANES = 16  # pixels per vector step (16 float32 = one zmm)
FILL = 64  # bytes per step of the zero-point fill


@dataclass(frozen=True)
class InputQuant:
    """float32 [n, c, h, w] -> dtype [n, h + 2 * pad_h, w + 2 * pad_w + extra_w, cp]."""

    n: int
    c: int
    h: int
    w: int
    pad_h: int
    pad_w: int
    extra_w: int  # more zero-point columns on the right (the AMX kernel's overrun)
    cp: int  # channels out (>= c; the rest hold the zero point)
    inv_scale: float  # float32(1) / float32(scale), as arith.quantize
    zero_point: int
    qmin: int
    qmax: int
    dtype: str

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.h + 2 * self.pad_h, self.w + 2 * self.pad_w + self.extra_w,
                self.cp)


def quantize_fits(c: int, w: int, cp: int) -> bool:
    """Rows of at least one vector (shorter rows overlap-step from the end), c <= cp <= 16
    channels out (one shuffle interleaves them)."""
    return w >= LANES and c <= cp <= 16


def quantize_nhwc_kernel(q: InputQuant):
    """TIR PrimFunc (x[n, c, h, w] f32, y[out_shape] dtype)."""
    from tvm.script import tirx as T

    if not quantize_fits(q.c, q.w, q.cp):
        raise ValueError(f"quantize_nhwc_kernel: {q} needs w >= {LANES} and c <= cp <= 16")
    N, C, H, W, CP = q.n, q.c, q.h, q.w, q.cp
    out = q.out_shape
    size = out[0] * out[1] * out[2] * out[3]
    WB = -(-W // LANES)
    vec, ovec = f"float32x{LANES}", f"{q.dtype}x{LANES}"
    interleave = [T.int32(c * LANES + i) for i in range(LANES) for c in range(CP)]

    def quantized(x, n, c, h, w0):
        v = x.vload([n, c, h, w0], vec) * T.broadcast(T.float32(q.inv_scale), LANES)
        r = T.call_llvm_pure_intrin(vec, T.llvm_lookup_intrinsic_id("llvm.roundeven"), v)
        r = T.max(T.min(r + T.broadcast(T.float32(q.zero_point), LANES),
                        T.broadcast(T.float32(q.qmax), LANES)),
                  T.broadcast(T.float32(q.qmin), LANES))
        return T.Cast(ovec, r)

    zp = T.broadcast(T.Cast(q.dtype, q.zero_point), LANES)

    # one input: in a root block, as kernels/int8_pool.py explains
    @T.prim_func(check_well_formed=False)
    def quantize_nhwc(x: T.Buffer((N, C, H, W), "float32"), y: T.Buffer(out, q.dtype)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        with T.sblock("root"):
            flat = T.decl_buffer((size,), q.dtype, data=y.data)
            for i in range(size // FILL):  # borders and padded channels: the zero point
                for lane in T.vectorized(FILL):
                    flat[i * FILL + lane] = T.Cast(q.dtype, q.zero_point)
            for t in range(size % FILL):
                flat[size // FILL * FILL + t] = T.Cast(q.dtype, q.zero_point)
            for n, h, wb in T.grid(N, H, WB):
                # a row's last step starts at W - LANES (rewriting a few pixels, identically)
                y.vstore([n, h + q.pad_h, T.min(wb * LANES, W - LANES) + q.pad_w, 0],
                         T.Shuffle([quantized(x, n, c, h, T.min(wb * LANES, W - LANES))
                                    if c < C else zp for c in range(CP)], interleave))

    return quantize_nhwc


# ---- the registry's interface (kernels/registry.py): layer.quant is the InputQuant ----
NAME = "int8_quantize"
INSTRUCTION = None  # float vectors and a shuffle: no instruction to check
KERNEL = "quantize"


def fits(layer: Layer, target) -> str | None:
    """The float input of a conv on x86's dot-product kernels (on aarch64 it stays Relax)."""
    reason = int8_reason(layer, ("quantize",), ("float32",))
    if reason:
        return reason
    if not target.vnni:
        return "x86 AVX512-VNNI only (its input goes to vpdpbusd)"
    q = layer.quant
    return None if quantize_fits(q.c, q.w, q.cp) else \
        "rows under one vector, or over 16 channels"


def emit(layer: Layer, target):
    return quantize_nhwc_kernel(layer.quant)


def pack(layer: Layer, target, *_) -> list:
    return []
