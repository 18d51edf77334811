"""Direct sparse convolution (NCHW, groups 1) for conv weights that are compile-time constants.

The weight [O, I, KH, KW] is viewed as [O, I*KH*KW] and stored as BSR with R x 1 blocks (R
output channels share a column). Instead of a column index, each stored block keeps the
offset of its (ci, kh, kw) tap in the padded input, so the kernel needs no im2col buffer:
for a tile of TH output rows x V output columns it accumulates
    acc[r, t, v] += w[b, r] * x_pad[offset[b] + (oh + t) * stride_h * Wp + (ow + v) * stride_w]
over the non-zero taps of its output channels. The V output columns are the vector lanes
(16 fills an AVX-512 register, four NEON registers); R x TH independent accumulators hide the
FMA latency. Rows are computed V-wide over a padded width: the input is padded on the right so
every read stays in bounds, and the pass slices the extra columns off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.kernels.sparse_dense import ACTIVATIONS, BSR, _epilogue, to_bsr


@dataclass(frozen=True)
class ConvGeometry:
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: tuple[int, int]
    pad: tuple[int, int, int, int]  # top, left, bottom, right (extra right padding included)
    oh: int
    ow: int
    lanes: int  # V: output columns per vector

    @property
    def hp(self) -> int:
        return self.h + self.pad[0] + self.pad[2]

    @property
    def wp(self) -> int:
        return self.w + self.pad[1] + self.pad[3]

    @property
    def ow_padded(self) -> int:
        return -(-self.ow // self.lanes) * self.lanes

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        """What the kernel writes: output width rounded up to whole vectors."""
        return (self.n, self.o, self.oh, self.ow_padded)


def _lanes(ow: int) -> int:
    """16 lanes unless that wastes over a quarter of the row (then 8)."""
    if ow <= 8:
        return 8
    waste16 = (-(-ow // 16) * 16 - ow) / ow
    return 16 if waste16 <= 0.25 else 8


def conv_geometry(x_shape, w_shape, strides, padding) -> ConvGeometry:
    n, c, h, w = x_shape
    o, _ci, kh, kw = w_shape
    top, left, bottom, right = padding if len(padding) == 4 else (*padding, *padding)
    sh, sw = strides
    oh = (h + top + bottom - kh) // sh + 1
    ow = (w + left + right - kw) // sw + 1
    lanes = _lanes(ow)
    need_w = (-(-ow // lanes) * lanes - 1) * sw + kw  # input columns the last vector reads
    right += max(0, need_w - (w + left + right))
    return ConvGeometry(n, c, h, w, o, kh, kw, (sh, sw), (top, left, bottom, right), oh, ow,
                        lanes)


def to_conv_bsr(weight: np.ndarray, block: tuple[int, int], geo: ConvGeometry) -> BSR:
    """BSR of the [O, I*KH*KW] view with each block's column replaced by its tap offset."""
    o = weight.shape[0]
    bsr = to_bsr(weight.reshape(o, -1), block, lanes=1)
    col = bsr.indices.astype(np.int64)
    ci, rest = np.divmod(col, geo.kh * geo.kw)
    kh, kw = np.divmod(rest, geo.kw)
    offsets = (ci * geo.hp * geo.wp + kh * geo.wp + kw).astype("int32")
    return BSR(bsr.data, offsets, bsr.indptr, bsr.shape, bsr.block)


def sparse_conv_kernel(geo: ConvGeometry, w: BSR, act: str = "none"):
    """TIR PrimFunc args: (x_pad[N, C, Hp, Wp], data[nnzb, R, 1], offsets[nnzb],
    indptr[O/R + 1], bias[O], y[N, O, OH, OW_padded])."""
    from tvm.script import tirx as T

    if act not in ACTIVATIONS:
        raise ValueError(f"unsupported epilogue activation {act!r}; known: {ACTIVATIONS}")
    R = w.block[0]
    if w.block[1] != 1:
        raise ValueError(f"sparse conv takes R x 1 blocks, not {w.block}")
    N, C, HP, WP, CO = geo.n, geo.c, geo.hp, geo.wp, geo.o
    OH, OWP, V = geo.oh, geo.ow_padded, geo.lanes
    SH, SW = geo.stride
    TH = max(d for d in range(1, max(1, 8 // R) + 1) if OH % d == 0)
    # Few output rows (a Linear's tokens arrive as one row): widen the tile along the row.
    TW = max(d for d in range(1, max(1, 8 // (R * TH)) + 1) if (OWP // V) % d == 0)
    V = V * TW
    NNZB, OB = w.data.shape[0], CO // R
    SIZE = C * HP * WP

    @T.prim_func
    def sparse_conv2d(x: T.Buffer((N, C, HP, WP), "float32"),
                      data: T.Buffer((NNZB, R, 1), "float32"),
                      offsets: T.Buffer((NNZB,), "int32"), indptr: T.Buffer((OB + 1,), "int32"),
                      bias: T.Buffer((CO,), "float32"),
                      y: T.Buffer((N, CO, OH, OWP), "float32")):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        xf = T.decl_buffer((N * SIZE,), "float32", data=x.data)
        # "global" scope: a small constant-size buffer becomes an LLVM alloca that SROA turns
        # into registers ("local" would be a heap workspace, re-read on every FMA).
        acc = T.alloc_buffer((R, TH, V), "float32", scope="global")
        for n in range(N):
            for ob in range(OB):
                for oh_o in range(OH // TH):
                    for ow_o in range(OWP // V):
                        for r in T.unroll(R):
                            for t in T.unroll(TH):
                                for v in T.vectorized(V):
                                    acc[r, t, v] = bias[ob * R + r]
                        for b in range(indptr[ob], indptr[ob + 1]):
                            for r in T.unroll(R):
                                for t in T.unroll(TH):
                                    for v in T.vectorized(V):
                                        acc[r, t, v] = acc[r, t, v] + data[b, r, 0] * xf[
                                            n * SIZE + offsets[b] + (oh_o * TH + t) * SH * WP
                                            + (ow_o * V + v) * SW]
                        for r in T.unroll(R):
                            for t in T.unroll(TH):
                                for v in T.vectorized(V):
                                    y[n, ob * R + r, oh_o * TH + t, ow_o * V + v] = _epilogue(
                                        T, acc[r, t, v], T.float32(0), act)

    return sparse_conv2d
