"""Depthwise int8 conv (groups = C = K) on a dot-product instruction: x86 vpdpbusd, aarch64
sdot (one builder, parameterized by int8_conv's DotIsa).

A depthwise conv has no reduction over channels, so the dot product reduces over taps instead:
each int32 lane is one channel and its 4 bytes are 4 vertically adjacent taps (rows kh = 4g ..
4g + 3 of one kernel column kw). One vpdpbusd then does 4 taps for 16 channels (sdot: for 4).
Why vertical:
the interleaved input vector of one input column (16 channels x 4 rows) is the same for every
output pixel whose window covers that column, so a register block of PB output pixels builds
(PB - 1) * SW + (KW - 1) * DW + 1 column vectors and uses them for PB * KW dot products (stride
1, 3x3: 9 vectors for 21 vpdpbusd at PB = 7) instead of one interleave per dot product.

A column vector is 3 (KH) or 4 row loads of L channels interleaved byte-wise into 4L bytes
(byte 4i + t = row t, channel i; one shufflevector, which LLVM lowers to vpermt2b on x86); rows
past KH repeat row 0 and meet zero weights. Weights are packed at build time in the same order,
[G, KW, C, 4] with G = ceil(KH / 4) (`pack_depthwise`). u8 x s8 products summed 4 at a time
into int32 cannot overflow (vpdpbusd does not saturate), so the result is the int32 accumulator
of the reference exactly; the epilogue is int8_conv.fused_epilogue (bias folded, requantize).
sdot multiplies s8 x s8: as in the conv kernel the activations enter as x ^ 0x80 = x - 128 and
the caller adds DotIsa.bias_shift(w) = 128 * sum(w) to the bias.
"""

from __future__ import annotations

import numpy as np

from edgebench.kernels.int8_conv import (
    X86_VNNI,
    ConvShape,
    DotIsa,
    conv_shape,
    dot_isa,
    epilogue_kernel,
    fused_epilogue,
)
from edgebench.kernels.layer import Layer, int8_reason

LANES = 16  # channels the lowering asks to be whole vectors of (vpdpbusd's lanes; 4 sdot's)
TAPS = 4  # bytes per int32 lane: vertically adjacent taps of one kernel column
MAX_PIXELS = 8  # output pixels per register block (one zmm accumulator each)


def tap_groups(kh: int) -> int:
    """How many groups of 4 kernel rows (the last one padded with zero weights)."""
    return -(-kh // TAPS)


def pack_depthwise(w: np.ndarray) -> np.ndarray:
    """[C, 1, KH, KW] int8 -> [G, KW, C, 4] int8: byte t of channel c's lane in group g is
    w[c, 0, 4g + t, kw] (0 past KH)."""
    c, _, kh, kw = w.shape
    g = tap_groups(kh)
    full = np.zeros((c, g * TAPS, kw), np.int8)
    full[:, :kh] = w[:, 0]
    return np.ascontiguousarray(full.reshape(c, g, TAPS, kw).transpose(1, 3, 0, 2))


def pixels_per_block(ow: int) -> int:
    """The widest register block of output pixels that divides the output width."""
    return max(d for d in range(1, MAX_PIXELS + 1) if ow % d == 0)


def depthwise_fits(c: int) -> bool:
    """Channels in whole vectors of 16 (MobileNet's 32..960 all are)."""
    return c % LANES == 0


def depthwise_dot_kernel(s: ConvShape, out: str, zero_point: int = 0, lo: int = 0,
                         hi: int = 255, requant: str = "fixed", isa: DotIsa = X86_VNNI):
    """TIR PrimFunc: args (x[n,h,w,c] u8 padded, wt = pack_depthwise(w) i8, bias[c] i32, then
    m0/shift i64, or scale f64 (requant f64) / f32 (float out), or nothing (int32 out: the
    accumulator); y[n,oh,ow,c] of `out`). With isa.flip_activations (sdot) the bias includes
    isa.bias_shift(w)."""
    from tvm.script import tirx as T

    N, H, W, C, KH, KW = s.n, s.h, s.w, s.c, s.kh, s.kw
    L, V = isa.lanes, isa.vector
    if C % L or s.k != C:
        raise ValueError(f"depthwise_dot_kernel: {C} channels ({s.k} outputs) are not whole "
                         f"vectors of {L}")
    SH, SW = s.stride
    DH, DW = s.dilation
    OH, OW = s.oh, s.ow
    G, CB, PB = tap_groups(KH), C // L, pixels_per_block(OW)

    def x_operand(x, n, oh, col, g, cb):
        """L channels x the group's 4 kernel rows of one input column, tap-interleaved."""
        def row(t):  # past KH: the group's first row again (its weights are 0)
            kh = T.if_then_else(g * TAPS + t < KH, g * TAPS + t, g * TAPS) if KH % TAPS \
                else g * TAPS + t
            return x.vload([n, oh * SH + kh * DH, col, cb * L], f"uint8x{L}")

        taps = T.Shuffle([row(t) for t in range(TAPS)],
                         [T.int32(t * L + i) for i in range(L) for t in range(TAPS)])
        if isa.flip_activations:
            return T.reinterpret(T.bitwise_xor(taps, T.broadcast(T.uint8(0x80), V)),
                                 dtype=f"int8x{V}")
        return taps

    @T.macro
    def body(x, wt, bias, y, m0, shift, scale):
        acc = T.alloc_buffer((PB * L,), "int32", scope="global")
        for n, cb, oh, owo in T.grid(N, CB, OH, OW // PB):
            for p in T.unroll(PB):
                for lane in T.vectorized(L):
                    acc[p * L + lane] = bias[cb * L + lane]
            for g in T.unroll(G):
                for p in T.unroll(PB):
                    for kw in T.unroll(KW):
                        acc[T.ramp(p * L, 1, L)] = T.call_llvm_pure_intrin(
                            T.llvm_lookup_intrinsic_id(isa.intrinsic),
                            acc.vload([p * L], f"int32x{L}"),
                            x_operand(x, n, oh, (owo * PB + p) * SW + kw * DW, g, cb),
                            wt.vload([g, kw, cb * L, 0], f"int8x{V}"),
                            dtype=f"int32x{L}")
            for p in T.unroll(PB):
                for lane in T.vectorized(L):
                    y[n, oh, owo * PB + p, cb * L + lane] = fused_epilogue(
                        T, out, acc[p * L + lane], cb * L + lane, m0, shift, scale,
                        zero_point, lo, hi)

    return epilogue_kernel("dw_dot", body, (N, H, W, C), (G, KW, C, TAPS), "int8", C,
                           (N, OH, OW, C), out, requant)


# ---- the registry's interface (kernels/registry.py) ----
NAME = "int8_depthwise"
LABEL = KERNEL = "dw"  # its int8_layers kernel, its functions' name


def instruction(target) -> str:
    """The dot product its assembly must contain on this target (vpdpbusd or sdot)."""
    isa = dot_isa(target)
    return isa.instruction if isa else X86_VNNI.instruction


INSTRUCTION = X86_VNNI.instruction  # on x86; `instruction(target)` answers per target


def fits(layer: Layer, target) -> str | None:
    reason = int8_reason(layer, ("conv2d",), ("uint8",))
    if reason:
        return reason
    if not layer.depthwise:
        return "not a depthwise conv2d (groups = in = out channels)"
    if not depthwise_fits(layer.c):
        return f"{layer.c} channels, not whole vectors of {LANES}"
    return None if dot_isa(target) else "no int8 dot product (AVX512-VNNI, +dotprod)"


def shape(layer: Layer, target) -> ConvShape:
    return conv_shape(layer, dot_isa(target).lanes, channels=layer.c)


def padded_input(layer: Layer, target) -> tuple[int, int]:
    """(channels, extra columns) of the NHWC input the kernel reads: the channels as they are."""
    return layer.c, 0


def emit(layer: Layer, target):
    o = layer.quant
    return depthwise_dot_kernel(shape(layer, target), o.dtype, o.zp, o.lo, o.hi, o.requant,
                                dot_isa(target))


def pack(layer: Layer, target, weight: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    """[C, 1, KH, KW] weights in tap order, the bias with the ISA's shift (sdot's 128 sum(w))."""
    s = shape(layer, target)
    full = np.zeros(s.k, np.int64)
    full[:weight.shape[0]] = bias + dot_isa(target).bias_shift(weight)
    return [pack_depthwise(weight), full]
