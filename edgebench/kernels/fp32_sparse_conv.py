"""Sparse FP32 conv2d (groups 1) on our NHWC activations: a `+sparse` layer drops in where an
fp32_conv layer was, same padded NHWC input, same NHWC output (channels padded to the lanes,
Epilogue.pad, bias / residual / ReLU(6) fused), so no layout copy sits between the two.

Why pixels, not channels, are the vector axis inside: with unstructured sparsity a vector of 16
output channels has a non-zero at almost every tap (at 80% zeros, 1 - 0.8^16 = 97% of such
blocks), so a channels-vectorized kernel skips nothing. Each non-zero weight is its own
scalar; what a vector of FMAs can share is its input: several output pixels (XNNPACK's SpMM,
the NCHW kernel in sparse_conv.py). So the kernel, per image:

1. copies its padded NHWC input into a channel-major scratch, split by stride phase:
   xt[c, ph, pw, hq, wq] = x[hq*SH + ph, wq*SW + pw, c] (zero outside). Output pixel (oh, ow)
   at tap (kh, kw) then reads plane (kh*DH % SH, kw*DW % SW) at position
   (oh + kh*DH // SH) * WQ + ow + kw*DW // SW: for every stride and dilation the pixels of a
   tap are consecutive, and the pixels of all rows form one index p = oh * WQ + ow (the WQ -
   OW columns past a row's end are computed and dropped). A tap of a non-zero weight is one
   offset into xt, stored with the weight;
2. for a tile of TP vectors of V consecutive pixels and each output channel k, walks k's
   non-zeros (CSR, in memory order of their taps): one broadcast weight, TP FMAs with the
   input vectors at its offset (vfmadd231ps with a memory operand; TP independent chains);
3. writes a chunk of L channels x the tile's pixels back channel-innermost with the epilogue
   (bias, residual, clamp) on channel vectors: the transpose back to NHWC, in L1.

Weights: data[nnz] f32, offsets[nnz] i32 (the tap's xt offset), indptr[K+1] i32, bias[K];
nnz is a symbolic extent, so one kernel serves every weight of a geometry. Padded output
channels (K rounded up to the lanes) have no non-zeros: bias 0, like fp32_conv's.
Hand-scheduled (`tirx.is_scheduled`), noalias, opaque to FuseOps, like our other kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgebench.kernels.fp32_conv import ATTRS, activation, fma, pad_bias, zero_border
from edgebench.kernels.layer import (
    NO_EPILOGUE,
    Epilogue,
    Layer,
    SlidingWindow,
    fp32_reason,
    round_up,
    vector_lanes,
)

NAME = "fp32_sparse_conv"
OPTION = "sparse"  # the variant option that puts it first (registry.OPTIONS): `+sparse`
INSTRUCTION = "vfmadd231ps"
PADDED_OUTPUT = True  # Epilogue.pad, like fp32_conv: writes the next conv's padded input
MIN_SPARSITY = 0.3  # below this the layer is not even a candidate (dense kernel then)
MAX_TP = 8  # pixel vectors per register tile at most (accumulators; 4 hide the FMA latency)
WINDOW_BYTES = 16 * 1024  # input a tile reads per channel block: half of Zen 4's 32 KiB L1D


@dataclass(frozen=True)
class SparseConv(SlidingWindow):
    """Geometry of one sparse NHWC conv on its padded input (fields as fp32_conv.Conv)."""

    n: int
    h: int  # padded input height/width
    w: int
    c: int  # real input channels (the reduction)
    k: int  # output channels, a multiple of lanes
    kh: int
    kw: int
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    lanes: int = 16  # L: channels per vector in the epilogue, and V: pixels per vector
    cx: int | None = None  # channels x carries, if more than c
    density: float = field(default=1.0, compare=False)  # non-zero fraction (for macs)
    tile: tuple[int, int] | None = None  # (TP, CB) instead of blocking() / channel_block()

    @property
    def macs(self) -> int:
        """Multiply-adds on the non-zeros (the work the kernel does)."""
        return int(self.n * self.oh * self.ow * self.k * self.c * self.kh * self.kw
                   * self.density)

    @property
    def hq(self) -> int:
        """Rows of one stride-phase plane of the scratch."""
        return self.oh + (self.kh - 1) * self.dilation[0] // self.stride[0]

    @property
    def wq(self) -> int:
        """Row length of a plane: the output width plus the taps' reach past it."""
        return self.ow + (self.kw - 1) * self.dilation[1] // self.stride[1]

    @property
    def plane(self) -> int:
        return self.hq * self.wq

    @property
    def pixels(self) -> int:
        """Pixel index space p = oh * wq + ow (row-end columns included)."""
        return self.oh * self.wq

    def blocking(self) -> int:
        """TP: pixel vectors per register tile (independent FMA chains per non-zero), 4 to
        MAX_TP, the one that computes the fewest vectors past the map (the whole map where it
        is smaller: a 7x7 map is one tile of 4)."""
        if self.tile is not None:
            return self.tile[0]
        vectors = -(-self.pixels // self.lanes)
        if vectors <= MAX_TP:
            return vectors
        return min(range(4, MAX_TP + 1), key=lambda tp: (-(-vectors // tp) * tp, -tp))

    @property
    def reach(self) -> int:
        """How far past a pixel its last tap reads, within a plane."""
        (sh, sw), (dh, dw) = self.stride, self.dilation
        return (self.kh - 1) * dh // sh * self.wq + (self.kw - 1) * dw // sw

    def channel_block(self) -> int:
        """CB: input channels per block. A tile walks every output channel's non-zeros of
        one block before the next, so the input it reads (CB channels x their stride planes
        x the tile plus the taps' reach) stays in L1 instead of being fetched from L2 once
        per output channel."""
        if self.tile is not None:
            return min(self.c, self.tile[1])
        per_channel = self.stride[0] * self.stride[1] * (
            self.blocking() * self.lanes + self.reach) * 4
        return max(1, min(self.c, WINDOW_BYTES // per_channel))

    @property
    def channel_blocks(self) -> int:
        return -(-self.c // self.channel_block())

    @property
    def tiles(self) -> int:
        return -(-self.pixels // (self.blocking() * self.lanes))

    def tap_offset(self, c: np.ndarray, kh: np.ndarray, kw: np.ndarray) -> np.ndarray:
        """The xt offset of tap (c, kh, kw) for output pixel 0."""
        (sh, sw), (dh, dw) = self.stride, self.dilation
        ph, qh = np.divmod(kh * dh, sh)[::-1]
        pw, qw = np.divmod(kw * dw, sw)[::-1]
        return ((c * sh + ph) * sw + pw) * self.plane + qh * self.wq + qw

    @property
    def scratch(self) -> int:
        """Floats of xt: the planes, plus the slack the last tile reads past the last plane
        (pixels past the map, zero)."""
        last = int(self.tap_offset(np.int64(self.c - 1), np.int64(self.kh - 1),
                                   np.int64(self.kw - 1)))
        return max(self.c * self.stride[0] * self.stride[1] * self.plane,
                   last + self.tiles * self.blocking() * self.lanes)


def pack_csr(w: np.ndarray, s: SparseConv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[K, C, KH, KW] -> (data[nnz] f32, offsets[nnz] i32, indptr[blocks * s.k + 1] i32):
    per input channel block, per output channel, its non-zeros in increasing scratch offset
    (memory order): row cb * s.k + k."""
    k = w.shape[0]
    rows, c, kh, kw = np.nonzero(w)
    offsets = s.tap_offset(c, kh, kw).astype(np.int32)
    csr_rows = c // s.channel_block() * s.k + rows
    order = np.lexsort((offsets, csr_rows))
    rows, c, kh, kw, offsets = rows[order], c[order], kh[order], kw[order], offsets[order]
    data = w[rows, c, kh, kw].astype(np.float32)
    counts = np.bincount(csr_rows, minlength=s.channel_blocks * s.k)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    if not len(data):  # a buffer needs an extent; indptr keeps every row empty
        data, offsets = np.zeros(1, np.float32), np.zeros(1, np.int32)
    assert k <= s.k
    return data, offsets, indptr


def _phases(k: int, d: int, s: int) -> int:
    """How many stride phases (0, 1, ...) the taps of a window k, dilation d read: the
    planes the scratch needs filled (all s where the set is not a prefix)."""
    used = {i * d % s for i in range(k)}
    return len(used) if used == set(range(len(used))) else s


def sparse_conv_kernel(s: SparseConv, ep: Epilogue = NO_EPILOGUE):
    """TIR PrimFunc: args (x[n,h,w,cx] f32 padded NHWC, data[nnz], offsets[nnz],
    indptr[blocks*k+1], bias[k], [residual[n,oh,ow,k]], y[n,top+oh+bottom,left+ow+right,k])
    with ep.borders: the result in the interior, zeros around (no affine or pool epilogue)."""
    from tvm.script import tirx as T

    N, H, W, C, K = s.n, s.h, s.w, s.c, s.k
    CX = s.cx or C
    SH, SW = s.stride
    OH, OW, L = s.oh, s.ow, s.lanes
    V = L
    HQ, WQ, PLANE, P = s.hq, s.wq, s.plane, s.pixels
    TP = s.blocking()
    TILE = TP * V
    TILES = s.tiles
    NCB = s.channel_blocks
    UH, UW = _phases(s.kh, s.dilation[0], SH), _phases(s.kw, s.dilation[1], SW)
    PLANES = C * SH * SW * PLANE
    XT = s.scratch
    if ep.affine or ep.pool > 1:
        raise ValueError("sparse_conv_kernel: no affine or pool epilogue")
    PH, PBOT, PW, PR = ep.borders
    vec = f"float32x{V}"
    y_shape = (N, OH + PH + PBOT, OW + PW + PR, K)
    res_shape = (N, OH, OW, K)

    border = zero_border(N, OH, OW, K, ep.borders)

    @T.macro
    def transpose_in(x, xt, n):
        """xt[c, ph, pw, hq, wq] = x[n, hq*SH + ph, wq*SW + pw, c], zero past the input; only
        the phases a tap reads (a 1x1 stride-2 conv: a quarter of the input)."""
        for ph, pw in T.grid(UH, UW):
            for hq in range(HQ):
                for wq in range(WQ):
                    for c in range(C):
                        xt[((c * SH + ph) * SW + pw) * PLANE + hq * WQ + wq] = T.if_then_else(
                            hq * SH + ph < H and wq * SW + pw < W,
                            x[n, T.min(hq * SH + ph, H - 1), T.min(wq * SW + pw, W - 1), c],
                            T.float32(0))
        for i in range(XT - PLANES):
            xt[PLANES + i] = T.float32(0)

    def result(v, res, n, oh, ow, c):
        return activation(T, v + res[n, oh, ow, c] if ep.residual else v, ep.act)

    @T.macro
    def body(x, data, offsets, indptr, bias, y, res):
        if any(ep.borders):
            border(y)
        xt = T.alloc_buffer((XT,), "float32", scope="global")
        acc = T.alloc_buffer((TILE,), "float32", scope="global")
        part = T.alloc_buffer((K * TILE,), "float32", scope="global")  # [k, pixel] sums
        for n in range(N):
            transpose_in(x, xt, n)
            for tile in range(TILES):
                for i in T.serial(K * TP):
                    part[T.ramp(i * V, 1, V)] = T.broadcast(T.float32(0), V)
                for cb, k in T.grid(NCB, K):
                    for t in T.unroll(TP):
                        acc[T.ramp(t * V, 1, V)] = part.vload([k * TILE + t * V], vec)
                    for b in range(indptr[cb * K + k], indptr[cb * K + k + 1]):
                        for t in T.unroll(TP):
                            acc[T.ramp(t * V, 1, V)] = fma(
                                T, acc.vload([t * V], vec), T.broadcast(data[b], V),
                                xt.vload([offsets[b] + tile * TILE + t * V], vec), V)
                    for t in T.unroll(TP):
                        part[T.ramp(k * TILE + t * V, 1, V)] = acc.vload([t * V], vec)
                for kc in range(K // L):
                    for p in range(TILE):
                        if tile * TILE + p < P and (tile * TILE + p) % WQ < OW:
                            for lane in T.vectorized(L):
                                y[n, (tile * TILE + p) // WQ + PH, (tile * TILE + p) % WQ + PW,
                                  kc * L + lane] = result(
                                    part[(kc * L + lane) * TILE + p] + bias[kc * L + lane], res, n,
                                    (tile * TILE + p) // WQ, (tile * TILE + p) % WQ,
                                    kc * L + lane)

    if ep.residual:
        @T.prim_func
        def kernel_res(x: T.Buffer((N, H, W, CX), "float32"), d: T.handle, o: T.handle,
                       indptr: T.Buffer((NCB * K + 1,), "int32"), bias: T.Buffer((K,), "float32"),
                       res: T.Buffer(res_shape, "float32"), y: T.Buffer(y_shape, "float32")):
            T.func_attr(ATTRS)
            nnz = T.int32()
            data = T.match_buffer(d, (nnz,), "float32")
            offsets = T.match_buffer(o, (nnz,), "int32")
            body(x, data, offsets, indptr, bias, y, res)

        return kernel_res.with_attr("global_symbol", "sparse_conv_f32_res")

    @T.prim_func
    def kernel(x: T.Buffer((N, H, W, CX), "float32"), d: T.handle, o: T.handle,
               indptr: T.Buffer((NCB * K + 1,), "int32"), bias: T.Buffer((K,), "float32"),
               y: T.Buffer(y_shape, "float32")):
        T.func_attr(ATTRS)
        nnz = T.int32()
        data = T.match_buffer(d, (nnz,), "float32")
        offsets = T.match_buffer(o, (nnz,), "int32")
        body(x, data, offsets, indptr, bias, y, None)

    return kernel.with_attr("global_symbol", "sparse_conv_f32")


# ---- the registry's interface (kernels/registry.py) ----

def shape(layer: Layer, target) -> SparseConv:
    """The geometry of a groups-1 conv layer: padded input and K padded to the lanes as
    fp32_conv has them (the same tensors in and out)."""
    lanes = vector_lanes(target)
    ph, pw = layer.padding
    cx = layer.in_channels if layer.in_channels != layer.c else None
    return SparseConv(layer.n, layer.h + 2 * ph, layer.w + 2 * pw, layer.c,
                      round_up(layer.k, lanes), *layer.kernel, layer.stride, layer.dilation,
                      lanes, cx=cx, density=round(1.0 - layer.sparsity, 4))


def target_reason(target) -> str | None:
    """Why this kernel does not run on `target` (None: it does): it is written and checked
    for x86 (AVX2/AVX-512) only; aarch64 +sparse convs use the NCHW sparse kernels."""
    if target.arch != "x86_64":
        return f"the NHWC sparse conv is x86 only, not {target.arch}"
    return None


def fits(layer: Layer, target) -> str | None:
    if layer.kind != "conv2d" or layer.groups != 1:
        return "not a groups-1 conv2d"
    if layer.sparsity < MIN_SPARSITY:
        return f"weight sparsity {layer.sparsity:.2f} below {MIN_SPARSITY}"
    if layer.dtype != "float32":
        return f"{layer.dtype}, not float32"
    return target_reason(target) or fp32_reason(layer, target)


def emit(layer: Layer, target):
    return sparse_conv_kernel(shape(layer, target), layer.epilogue)


def pack(layer: Layer, target, weight: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    """(data, offsets, indptr, bias): the CSR of the [K, C, KH, KW] weight, tap offsets into
    the kernel's scratch, and the padded bias."""
    s = shape(layer, target)
    return [*pack_csr(weight.reshape(*weight.shape[:2], s.kh, s.kw), s),
            pad_bias(bias, layer.k, s.k)]
