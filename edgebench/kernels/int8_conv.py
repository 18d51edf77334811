"""Direct int8 conv2d (and linear, as a 1x1 conv) on x86 VNNI: vpdpbusd, u8 x s8 -> int32;
and a depthwise NHWC kernel (no channel reduction, so plain vector multiply-adds).

Layout (why): activations are NHWC uint8, so the 4 consecutive input channels one vpdpbusd
lane reduces are one 32-bit word of a pixel (a broadcast load), and the 16 output channels of
a pixel are 16 contiguous bytes of the output. Weights are re-laid out ahead of time as
[K/16, KH, KW, C/4, 16, 4]: one 64-byte vector per (16 output channels, 4 input channels).
Each block of PB output pixels x NK*16 output channels keeps PB*NK int32x16 accumulators
(a constant-size stack array < 1 KiB, which LLVM keeps in zmm registers), starts from the
folded int32 bias and runs vpdpbusd over (kh, kw, c/4). The epilogue is reference.py's
requantize (int64 product, round half to even shift, zero point, clamp) to uint8/int8, or the
float output float32(acc) * out_scale[c].

The input arrives already padded (with its zero point, i.e. real zero) and with C a multiple
of 4 (extra channels have zero weights); K is padded to a multiple of 16 (extra outputs are
sliced off by the caller). Hand-scheduled (`tirx.is_scheduled`): MetaSchedule leaves it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VNNI = "llvm.x86.avx512.vpdpbusd.512"  # LLVM >= 21: (<16 x i32>, <64 x i8>, <64 x i8>)
OPAQUE = 8  # relax op_pattern kOpaque: FuseOps must not merge a pad into our kernels
MAX_ACCUMULATORS = 14  # PB * NK int32x16 registers: < 1 KiB of stack (kept in registers)


@dataclass(frozen=True)
class ConvShape:
    """Geometry of one int8 conv on the padded NHWC input."""

    n: int
    h: int  # padded input height/width
    w: int
    c: int  # input channels, a multiple of 4
    k: int  # output channels, a multiple of 16
    kh: int
    kw: int
    stride: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)

    @property
    def oh(self) -> int:
        return (self.h - (self.kh - 1) * self.dilation[0] - 1) // self.stride[0] + 1

    @property
    def ow(self) -> int:
        return (self.w - (self.kw - 1) * self.dilation[1] - 1) // self.stride[1] + 1

    def blocking(self) -> tuple[int, int]:
        """(PB pixels, NK vectors of 16 output channels) per register block."""
        kb = self.k // 16
        nk = max(d for d in (1, 2, 4) if kb % d == 0 and d <= MAX_ACCUMULATORS)
        while True:
            cap = MAX_ACCUMULATORS // nk
            pb = max(d for d in range(1, cap + 1) if self.ow % d == 0)
            if pb >= 4 or nk == 1:
                return pb, nk
            nk //= 2


def pack_weights(w: np.ndarray, c_pad: int, k_pad: int) -> np.ndarray:
    """[K, C, KH, KW] int -> [K/16, KH, KW, C/4, 16, 4] int8 (zero rows/columns as padding)."""
    k, c, kh, kw = w.shape
    full = np.zeros((k_pad, c_pad, kh, kw), np.int8)
    full[:k, :c] = w
    return np.ascontiguousarray(
        full.reshape(k_pad // 16, 16, c_pad // 4, 4, kh, kw).transpose(0, 4, 5, 2, 1, 3))


def conv_vnni_kernel(s: ConvShape, out: str, zero_point: int = 0, lo: int = 0,
                     hi: int = 255):
    """TIR PrimFunc: args (x[n,h,w,c] u8, wt packed i8, bias[k] i32, then for out "uint8" /
    "int8": m0[k] i64, shift[k] i64; for out "float32": scale[k] f32; for "int32" nothing
    (the accumulator itself); y[n,oh,ow,k])."""
    from tvm.script import tirx as T

    N, H, W, C, K, KH, KW = s.n, s.h, s.w, s.c, s.k, s.kh, s.kw
    SH, SW = s.stride
    DH, DW = s.dilation
    OH, OW = s.oh, s.ow
    C4, KB = C // 4, K // 16
    PB, NK = s.blocking()

    @T.macro
    def accumulate(acc, x, wt, n, kbo, oh, owo):
        for kh, kw, c4 in T.grid(KH, KW, C4):
            for p in T.unroll(PB):
                for j in T.unroll(NK):
                    # no let-bound temporaries: TVM spills them to the stack on every use
                    acc[T.ramp((p * NK + j) * 16, 1, 16)] = T.call_llvm_pure_intrin(
                        T.llvm_lookup_intrinsic_id(VNNI),
                        acc.vload([(p * NK + j) * 16], "int32x16"),
                        T.reinterpret(T.broadcast(T.reinterpret(x.vload(
                            [n, oh * SH + kh * DH, (owo * PB + p) * SW + kw * DW, c4 * 4],
                            "uint8x4"), dtype="int32"), 16), dtype="uint8x64"),
                        wt.vload([kbo * NK + j, kh, kw, c4, 0, 0], "int8x64"),
                        dtype="int32x16")

    if out == "int32":  # the raw accumulator (dynamic quantization rescales it at run time)
        @T.prim_func
        def conv_vnni_i(x: T.Buffer((N, H, W, C), "uint8"),
                        wt: T.Buffer((KB, KH, KW, C4, 16, 4), "int8"),
                        bias: T.Buffer((K,), "int32"), y: T.Buffer((N, OH, OW, K), "int32")):
            T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
            acc = T.alloc_buffer((PB * NK * 16,), "int32", scope="global")
            for n, kbo, oh, owo in T.grid(N, KB // NK, OH, OW // PB):
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(16):
                        acc[(p * NK + j) * 16 + lane] = bias[(kbo * NK + j) * 16 + lane]
                accumulate(acc, x, wt, n, kbo, oh, owo)
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(16):
                        y[n, oh, owo * PB + p, (kbo * NK + j) * 16 + lane] = acc[
                            (p * NK + j) * 16 + lane]

        return conv_vnni_i

    if out == "float32":
        @T.prim_func
        def conv_vnni_f(x: T.Buffer((N, H, W, C), "uint8"),
                        wt: T.Buffer((KB, KH, KW, C4, 16, 4), "int8"),
                        bias: T.Buffer((K,), "int32"), scale: T.Buffer((K,), "float32"),
                        y: T.Buffer((N, OH, OW, K), "float32")):
            T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
            acc = T.alloc_buffer((PB * NK * 16,), "int32", scope="global")
            for n, kbo, oh, owo in T.grid(N, KB // NK, OH, OW // PB):
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(16):
                        acc[(p * NK + j) * 16 + lane] = bias[(kbo * NK + j) * 16 + lane]
                accumulate(acc, x, wt, n, kbo, oh, owo)
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(16):
                        y[n, oh, owo * PB + p, (kbo * NK + j) * 16 + lane] = T.Cast(
                            "float32", acc[(p * NK + j) * 16 + lane]) * scale[
                            (kbo * NK + j) * 16 + lane]

        return conv_vnni_f

    @T.prim_func
    def conv_vnni_q(x: T.Buffer((N, H, W, C), "uint8"),
                    wt: T.Buffer((KB, KH, KW, C4, 16, 4), "int8"),
                    bias: T.Buffer((K,), "int32"), m0: T.Buffer((K,), "int64"),
                    shift: T.Buffer((K,), "int64"), y: T.Buffer((N, OH, OW, K), out)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        acc = T.alloc_buffer((PB * NK * 16,), "int32", scope="global")
        for n, kbo, oh, owo in T.grid(N, KB // NK, OH, OW // PB):
            for p, j in T.grid(PB, NK):
                for lane in T.vectorized(16):
                    acc[(p * NK + j) * 16 + lane] = bias[(kbo * NK + j) * 16 + lane]
            accumulate(acc, x, wt, n, kbo, oh, owo)
            for p, j in T.grid(PB, NK):
                for lane in T.vectorized(16):
                    y[n, oh, owo * PB + p, (kbo * NK + j) * 16 + lane] = T.Cast(out, T.max(
                        T.min(_round_shift(T, T.Cast("int64", acc[(p * NK + j) * 16 + lane])
                                           * m0[(kbo * NK + j) * 16 + lane],
                                           shift[(kbo * NK + j) * 16 + lane])
                              + T.int64(zero_point), T.int64(hi)), T.int64(lo)))

    return conv_vnni_q


def _round_shift(T, p, n):
    """round_half_even(p / 2**n): floor shift of p + 2**(n-1) - 1 + the odd bit of p >> n."""
    one = T.int64(1)
    return T.shift_right(p + T.shift_left(one, n - one) - one
                         + T.bitwise_and(T.shift_right(p, n), one), n)


def depthwise_kernel(s: ConvShape, out: str, zero_point: int = 0, lo: int = 0, hi: int = 255):
    """Depthwise int8 conv (groups = C = K), NHWC: no reduction over channels, so no dot
    product instruction; 16 channels per vector, int32 multiply-adds over the KH x KW taps,
    the same fused epilogue. Args (x u8 [n,h,w,c] padded, w i8 [kh,kw,c], bias[c] i32, then
    m0/shift i64 or scale f32, y[n,oh,ow,c])."""
    from tvm.script import tirx as T

    N, H, W, C, KH, KW = s.n, s.h, s.w, s.c, s.kh, s.kw
    SH, SW = s.stride
    DH, DW = s.dilation
    OH, OW = s.oh, s.ow
    CB = C // 16

    def taps(x, w, n, oh, ow, c):
        total = None
        for kh in range(KH):
            for kw in range(KW):
                term = T.Cast("int32", x[n, oh * SH + kh * DH, ow * SW + kw * DW, c]) * \
                    T.Cast("int32", w[kh, kw, c])
                total = term if total is None else total + term
        return total

    if out == "float32":
        @T.prim_func
        def dw_f(x: T.Buffer((N, H, W, C), "uint8"), w: T.Buffer((KH, KW, C), "int8"),
                 bias: T.Buffer((C,), "int32"), scale: T.Buffer((C,), "float32"),
                 y: T.Buffer((N, OH, OW, C), "float32")):
            T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
            for n, oh, ow, cb in T.grid(N, OH, OW, CB):
                for lane in T.vectorized(16):
                    y[n, oh, ow, cb * 16 + lane] = T.Cast("float32", bias[cb * 16 + lane] + taps(
                        x, w, n, oh, ow, cb * 16 + lane)) * scale[cb * 16 + lane]

        return dw_f

    @T.prim_func
    def dw_q(x: T.Buffer((N, H, W, C), "uint8"), w: T.Buffer((KH, KW, C), "int8"),
             bias: T.Buffer((C,), "int32"), m0: T.Buffer((C,), "int64"),
             shift: T.Buffer((C,), "int64"), y: T.Buffer((N, OH, OW, C), out)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        for n, oh, ow, cb in T.grid(N, OH, OW, CB):
            for lane in T.vectorized(16):
                y[n, oh, ow, cb * 16 + lane] = T.Cast(out, T.max(T.min(_round_shift(
                    T, T.Cast("int64", bias[cb * 16 + lane] + taps(
                        x, w, n, oh, ow, cb * 16 + lane)) * m0[cb * 16 + lane],
                    shift[cb * 16 + lane]) + T.int64(zero_point), T.int64(hi)), T.int64(lo)))

    return dw_q
