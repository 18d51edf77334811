"""Direct int8 conv2d (and linear, as a 1x1 conv) on a dot-product instruction, built for any
ISA by one builder (`conv_dot_kernel`, parameterized by a `DotIsa`): x86 VNNI vpdpbusd here,
aarch64 sdot in int8_conv_arm.py (depthwise convs: int8_depthwise.py).

Layout (why): activations are NHWC uint8, so the 4 consecutive input channels one dot-product
lane reduces are one 32-bit word of a pixel (a broadcast load), and the L output channels of a
pixel (L int32 lanes: 16 for vpdpbusd, 4 for sdot) are contiguous in the output. Weights are
re-laid out ahead of time as [K/L, KH, KW, C/4, L, 4]: one 4L-byte vector per (L output
channels, 4 input channels). Each block of PB output pixels x NK*L output channels keeps PB*NK
int32xL accumulators (a constant-size stack array, which LLVM keeps in vector registers),
starts from the folded int32 bias and runs the dot product over (kh, kw, c/4). The epilogue is
reference.py's requantize (int64 product, round half to even shift, zero point, clamp) to
uint8/int8, the float output float32(acc) * out_scale[c], or the raw int32 accumulator.

Ternary ({-1, 0, 1}) and binary ({-1, 1}) weights are stored packed (bits = 2 or 1) and
unpacked in the weight-operand load, so the artifact holds 1/4 or 1/8 of the int8 bytes and
the kernel reads that much less. A 4L-byte weight vector comes from G = 4L * bits / 8 bytes:
element i lives in byte i % G at bit offset bits * (i // G). Unpacking is per 32-bit (or,
for 2-byte groups, 16-bit) word, so the shift needs no per-byte instruction: tile the G bytes
8 / bits times, shift copy q right by bits * q, AND each byte with 2**bits - 1 and map the
code (ternary c - 1, binary 2c - 1). It is pure, so LLVM computes it once per weight vector
and reuses it across the PB pixels of the register block. Binary cannot store a zero, so
padded weights are +1 and the caller pads the extra input channels with 0 instead of the zero
point and computes `bias_shift` on `dense_weights` (padding included): their products are
then 0 (u8) or cancelled by the bias shift (sdot's x - 128).

The input arrives already padded (with its zero point, i.e. real zero) and with C a multiple
of 4 (extra channels have zero weights, see above for binary); K is padded to a multiple of L
(extra outputs are sliced off by the caller). Hand-scheduled (`tirx.is_scheduled`):
MetaSchedule leaves it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.kernels.layer import (
    NO_EPILOGUE,
    Epilogue,
    Layer,
    SlidingWindow,
    int8_reason,
    round_up,
)

VNNI = "llvm.x86.avx512.vpdpbusd.512"  # LLVM >= 21: (<16 x i32>, <64 x i8>, <64 x i8>)
OPAQUE = 8  # relax op_pattern kOpaque: FuseOps must not merge a pad into our kernels
MAX_ACCUMULATORS = 14  # PB * NK int32x16 registers: < 1 KiB of stack (kept in registers)
SIGN_FLIP = -0x7F7F7F80  # 0x80808080 as int32: x ^ it turns 4 uint8 into 4 (x - 128) int8
WEIGHT_BITS = {8: "int8", 2: "ternary", 1: "binary"}  # how the kernel can store weights
FIXED, EXACT_F64 = "fixed", "f64"  # requantize on int64 m0/shift, or on float64 scales
# float epilogue (out_scale, activation, affine) then rule 1 into the next layer's qparams
QUANTIZE = "quantize"


def packable_bits(w: np.ndarray) -> int:
    """The fewest bits the kernel can store these int8 weights in: 1 (all in {-1, 1}),
    2 (all in {-1, 0, 1}) or 8."""
    values = set(np.unique(w).tolist())
    if values <= {-1, 1}:
        return 1
    return 2 if values <= {-1, 0, 1} else 8


def _check_bits(bits: int) -> None:
    if bits not in WEIGHT_BITS:
        raise ValueError(f"weights cannot be stored in {bits} bits "
                         f"(supported: {sorted(WEIGHT_BITS)})")


@dataclass(frozen=True)
class ConvShape(SlidingWindow):
    """Geometry of one int8 conv on the padded NHWC input."""

    n: int
    h: int  # padded input height/width
    w: int
    c: int  # input channels, a multiple of 4
    k: int  # output channels, a multiple of the kernel's lanes
    kh: int
    kw: int
    stride: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)

    def blocking(self, pool: int = 1) -> tuple[int, int]:
        """(PB pixels, NK vectors of 16 output channels) of the vpdpbusd kernel."""
        return X86_VNNI.blocking(self, pool)

    @property
    def down_columns(self) -> bool:
        """Pixel blocks run down a column, not along a row: a width-1 image (CREPE's audio
        frame) would give a row block of one pixel, each weight vector used once."""
        return self.ow == 1 and self.oh > 1


@dataclass(frozen=True)
class DotIsa:
    """What differs between the dot-product ISAs; everything else is one builder.

    The instruction adds, per int32 lane, the dot product of 4 activation bytes and 4 weight
    bytes: `intrinsic(acc int32xL, x (u)int8x4L, w int8x4L)`. flip_activations: the
    instruction is s8 x s8 (sdot), so the kernel feeds x ^ 0x80 = x - 128 and the caller adds
    128 * sum(w) to the bias (`bias_shift`). Blocking: NK from nk_choices, then the widest PB
    dividing the output width with PB * NK <= max_accumulators, halving NK until PB reaches
    min_pixels or covers the whole output width."""

    name: str  # "vnni" | "sdot": the int8_layers column and the function names
    instruction: str  # what the assembly check looks for
    intrinsic: str
    lanes: int  # int32 lanes (= output channels) per instruction
    flip_activations: bool
    max_accumulators: int
    nk_choices: tuple[int, ...]
    min_pixels: int

    @property
    def vector(self) -> int:
        """Bytes per weight (and activation) operand."""
        return 4 * self.lanes

    def blocking(self, s: ConvShape, pool: int = 1) -> tuple[int, int]:
        """(PB pixels, NK weight vectors) per register block; PB divides the pixels along the
        blocked axis (the row, or the column for `down_columns`) and is a multiple of `pool`
        (a fused P x 1 max pool reduces within a column block)."""
        kb = s.k // self.lanes
        pix = s.oh if s.down_columns else s.ow
        nk = max(d for d in self.nk_choices if kb % d == 0 and d <= self.max_accumulators)
        while True:
            fit = [d for d in range(1, self.max_accumulators // nk + 1)
                   if pix % d == 0 and d % pool == 0]
            if not fit:
                if nk == 1:
                    raise ValueError(f"no register block of {pool}-row pools divides {pix}")
                nk //= 2
                continue
            pb = max(fit)
            if pb >= self.min_pixels or nk == 1 or pb == pix:
                # (pb == ow: every pixel is in the block already, fewer vectors would not add
                # pixels, only serialize the accumulator chain: batch-1 linears)
                return pb, nk
            nk //= 2

    def weight_shape(self, s: ConvShape, bits: int = 8) -> tuple[tuple[int, ...], str]:
        """(shape, dtype) of the kernel's weight argument: int8 vectors or packed words."""
        head = (s.k // self.lanes, s.kh, s.kw, s.c // 4)
        if bits == 8:
            return (*head, self.lanes, 4), "int8"
        word = self.word_bits(bits)
        return (*head, self.vector * bits // word), f"uint{word}"

    def word_bits(self, bits: int) -> int:
        """Packed words are 32-bit when a vector's packed bytes fill whole 32-bit words
        (vpsrlvd; one NEON 32-bit broadcast), else 16-bit (sdot's 2-byte binary vectors)."""
        return 32 if self.vector * bits % 32 == 0 else 16

    def pack_weights(self, w: np.ndarray, c_pad: int, k_pad: int, bits: int = 8) -> np.ndarray:
        """[K, C, KH, KW] int -> the kernel's weight argument: [K/L, KH, KW, C/4, L, 4] int8,
        or for bits 2/1 each 4L-byte vector packed into 4L * bits / 8 bytes, as uint32 (or
        uint16, word_bits) words (layout in the module docstring). Padding as dense_weights."""
        _check_bits(bits)
        full = dense_weights(w, c_pad, k_pad, bits)
        lanes = self.lanes
        vec = np.ascontiguousarray(full.reshape(k_pad // lanes, lanes, c_pad // 4, 4, *w.shape[2:])
                                   .transpose(0, 4, 5, 2, 1, 3))
        if bits == 8:
            return vec
        per, group = 8 // bits, self.vector * bits // 8
        v = vec.reshape(*vec.shape[:4], per, group).astype(np.int64)
        codes = v + 1 if bits == 2 else (v + 1) // 2
        if codes.min() < 0 or codes.max() >= 2**bits or (bits == 1 and np.any(v == 0)):
            raise ValueError(f"weights outside the {WEIGHT_BITS[bits]} values")
        packed = sum(codes[..., q, :] << (bits * q) for q in range(per)).astype(np.uint8)
        return np.ascontiguousarray(packed).view(f"<u{self.word_bits(bits) // 8}")

    def bias_shift(self, w: np.ndarray) -> np.ndarray:
        """What the int32 bias gains per output channel: 128 * sum(w) for the kernel's x - 128
        (flip_activations), else nothing."""
        if not self.flip_activations:
            return np.zeros(w.shape[0], np.int64)
        return 128 * w.reshape(w.shape[0], -1).astype(np.int64).sum(1)


def dense_weights(w: np.ndarray, c_pad: int, k_pad: int, bits: int = 8) -> np.ndarray:
    """[K, C, KH, KW] -> [k_pad, c_pad, KH, KW] int8 as the kernel computes with them: padding
    0, except +1 for binary (which has no zero)."""
    k, c = w.shape[:2]
    full = np.full((k_pad, c_pad, *w.shape[2:]), 1 if bits == 1 else 0, np.int8)
    full[:k, :c] = w
    return full


X86_VNNI = DotIsa("vnni", "vpdpbusd", VNNI, lanes=16, flip_activations=False,
                  max_accumulators=MAX_ACCUMULATORS, nk_choices=(1, 2, 4), min_pixels=4)


def dot_isa(target) -> DotIsa | None:
    """The dot-product ISA of our int8 kernels on `target`, derived here only: vpdpbusd on x86
    with AVX512-VNNI, sdot on aarch64 with +dotprod, else None (TVM's own int8 ops)."""
    if target is None:
        return None
    if target.vnni:
        return X86_VNNI
    if target.dotprod:
        from edgebench.kernels.int8_conv_arm import SDOT

        return SDOT
    return None


# ---- the registry's interface (kernels/registry.py), shared by the dense dot families ----

def dot_reason(layer: Layer) -> str | None:
    """Why a groups-1 int8 dot-product kernel cannot take the layer whatever the target:
    uint8 activations (u8 x s8), groups 1 (depthwise has its own family)."""
    reason = int8_reason(layer, ("conv2d", "linear"), ("uint8",))
    if reason:
        return reason
    return "a grouped conv" if layer.groups != 1 else None


def conv_shape(layer: Layer, lanes: int, channels: int | None = None) -> ConvShape:
    """The kernel's geometry of an int8 layer: input padded spatially, channels to 4 (or
    `channels`), outputs to whole vectors of `lanes`; a linear is a 1 x rows image."""
    (ph, pw), (kh, kw) = layer.padding, layer.kernel
    c = round_up(layer.c, 4) if channels is None else channels
    return ConvShape(layer.n, layer.h + 2 * ph, layer.w + 2 * pw, c, round_up(layer.k, lanes),
                     kh, kw, layer.stride, layer.dilation)


def weights_4d(w: np.ndarray) -> np.ndarray:
    """A linear's [K, C] weight as the [K, C, 1, 1] of a 1x1 conv (conv weights unchanged)."""
    return w.reshape(*w.shape, 1, 1) if w.ndim == 2 else w


@dataclass(frozen=True)
class DotFamily:
    """The registry functions of a groups-1 conv/linear family on one dot-product ISA (this
    module's vpdpbusd, int8_conv_arm's sdot): each module binds its own."""

    isa: DotIsa
    feature: str  # the Target property that says the ISA is there: "vnni" | "dotprod"
    requires: str  # ... as the reason names it

    def fits(self, layer: Layer, target) -> str | None:
        reason = dot_reason(layer)
        if reason:
            return reason
        return None if getattr(target, self.feature) else f"no {self.requires}"

    def shape(self, layer: Layer, target) -> ConvShape:
        return conv_shape(layer, self.isa.lanes)

    def padded_input(self, layer: Layer, target) -> tuple[int, int]:
        """(channels, extra columns) of the NHWC input the kernel reads."""
        return self.shape(layer, target).c, 0

    def emit(self, layer: Layer, target):
        o = layer.quant
        return conv_dot_kernel(self.isa, self.shape(layer, target), o.dtype, o.zp, o.lo, o.hi,
                               layer.weight_bits, o.requant, layer.epilogue, o.inv_scale)

    def pack(self, layer: Layer, target, weight: np.ndarray,
             bias: np.ndarray) -> list[np.ndarray]:
        """[packed weights, int64 bias[kp]]: the folded bias plus the ISA's bias shift,
        computed on the weights as the kernel holds them (binary pads with +1)."""
        s, w4 = self.shape(layer, target), weights_4d(weight)
        k, bits = w4.shape[0], layer.weight_bits
        full = np.zeros(s.k, np.int64)
        full[:k] = bias + self.isa.bias_shift(dense_weights(w4, s.c, s.k, bits))[:k]
        return [self.isa.pack_weights(w4, s.c, s.k, bits), full]


_FAMILY = DotFamily(X86_VNNI, "vnni", "AVX512-VNNI")
NAME = "int8_conv"
QUANTIZE_EPILOGUE = True  # Epilogue act/affine/pool/pad with Int8Out.requant == QUANTIZE
INSTRUCTION = X86_VNNI.instruction
LABEL, KERNEL = "vnni", "conv_vnni"  # its int8_layers kernel, its functions' name
fits, shape, padded_input, emit, pack = (_FAMILY.fits, _FAMILY.shape, _FAMILY.padded_input,
                                         _FAMILY.emit, _FAMILY.pack)


def pack_weights(w: np.ndarray, c_pad: int, k_pad: int, bits: int = 8) -> np.ndarray:
    """[K, C, KH, KW] int -> [K/16, KH, KW, C/4, 16, 4] int8 (zero rows/columns as padding),
    or bits 2/1: packed (DotIsa.pack_weights)."""
    return X86_VNNI.pack_weights(w, c_pad, k_pad, bits)


def conv_vnni_kernel(s: ConvShape, out: str, zero_point: int = 0, lo: int = 0,
                     hi: int = 255, bits: int = 8):
    """conv_dot_kernel on vpdpbusd (x86 AVX512-VNNI)."""
    return conv_dot_kernel(X86_VNNI, s, out, zero_point, lo, hi, bits)


def conv_dot_kernel(isa: DotIsa, s: ConvShape, out: str, zero_point: int = 0, lo: int = 0,
                    hi: int = 255, bits: int = 8, requant: str = FIXED,
                    ep: Epilogue = NO_EPILOGUE, inv_scale: float = 0.0):
    """TIR PrimFunc: args (x[n,h,w,c] u8, wt = isa.pack_weights(w, c, k, bits) (int8, or
    uint32/uint16 words of packed 2-/1-bit weights), bias[k] i32 (including isa.bias_shift), then
    for out "uint8" / "int8": m0[k] i64, shift[k] i64 (or with requant=EXACT_F64 scale[k] f64);
    for out "float32": scale[k] f32; for "int32" nothing (the accumulator itself);
    y[n,oh,ow,k]).

    requant=QUANTIZE (uint8/int8 out): the accumulator goes through the float path of an FP32
    chain after a float-out conv and is quantized for the next int8 layer, all in registers
    (`quantize_epilogue`): scale = [out_scale; bn_scale; bn_shift] ([3k] f32, or [k] without
    ep.affine), the activation ep.act, the (ep.pool x 1) max pool, and y is written into the
    interior of the next layer's input, bordered (ep.borders) with its zero point:
    y[n, oh/pool + top + bottom, ow + left + right, k]."""
    from tvm.script import tirx as T

    if out not in ("int32", "float32", "uint8", "int8"):
        raise ValueError(f"conv_dot_kernel: unsupported output dtype {out!r}")
    _check_bits(bits)
    quantizing = requant == QUANTIZE
    if ep != NO_EPILOGUE and not (quantizing and out in ("uint8", "int8")):
        raise ValueError("conv_dot_kernel: an epilogue needs requant=QUANTIZE to uint8/int8")
    if ep.residual:
        raise ValueError("conv_dot_kernel: no residual in a quantize epilogue")
    N, H, W, C, K, KH, KW = s.n, s.h, s.w, s.c, s.k, s.kh, s.kw
    SH, SW = s.stride
    DH, DW = s.dilation
    OH, OW = s.oh, s.ow
    L, V = isa.lanes, isa.vector
    C4, KB = C // 4, K // L
    P = ep.pool
    COL = s.down_columns
    if P > 1 and (not COL or OH % P):
        raise ValueError(f"conv_dot_kernel: a fused {P}-row pool needs a width-1 output and "
                         f"{OH} rows a multiple of it")
    PB, NK = isa.blocking(s, P)
    wt_shape, wt_dtype = isa.weight_shape(s, bits)
    # a block is PB pixels along the row (oh fixed) or, COL, down the column (ow fixed):
    # the outer loop runs over (A, B) = (oh, ow // PB) or (ow, oh // PB)
    A, B = (OW, OH // PB) if COL else (OH, OW // PB)
    PT, PBOT, PL, PR = ep.borders
    OHP = OH // P
    y_shape = (N, OHP + PT + PBOT, OW + PL + PR, K)

    def row(a, b, p):
        return b * PB + p if COL else a

    def col(a, b, p):
        return a if COL else b * PB + p

    def x_operand(x, n, oh, ow, kh, kw, c4):
        """The pixel's 4 input channels (one 32-bit word) broadcast to every lane."""
        word = T.reinterpret(x.vload([n, oh * SH + kh * DH, ow * SW + kw * DW, c4 * 4],
                                     "uint8x4"), dtype="int32")
        if isa.flip_activations:
            return T.reinterpret(T.broadcast(T.bitwise_xor(word, T.int32(SIGN_FLIP)), L),
                                 dtype=f"int8x{V}")
        return T.reinterpret(T.broadcast(word, L), dtype=f"uint8x{V}")

    def w_operand(wt, kb, kh, kw, c4):
        if bits == 8:
            return wt.vload([kb, kh, kw, c4, 0, 0], f"int8x{V}")
        wb = isa.word_bits(bits)
        word = f"uint{wb}"
        # packed words per vector, copies (one per bit offset), words in the 4L-byte vector
        words, per, lanes = V * bits // wb, 8 // bits, V * 8 // wb
        if words == 1:
            tiled = T.broadcast(wt[kb, kh, kw, c4, 0], lanes)
            shifts = T.ramp(T.Cast(word, 0), T.Cast(word, bits), lanes)
        else:
            packed = wt.vload([kb, kh, kw, c4, 0], f"{word}x{words}")
            tiled = T.Shuffle([packed] * per, [T.int32(i) for i in range(lanes)])
            shifts = T.Shuffle([T.broadcast(T.Cast(word, bits * q), words)
                                for q in range(per)], [T.int32(i) for i in range(lanes)])
        byte_mask = (1 << bits) - 1
        mask = T.broadcast(T.Cast(word, sum(byte_mask << (8 * b) for b in range(wb // 8))),
                           lanes)
        codes = T.reinterpret(T.bitwise_and(T.shift_right(tiled, shifts), mask),
                              dtype=f"int8x{V}")
        one = T.broadcast(T.int8(1), V)
        return codes - one if bits == 2 else codes + codes - one

    def epilogue(v, c, m0, shift, scale):
        return fused_epilogue(T, out, v, c, m0, shift, scale, zero_point, lo, hi)

    def quantized(acc, scale, q, j, lane, c):
        """The pooled, quantized value (float32, integral) of output rows q*P .. q*P+P-1."""
        v = quantize_epilogue(T, acc[(q * P * NK + j) * L + lane], c, scale, K, ep,
                              inv_scale, zero_point, lo, hi)
        for r in range(1, P):
            v = T.max(v, quantize_epilogue(T, acc[((q * P + r) * NK + j) * L + lane], c,
                                           scale, K, ep, inv_scale, zero_point, lo, hi))
        return T.Cast(out, v)

    border = _border(N, OHP, OW, K, ep.borders, out, zero_point)

    @T.macro
    def blocks(x, wt, bias, y, m0, shift, scale):
        if quantizing and any(ep.borders):
            border(y)
        acc = T.alloc_buffer((PB * NK * L,), "int32", scope="global")
        for n, kbo, a, b in T.grid(N, KB // NK, A, B):
            for p, j in T.grid(PB, NK):
                for lane in T.vectorized(L):
                    acc[(p * NK + j) * L + lane] = bias[(kbo * NK + j) * L + lane]
            for kh, kw, c4 in T.grid(KH, KW, C4):
                for p in T.unroll(PB):
                    for j in T.unroll(NK):
                        # no let-bound temporaries: TVM spills them to the stack on every use
                        acc[T.ramp((p * NK + j) * L, 1, L)] = T.call_llvm_pure_intrin(
                            T.llvm_lookup_intrinsic_id(isa.intrinsic),
                            acc.vload([(p * NK + j) * L], f"int32x{L}"),
                            x_operand(x, n, row(a, b, p), col(a, b, p), kh, kw, c4),
                            w_operand(wt, kbo * NK + j, kh, kw, c4),
                            dtype=f"int32x{L}")
            if quantizing:
                for q, j in T.grid(PB // P, NK):
                    for lane in T.vectorized(L):
                        y[n, row(a, b, q * P) // P + PT, col(a, b, q * P) + PL,
                          (kbo * NK + j) * L + lane] = quantized(
                            acc, scale, q, j, lane, (kbo * NK + j) * L + lane)
            else:
                for p, j in T.grid(PB, NK):
                    for lane in T.vectorized(L):
                        y[n, row(a, b, p), col(a, b, p), (kbo * NK + j) * L + lane] = epilogue(
                            acc[(p * NK + j) * L + lane], (kbo * NK + j) * L + lane,
                            m0, shift, scale)

    return epilogue_kernel("conv_dot", blocks, (N, H, W, C), wt_shape, wt_dtype, K,
                           y_shape, out, requant, scale_size=K * (3 if ep.affine else 1))


def quantize_epilogue(T, v, c, scale, k: int, ep: Epilogue, inv_scale: float,
                      zero_point: int, lo: int, hi: int):
    """reference.py's ops on the accumulator v of channel c, in float32, op for op: the
    float output float32(v) * out_scale[c] (rule 4), the activation, a BatchNorm as
    torch's CPU kernel computes it, fma(x, bn_scale[c], bn_shift[c]) (one rounding: its
    vectorized x * alpha + beta is contracted; the lowering derives bn_scale/bn_shift as it
    does), then rule 1 into the next layer's qparams: clamp(roundeven(x * inv) + z, lo, hi),
    still float32 (a max pool over it is exact: quantization is monotonic)."""
    from edgebench.kernels.fp32_conv import activation

    x = activation(T, T.Cast("float32", v) * scale[c], ep.act)
    if ep.affine:
        x = T.call_llvm_pure_intrin("float32", T.llvm_lookup_intrinsic_id("llvm.fma"), x,
                                    scale[k + c], scale[2 * k + c])
    r = T.call_llvm_pure_intrin("float32", T.llvm_lookup_intrinsic_id("llvm.roundeven"),
                                x * T.float32(inv_scale))
    return T.max(T.min(r + T.float32(zero_point), T.float32(hi)), T.float32(lo))


def _border(n: int, oh: int, ow: int, k: int, borders: tuple[int, int, int, int], dtype: str,
            zero_point: int):
    """fp32_conv.zero_border's rows/columns around the interior, holding the zero point (the
    quantized 0.0 of the next layer's padding)."""
    from edgebench.kernels.fp32_conv import zero_border

    return zero_border(n, oh, ow, k, borders, dtype, zero_point)


def epilogue_kernel(name: str, body, x_shape: tuple, wt_shape: tuple, wt_dtype: str, k: int,
                    y_shape: tuple, out: str, requant: str = FIXED,
                    scale_size: int | None = None):
    """The PrimFunc of one of our int8 kernels, whose arguments end in what its epilogue needs
    (fused_epilogue): (x u8, wt, bias[k] i32, then nothing for int32 out, scale[k]
    (scale_dtype) or m0[k]/shift[k] i64, y). body: a T.macro(x, wt, bias, y, m0, shift,
    scale). Hand-scheduled, noalias, opaque to FuseOps; named `<name>_i/_f/_q`."""
    from tvm.script import tirx as T

    attrs = {"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE}
    if out == "int32":
        @T.prim_func
        def kernel_i(x: T.Buffer(x_shape, "uint8"), wt: T.Buffer(wt_shape, wt_dtype),
                     bias: T.Buffer((k,), "int32"), y: T.Buffer(y_shape, "int32")):
            T.func_attr(attrs)
            body(x, wt, bias, y, None, None, None)

        return kernel_i.with_attr("global_symbol", f"{name}_i")

    sdt = scale_dtype(out, requant)
    if sdt is not None:
        @T.prim_func
        def kernel_f(x: T.Buffer(x_shape, "uint8"), wt: T.Buffer(wt_shape, wt_dtype),
                     bias: T.Buffer((k,), "int32"), scale: T.Buffer((scale_size or k,), sdt),
                     y: T.Buffer(y_shape, out)):
            T.func_attr(attrs)
            body(x, wt, bias, y, None, None, scale)

        return kernel_f.with_attr("global_symbol", f"{name}_f")

    @T.prim_func
    def kernel_q(x: T.Buffer(x_shape, "uint8"), wt: T.Buffer(wt_shape, wt_dtype),
                 bias: T.Buffer((k,), "int32"), m0: T.Buffer((k,), "int64"),
                 shift: T.Buffer((k,), "int64"), y: T.Buffer(y_shape, out)):
        T.func_attr(attrs)
        body(x, wt, bias, y, m0, shift, None)

    return kernel_q.with_attr("global_symbol", f"{name}_q")


def scale_dtype(out: str, requant: str = FIXED) -> str | None:
    """The dtype of a kernel's one per-channel epilogue argument `scale`: float32 for float
    output, float64 for an int8 output requantized on exact float64 multipliers
    (requant=EXACT_F64); None: requantize on m0/shift (FIXED) or the raw int32 accumulator."""
    if out == "float32":
        return "float32"
    if out in ("uint8", "int8") and requant == EXACT_F64:
        return "float64"
    if out in ("uint8", "int8") and requant == QUANTIZE:
        return "float32"
    if requant not in (FIXED, EXACT_F64, QUANTIZE):
        raise ValueError(f"unknown requantize form {requant!r}: {FIXED}, {EXACT_F64} or "
                         f"{QUANTIZE}")
    return None


def fused_epilogue(T, out: str, v, c, m0, shift, scale, zero_point: int, lo: int, hi: int):
    """The int32 accumulator v of output channel c as the kernel's output: raw ("int32": dynamic
    quantization rescales it at run time), float32(v) * scale[c], or requantized to uint8/int8:
    with m0/shift, reference.py's int64 product and round-half-even shift; with a float64
    scale[c] = m0 * 2**-n (EXACT_F64), the same value in float64, about half the vector
    instructions (arith.f64_requantize_exact says when it is exact: then bit for bit)."""
    if out == "int32":
        return v
    if out == "float32":
        return T.Cast("float32", v) * scale[c]
    if scale is not None:  # clamp first (integer bounds commute with rounding), then round
        # half to even: llvm.roundeven (vrndscalepd); TVM's nearbyint came out 4 lanes wide,
        # and fast-math folds the add-and-subtract-2**52 trick away
        r = T.max(T.min(T.Cast("float64", v) * scale[c], T.float64(hi - zero_point)),
                  T.float64(lo - zero_point))
        rounded = T.call_llvm_pure_intrin("int32", T.llvm_lookup_intrinsic_id(
            "llvm.lrint"), r)
        return T.Cast(out, rounded + T.int32(zero_point))
    return T.Cast(out, T.max(T.min(round_shift(T, T.Cast("int64", v) * m0[c], shift[c])
                                   + T.int64(zero_point), T.int64(hi)), T.int64(lo)))


def round_shift(T, p, n):
    """round_half_even(p / 2**n): floor shift of p + 2**(n-1) - 1 + the odd bit of p >> n."""
    one = T.int64(1)
    return T.shift_right(p + T.shift_left(one, n - one) - one
                         + T.bitwise_and(T.shift_right(p, n), one), n)
