"""Direct int8 conv2d (and linear, as a 1x1 conv) on aarch64 with the Armv8.2 dot product:
sdot, s8 x s8 -> int32, 4 output channels x 4 input channels per instruction.

Why sdot on shifted activations: activations are uint8 and weights int8, and u8 x s8 needs
usdot (i8mm), which Cortex-A76 lacks. So the kernel flips the top bit of each activation byte
(x ^ 0x80 read as int8 is x - 128) and the caller adds 128 * sum(w) to the int32 bias:
sum(x * w) = sum((x - 128) * w) + 128 * sum(w), exact in int32.

Layout: NHWC uint8 activations (the 4 input channels of one sdot lane are one 32-bit word
of a pixel, broadcast to the 4 lanes); weights re-laid out ahead of time as
[K/4, KH, KW, C/4, 4, 4]: one 16-byte vector per (4 output channels, 4 input channels).
A block of PB pixels x NK*4 output channels keeps PB*NK int32x4 accumulators (at most 24 of
the 32 NEON registers). The epilogue is reference.py's requantize, as in int8_conv.py.
Input arrives padded with its zero point and with C a multiple of 4; K is a multiple of 4.
"""

from __future__ import annotations

import numpy as np

from edgebench.kernels.int8_conv import OPAQUE, ConvShape, _round_shift

SDOT = "llvm.aarch64.neon.sdot.v4i32.v16i8"  # (<4 x i32>, <16 x i8>, <16 x i8>)
INSTRUCTION = "sdot"
MAX_ACCUMULATORS = 24  # int32x4 registers of 32, leaving room for the operands
SIGN_FLIP = -0x7F7F7F80  # 0x80808080 as int32: x ^ it turns 4 uint8 into 4 (x - 128) int8


def blocking(s: ConvShape) -> tuple[int, int]:
    """(PB pixels, NK vectors of 4 output channels) per register block."""
    kb = s.k // 4
    nk = max(d for d in (1, 2, 4, 8) if kb % d == 0)
    while True:
        pb = max(d for d in range(1, MAX_ACCUMULATORS // nk + 1) if s.ow % d == 0)
        if pb >= 2 or nk == 1:
            return pb, nk
        nk //= 2


def pack_weights(w: np.ndarray, c_pad: int, k_pad: int) -> np.ndarray:
    """[K, C, KH, KW] int -> [K/4, KH, KW, C/4, 4, 4] int8 (zero rows/columns as padding)."""
    k, c, kh, kw = w.shape
    full = np.zeros((k_pad, c_pad, kh, kw), np.int8)
    full[:k, :c] = w
    return np.ascontiguousarray(
        full.reshape(k_pad // 4, 4, c_pad // 4, 4, kh, kw).transpose(0, 4, 5, 2, 1, 3))


def bias_shift(w: np.ndarray) -> np.ndarray:
    """What the int32 bias gains per output channel for the kernel's x - 128: 128 * sum(w)."""
    return 128 * w.reshape(w.shape[0], -1).astype(np.int64).sum(1)


def conv_sdot_kernel(s: ConvShape, out: str, zero_point: int = 0, lo: int = 0,
                     hi: int = 255):
    """TIR PrimFunc with conv_vnni_kernel's arguments, weights packed by pack_weights and the
    bias including bias_shift: (x u8, wt i8, bias i32, m0 i64 + shift i64 | scale f32 |
    nothing for "int32", y[n,oh,ow,k])."""
    from tvm.script import tirx as T

    N, H, W, C, K, KH, KW = s.n, s.h, s.w, s.c, s.k, s.kh, s.kw
    SH, SW = s.stride
    DH, DW = s.dilation
    OH, OW = s.oh, s.ow
    C4, KB = C // 4, K // 4
    PB, NK = blocking(s)

    @T.macro
    def accumulate(acc, x, wt, n, kbo, oh, owo):
        for kh, kw, c4 in T.grid(KH, KW, C4):
            for p in T.unroll(PB):
                for j in T.unroll(NK):
                    acc[T.ramp((p * NK + j) * 4, 1, 4)] = T.call_llvm_pure_intrin(
                        T.llvm_lookup_intrinsic_id(SDOT),
                        acc.vload([(p * NK + j) * 4], "int32x4"),
                        T.reinterpret(T.broadcast(T.bitwise_xor(T.reinterpret(x.vload(
                            [n, oh * SH + kh * DH, (owo * PB + p) * SW + kw * DW, c4 * 4],
                            "uint8x4"), dtype="int32"), T.int32(SIGN_FLIP)), 4),
                            dtype="int8x16"),
                        wt.vload([kbo * NK + j, kh, kw, c4, 0, 0], "int8x16"),
                        dtype="int32x4")

    def epilogue(acc, i, c, m0=None, shift=None, scale=None):
        v = acc[i]
        if out == "int32":
            return v
        if out == "float32":
            return T.Cast("float32", v) * scale[c]
        return T.Cast(out, T.max(T.min(_round_shift(T, T.Cast("int64", v) * m0[c], shift[c])
                                       + T.int64(zero_point), T.int64(hi)), T.int64(lo)))

    if out == "int32":
        @T.prim_func
        def conv_sdot_i(x: T.Buffer((N, H, W, C), "uint8"),
                        wt: T.Buffer((KB, KH, KW, C4, 4, 4), "int8"),
                        bias: T.Buffer((K,), "int32"), y: T.Buffer((N, OH, OW, K), "int32")):
            T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
            acc = T.alloc_buffer((PB * NK * 4,), "int32", scope="global")
            for n, kbo, oh, owo in T.grid(N, KB // NK, OH, OW // PB):
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(4):
                        acc[(p * NK + j) * 4 + lane] = bias[(kbo * NK + j) * 4 + lane]
                accumulate(acc, x, wt, n, kbo, oh, owo)
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(4):
                        y[n, oh, owo * PB + p, (kbo * NK + j) * 4 + lane] = epilogue(
                            acc, (p * NK + j) * 4 + lane, (kbo * NK + j) * 4 + lane)

        return conv_sdot_i

    if out == "float32":
        @T.prim_func
        def conv_sdot_f(x: T.Buffer((N, H, W, C), "uint8"),
                        wt: T.Buffer((KB, KH, KW, C4, 4, 4), "int8"),
                        bias: T.Buffer((K,), "int32"), scale: T.Buffer((K,), "float32"),
                        y: T.Buffer((N, OH, OW, K), "float32")):
            T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
            acc = T.alloc_buffer((PB * NK * 4,), "int32", scope="global")
            for n, kbo, oh, owo in T.grid(N, KB // NK, OH, OW // PB):
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(4):
                        acc[(p * NK + j) * 4 + lane] = bias[(kbo * NK + j) * 4 + lane]
                accumulate(acc, x, wt, n, kbo, oh, owo)
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(4):
                        y[n, oh, owo * PB + p, (kbo * NK + j) * 4 + lane] = epilogue(
                            acc, (p * NK + j) * 4 + lane, (kbo * NK + j) * 4 + lane,
                            scale=scale)

        return conv_sdot_f

    @T.prim_func
    def conv_sdot_q(x: T.Buffer((N, H, W, C), "uint8"),
                    wt: T.Buffer((KB, KH, KW, C4, 4, 4), "int8"),
                    bias: T.Buffer((K,), "int32"), m0: T.Buffer((K,), "int64"),
                    shift: T.Buffer((K,), "int64"), y: T.Buffer((N, OH, OW, K), out)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        acc = T.alloc_buffer((PB * NK * 4,), "int32", scope="global")
        for n, kbo, oh, owo in T.grid(N, KB // NK, OH, OW // PB):
            for p, j in T.grid(PB, NK):
                for lane in T.vectorized(4):
                    acc[(p * NK + j) * 4 + lane] = bias[(kbo * NK + j) * 4 + lane]
            accumulate(acc, x, wt, n, kbo, oh, owo)
            for p, j in T.grid(PB, NK):
                for lane in T.vectorized(4):
                    y[n, oh, owo * PB + p, (kbo * NK + j) * 4 + lane] = epilogue(
                        acc, (p * NK + j) * 4 + lane, (kbo * NK + j) * 4 + lane,
                        m0=m0, shift=shift)

    return conv_sdot_q
