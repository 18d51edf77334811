"""Direct FP32 conv2d (groups 1) on NHWC activations: the int8 builder's register tile with a
dot width of 1 (one FMA per lane), the recipe MLAS/XNNPACK/oneDNN share.

Layout (why): output channels are the vector axis (16 per zmm on AVX-512, 8 per ymm on AVX2,
4 per q register on NEON; twice that in FP16: `layer.Vectors`), so an output pixel's channels
are contiguous and one input element, broadcast to every lane (an embedded-broadcast memory
operand of vfmadd231ps; NEON's by-element `fmla v.4s, v.4s, v.s[i]`), multiplies one weight
vector. Weights
are packed once at build time in the order the micro-kernel reads them,
[K / (NK*L), KH, KW, C, NK*L]: the NK weight vectors of a channel group are one contiguous
stream. A register block of PB output pixels x NK channel vectors keeps PB*NK accumulators (a
constant-size stack array LLVM keeps in registers; `Conv.blocking` picks the tile), starts
from (kh, kw, c); the epilogue adds the residual and clamps (ReLU / ReLU6) in registers, then
optionally scales and shifts per channel and max-pools row pairs (Epilogue). A row width that PB
does not divide ends in a narrower tail block, so PB is free to be the best tile. On a width-1
image (CREPE) the block runs down the column instead (`Conv.down_columns`).

The input arrives already padded (kernels/fp32_glue.py pads in one NHWC copy); C is any count;
K is padded to a multiple of the lanes (extra output channels have zero weights and bias, so
they hold 0 after ReLU and after a residual add of zero channels: the lowering keeps them).
Hand-scheduled (`tirx.is_scheduled`): MetaSchedule leaves it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.kernels.layer import (
    AVX512,
    NO_EPILOGUE,
    Epilogue,
    Layer,
    SlidingWindow,
    Vectors,
    fp32_reason,
    round_up,
    vectors,
)

NAME = "fp32_conv"
PADDED_OUTPUT = True  # Epilogue.pad: can write straight into the next conv's padded input
AFFINE_EPILOGUE = True  # Epilogue.affine: a per-channel scale/shift after the activation
POOL_EPILOGUE = True  # Epilogue.pool: a (P x 1) max pool over a column block's rows

OPAQUE = 8  # relax op_pattern kOpaque: FuseOps must not merge other ops into our kernels
# every kernel of ours: noalias pointers, hand-scheduled (MetaSchedule leaves it), opaque
ATTRS = {"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE}
MAX_ACCUMULATORS = AVX512.max_accumulators  # of 32 zmm: + NK weight vectors (broadcasts
# are memory operands)
# pixels per block down a column, by vectors per block (NK): results/fp32/crepe-tiles.md
COLUMN_TILES = {1: 8, 2: 8}


@dataclass(frozen=True)
class Conv(SlidingWindow):
    """Geometry of one FP32 NHWC conv on its padded input."""

    n: int
    h: int  # padded input height/width
    w: int
    c: int
    k: int  # output channels, a multiple of lanes
    kh: int
    kw: int
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    vec: Vectors = AVX512
    tile: tuple[int, int] | None = None  # (PB, NK) instead of blocking()'s choice
    rows: bool = False  # x, y (and residual) are 2-D [w, c] / [w, k] (a linear's rows)
    cx: int | None = None  # channels x carries, if more than c (zero padding: not read)

    @property
    def lanes(self) -> int:
        return self.vec.lanes

    @property
    def macs(self) -> int:
        return self.n * self.oh * self.ow * self.k * self.c * self.kh * self.kw

    @property
    def down_columns(self) -> bool:
        """Pixel blocks run down a column, not along a row: a width-1 image (CREPE's audio
        frame, H = 1024, W = 1) would give a row tile of one pixel, one accumulator chain."""
        return not self.rows and self.ow == 1 and self.oh > 1

    def blocking(self, pool: int = 1) -> tuple[int, int]:
        """(PB pixels, NK channel vectors) per register block. A conv: vec.pixels x 2
        vectors (1 vector where K is an odd count of them). AVX-512: 7 x 2 = 14
        accumulators leave LLVM registers to spare, and measured alone on Zen 4
        (results/fp32/tiles.md) it beats the MLAS-style 6 x 4 and 7 x 4 on every ResNet-18 /
        MobileNetV2 shape (7 x 4 fills all 32 zmm and spills: 40-60% of peak); 7 divides
        every row width of both. NEON: XNNPACK's 4 x 8 / 6 x 8 (channels) tiles. A batch-1
        linear (one pixel) streams up to 8 vectors, for 8 independent FMA chains; a linear's
        rows keep the widest group up to 4 vectors (2 on NEON, whose tile has 2) and as
        many rows as fit in vec.max_accumulators. Down a column (`down_columns`) the block
        is a multiple of `pool` rows (a fused max pool reduces within it): COLUMN_TILES."""
        if self.tile is not None:
            return self.tile
        kb = self.k // self.lanes
        if self.ow == 1 and self.oh == 1:
            return 1, max(d for d in (1, 2, 4, 8) if kb % d == 0)
        if self.down_columns:
            nk = 2 if kb % 2 == 0 else 1
            pb = min(self.oh, COLUMN_TILES[nk])
            return max(pb - pb % pool, pool), nk
        if not self.rows:
            return min(self.ow, self.vec.pixels), 2 if kb % 2 == 0 else 1
        nk = max(d for d in (1, 2, 4) if kb % d == 0 and d <= self.vec.row_vectors)
        return min(self.ow, self.vec.max_accumulators // nk, 6 if nk == 4 else 12), nk

    def weight_shape(self) -> tuple[int, ...]:
        _, nk = self.blocking()
        return (self.k // (nk * self.lanes), self.kh, self.kw, self.c, nk * self.lanes)


def pack_weights(w: np.ndarray, s: Conv) -> np.ndarray:
    """[K, C, KH, KW] float -> the kernel's [K/(NK*L), KH, KW, s.c, NK*L] (zero output rows and
    input columns as padding up to s.k, s.c)."""
    k, c = w.shape[:2]
    full = np.zeros((s.k, s.c, s.kh, s.kw), np.float32)
    full[:k, :c] = w
    g = s.weight_shape()
    return np.ascontiguousarray(full.reshape(g[0], g[4], s.c, s.kh, s.kw)
                                .transpose(0, 3, 4, 2, 1))


def pad_bias(b: np.ndarray | None, k: int, size: int) -> np.ndarray:
    out = np.zeros(size, np.float32)
    if b is not None:
        out[:k] = b
    return out


def activation(T, v, act: str | None, dtype: str = "float32"):
    """The fused activation on a float (dtype) expression: a clamp, or the logistic sigmoid
    (exp as kernels/fp32_rowwise.py's vector polynomial, not 16 libm calls)."""
    if act is None:
        return v
    if act == "sigmoid":
        from edgebench.kernels.fp32_rowwise import exp

        return T.Cast(dtype, 1) / (T.Cast(dtype, 1) + exp(T, -v))
    v = T.max(v, T.Cast(dtype, 0))
    return T.min(v, T.Cast(dtype, 6)) if act == "relu6" else v


def fma(T, acc, a, b, lanes: int, dtype: str = "float32"):
    """acc + a * b as one fused multiply-add (llvm.fma: vfmadd231ps / fmla, not a rounded
    product)."""
    return T.call_llvm_pure_intrin(f"{dtype}x{lanes}", T.llvm_lookup_intrinsic_id("llvm.fma"),
                                   a, b, acc)


def accumulate(pb: int, nk: int, lanes: int, extents: tuple[int, int, int], scalar, vector,
               dtype: str = "float32"):
    """The register-tiled accumulate loop every FP32 GEMM-shaped kernel of ours shares (conv,
    dense, batched matmul, Winograd's GEMMs): a T.macro(acc, ctx) adding, for each reduction
    index r = (r0, r1, r2) over `extents` (1 for an unused axis), broadcast(scalar(ctx, p, r))
    * vector(ctx, j, r) into the accumulators acc[(p * nk + j) * lanes ...] of pb pixels/rows
    x nk vectors, both unrolled: one FMA each (vfmadd231ps, fmla), the scalar broadcast. ctx
    is the caller's tuple of buffers and indices the two loads read."""
    from tvm.script import tirx as T

    vec = f"{dtype}x{lanes}"
    e0, e1, e2 = extents

    @T.macro
    def loop(acc, ctx):
        for r0, r1, r2 in T.grid(e0, e1, e2):
            for p in T.unroll(pb):
                for j in T.unroll(nk):
                    acc[T.ramp((p * nk + j) * lanes, 1, lanes)] = fma(
                        T, acc.vload([(p * nk + j) * lanes], vec),
                        T.broadcast(scalar(ctx, p, (r0, r1, r2)), lanes),
                        vector(ctx, j, (r0, r1, r2)), lanes, dtype)

    return loop


def conv_kernel(s: Conv, ep: Epilogue = NO_EPILOGUE):
    """TIR PrimFunc: args (x[n,h,w,c] f32 padded, wt = pack_weights(w, s), consts,
    [residual[n,oh,ow,k]], y[n, oh/pool + top + bottom, ow + left + right, k]) with the
    borders ep.borders: the result in the interior, zeros around. consts: bias[k], or with
    ep.affine [bias; scale; shift] ([3k]). A fused pool (ep.pool > 1) needs the pixel blocks
    down a column (`Conv.down_columns`) and oh a multiple of it."""
    from tvm.script import tirx as T

    N, H, W, C, K, KH, KW = s.n, s.h, s.w, s.c, s.k, s.kh, s.kw
    SH, SW = s.stride
    DH, DW = s.dilation
    OH, OW, L = s.oh, s.ow, s.lanes
    P = ep.pool
    PB, NK = s.blocking(P)
    G = K // (NK * L)
    COL = s.down_columns
    # the pixel p of a block sits at (oh0 + p * DPH, ow0 + p * DPW)
    DPH, DPW = (1, 0) if COL else (0, 1)
    PIX = OH if COL else OW  # pixels along the blocked axis
    TAIL = PIX % PB  # pixels of the narrower last block (a Python int: unrolled away)
    vec, DT = s.vec.vec, s.vec.dtype
    PT, PBOT, PL, PR = ep.borders
    if s.rows and any(ep.borders):
        raise ValueError("conv_kernel: a linear's rows have no padded output")
    if P > 1 and (not COL or OH % P or PB % P):
        raise ValueError(f"conv_kernel: a fused {P}-row pool needs column blocks and "
                         f"{OH} rows a multiple of it")
    OHP = OH // P
    CX = s.cx or C
    xs, ys = ((W, CX), (OW, K)) if s.rows else ((N, H, W, CX),
                                                (N, OHP + PT + PBOT, OW + PL + PR, K))

    def at(buf, n, h, w, c):
        """buf[n, h, w, c], or buf[w, c] for a linear's 2-D rows."""
        return buf[w, c] if s.rows else buf[n, h, w, c]

    border = zero_border(N, OHP, OW, K, ep.borders, DT)

    def result(v, consts, res, n, h, w, c):
        """The epilogue on accumulator v: + residual, the clamp, the scale and shift (one
        expression: TVM spills let-bound temporaries to the stack)."""
        v = activation(T, v + at(res, n, h, w, c) if ep.residual else v, ep.act, DT)
        return v * consts[K + c] + consts[2 * K + c] if ep.affine else v

    def pooled(acc, consts, res, n, oh0, ow0, q, c, a):
        """The max over the P rows q*P .. q*P+P-1 of a column block (after the epilogue)."""
        v = result(acc[(q * P * NK) * L + a], consts, res, n, oh0 + q * P, ow0, c)
        for r in range(1, P):
            v = T.max(v, result(acc[((q * P + r) * NK) * L + a], consts, res, n,
                                oh0 + q * P + r, ow0, c))
        return v

    def pixel(ctx, p, r):
        """Input element (kh, kw, c) = r of the block's pixel p."""
        x, _, n, _, oh0, ow0 = ctx
        kh, kw, c = r
        return at(x, n, (oh0 + p * DPH) * SH + kh * DH, (ow0 + p * DPW) * SW + kw * DW, c)

    def weights(ctx, j, r):
        _, wt, _, g, _, _ = ctx
        return wt.vload([g, *r, j * L], vec)

    def tile(pb: int):
        loop = accumulate(pb, NK, L, (KH, KW, C), pixel, weights, DT)

        @T.macro
        def block(x, wt, consts, y, res, n, g, oh0, ow0):
            acc = T.alloc_buffer((pb * NK * L,), DT, scope="global")
            for p, j in T.grid(pb, NK):
                acc[T.ramp((p * NK + j) * L, 1, L)] = consts.vload([(g * NK + j) * L], vec)
            loop(acc, (x, wt, n, g, oh0, ow0))
            if P > 1:
                for q, j in T.grid(pb // P, NK):
                    for lane in T.vectorized(L):
                        y[n, oh0 // P + q + PT, ow0 + PL, (g * NK + j) * L + lane] = pooled(
                            acc, consts, res, n, oh0, ow0, q, (g * NK + j) * L + lane,
                            j * L + lane)
            else:
                for p, j in T.grid(pb, NK):
                    for lane in T.vectorized(L):
                        if s.rows:
                            y[ow0 + p, (g * NK + j) * L + lane] = result(
                                acc[(p * NK + j) * L + lane], consts, res, n, oh0, ow0 + p,
                                (g * NK + j) * L + lane)
                        else:
                            y[n, oh0 + p * DPH + PT, ow0 + p * DPW + PL,
                              (g * NK + j) * L + lane] = result(
                                acc[(p * NK + j) * L + lane], consts, res, n, oh0 + p * DPH,
                                ow0 + p * DPW, (g * NK + j) * L + lane)

        return block

    main, tail = tile(PB), tile(max(TAIL, 1))

    @T.macro
    def body(x, wt, consts, y, res):
        if any(ep.borders):
            border(y)
        if COL:
            for n, g, ow in T.grid(N, G, OW):
                for oho in range(OH // PB):
                    main(x, wt, consts, y, res, n, g, oho * PB, ow)
                if TAIL > 0:
                    tail(x, wt, consts, y, res, n, g, OH - TAIL, ow)
        else:
            for n, g, oh in T.grid(N, G, OH):
                for owo in range(OW // PB):
                    main(x, wt, consts, y, res, n, g, oh, owo * PB)
                if TAIL > 0:
                    tail(x, wt, consts, y, res, n, g, oh, OW - TAIL)

    return fp32_kernel("conv_f32", body, xs, s.weight_shape(), K * (3 if ep.affine else 1),
                       ys, ep.residual, (N, OH, OW, K), DT)


def zero_border(n: int, oh: int, ow: int, k: int, borders: tuple[int, int, int, int],
                dtype: str = "float32", value: int = 0):
    """T.macro(y): the zero rows / columns around the [oh, ow] interior of a padded NHWC
    output y[n, top + oh + bottom, left + ow + right, k] of `dtype`, borders = (top, bottom,
    left, right) (Epilogue.borders); `value` instead of 0 (an int8 zero point)."""
    from tvm.script import tirx as T

    top, bottom, left, right = borders

    @T.macro
    def border(y):
        for b, i, j, lane in T.grid(n, top, ow + left + right, k):
            y[b, i, j, lane] = T.Cast(dtype, value)
        for b, i, j, lane in T.grid(n, bottom, ow + left + right, k):
            y[b, oh + top + i, j, lane] = T.Cast(dtype, value)
        for b, i, j, lane in T.grid(n, oh, left, k):
            y[b, top + i, j, lane] = T.Cast(dtype, value)
        for b, i, j, lane in T.grid(n, oh, right, k):
            y[b, top + i, ow + left + j, lane] = T.Cast(dtype, value)

    return border


def fp32_kernel(name: str, body, x_shape: tuple, wt_shape: tuple, k: int, y_shape: tuple,
                residual: bool, res_shape: tuple | None = None, dtype: str = "float32"):
    """The PrimFunc of one of our float kernels (conv, depthwise): (x, wt, bias[k], y), or
    (x, wt, bias[k], res, y) with a residual to add in the epilogue (res_shape, default
    y_shape), every tensor of `dtype`. body: a T.macro(x, wt, bias, y, res).
    Hand-scheduled, noalias, opaque to FuseOps; named `<name>` / `<name>_res`."""
    from tvm.script import tirx as T

    res_shape = res_shape or y_shape
    DT = dtype

    if residual:
        @T.prim_func
        def kernel_res(x: T.Buffer(x_shape, DT), wt: T.Buffer(wt_shape, DT),
                       bias: T.Buffer((k,), DT), res: T.Buffer(res_shape, DT),
                       y: T.Buffer(y_shape, DT)):
            T.func_attr(ATTRS)
            body(x, wt, bias, y, res)

        return kernel_res.with_attr("global_symbol", f"{name}_res")

    @T.prim_func
    def kernel(x: T.Buffer(x_shape, DT), wt: T.Buffer(wt_shape, DT),
               bias: T.Buffer((k,), DT), y: T.Buffer(y_shape, DT)):
        T.func_attr(ATTRS)
        body(x, wt, bias, y, None)

    return kernel.with_attr("global_symbol", name)


# ---- the registry's interface (kernels/registry.py) ----

def shape(layer: Layer, target) -> Conv:
    """The kernel geometry of a groups-1 conv layer: padded input, K padded to the lanes;
    the reduction runs over the real input channels only (an input our kernels padded to
    whole vectors, e.g. 24 of 32, carries zeros there: a third less work)."""
    vec = vectors(target, layer.dtype)
    ph, pw = layer.padding
    cx = layer.in_channels if layer.in_channels != layer.c else None
    return Conv(layer.n, layer.h + 2 * ph, layer.w + 2 * pw, layer.c,
                round_up(layer.k, vec.lanes), *layer.kernel, layer.stride, layer.dilation, vec,
                cx=cx)


def fits(layer: Layer, target) -> str | None:
    if layer.kind != "conv2d" or layer.groups != 1:
        return "not a groups-1 conv2d"
    return fp32_reason(layer, target)


def emit(layer: Layer, target):
    return conv_kernel(shape(layer, target), layer.epilogue)


def pack(layer: Layer, target, weight: np.ndarray, bias: np.ndarray,
         affine: tuple[np.ndarray, np.ndarray] | None = None) -> list[np.ndarray]:
    return packed(shape(layer, target), layer, weight, bias, affine)


def packed(s: Conv, layer: Layer, weight: np.ndarray, bias: np.ndarray,
           affine: tuple[np.ndarray, np.ndarray] | None = None) -> list[np.ndarray]:
    """The constant arguments of the kernel of geometry s: packed weights ([K, C, KH, KW], or
    a linear's [K, C]) and the padded bias, followed by the padded (scale, shift) of an
    affine epilogue (one [3 * K] array; padded channels 0, so they stay 0)."""
    w4 = weight.reshape(*weight.shape[:2], s.kh, s.kw)
    consts = [pad_bias(v, layer.k, s.k) for v in (bias, *(affine or ()))]
    return [pack_weights(w4, s), np.concatenate(consts)]
