"""Winograd F(m x m, 3 x 3) FP32 conv for stride-1 3x3 layers: the `+winograd` variant only.

Why: ResNet-18's 3x3 convs already run at ~95% of the FMA peak as direct convolutions
(fp32_conv.py), so fewer multiplies is the only way further. F(2x2, 3x3) computes each 2x2
output tile from a 4x4 input tile with 16 multiplies per (input, output) channel pair
instead of 36 (2.25x fewer); F(4x4, 3x3) with 36 instead of 144 (4x fewer) but larger
transform constants, so more rounding error (`tile_size` picks per layer). Its error is never
mixed into FP32 rows: the family is chosen only under the variant suffix `+winograd`,
verified against the looser `float32-winograd` tolerance (verify.py), and its max error
reported in the row (`verify_err`).

One PrimFunc per layer (the direct conv's signature: x, u, bias, [residual], y), over blocks
of whole tile rows so the intermediates stay in cache:
1. input transform V[xi, t, c] = (B^T d_t B)[xi] per tile t and channel (vector over c),
   one axis at a time (unrolled sums over the tables' nonzeros);
2. A*A batched GEMMs M[xi] = V[xi] @ U[xi] on the direct conv's register tile (7 tiles x NK
   channel vectors, the input broadcast, the packed weight panel a vector), U = G g G^T
   packed once at build time as [A*A, K / (NK*L), C, NK*L];
3. output transform y = A^T M_t A, + bias, + residual, clamp (vector over k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgebench.kernels.fp32_conv import accumulate, activation, fp32_kernel, pad_bias
from edgebench.kernels.layer import (
    NO_EPILOGUE,
    Epilogue,
    Layer,
    fp32_reason,
    round_up,
    vector_lanes,
)

NAME = "fp32_winograd"
OPTION = "winograd"  # the variant suffix that enables this family (registry.choose options)

PIXELS = 7  # tiles per GEMM register block (the direct conv's 7-pixel tile)
BLOCK_TILES = 100  # at most this many tiles (whole tile rows) per block

# Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016): B^T, G, A^T.
MATRICES = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], np.float64)),
}
SMALL = 8  # an output narrower than this takes F(2x2): F(4x4)'s 6x6 tiles would waste most


def tile_size(oh: int, ow: int) -> int:
    """F(4x4, 3x3) (4x fewer multiplies; relative error ~1e-5, still 100x inside the FP32
    tolerance) wherever the output fits whole tiles well, else F(2x2, 3x3). Measured alone
    (results/fp32/README.md): 56x56x64 0.57 vs 0.98 ms, 28x28x128 0.54 vs 0.92, 14x14x256
    0.72 vs 0.90; at 7x7x512 F(4x4)'s weights (36 x 512 x 512 floats, 38 MB) no longer fit
    the cache, so F(2x2) there."""
    return 4 if min(oh, ow) >= SMALL else 2


@dataclass(frozen=True)
class Winograd:
    """Geometry of one stride-1 3x3 conv on its padded NHWC input, as Winograd tiles."""

    n: int
    h: int  # padded input height/width
    w: int
    c: int
    k: int  # a multiple of lanes
    m: int = 2  # output tile (m x m): F(m x m, 3 x 3)
    lanes: int = 16

    @property
    def a(self) -> int:
        return self.m + 2  # input tile

    @property
    def oh(self) -> int:
        return self.h - 2

    @property
    def ow(self) -> int:
        return self.w - 2

    @property
    def tiles(self) -> tuple[int, int]:
        return math.ceil(self.oh / self.m), math.ceil(self.ow / self.m)

    @property
    def macs(self) -> int:
        """The direct conv's multiply-adds (what `of peak` compares against)."""
        return self.n * self.oh * self.ow * self.k * self.c * 9

    @property
    def nk(self) -> int:
        return 2 if (self.k // self.lanes) % 2 == 0 else 1

    @property
    def block_rows(self) -> int:
        """Tile rows per block: the most that divide the tile rows within BLOCK_TILES."""
        th, tw = self.tiles
        return max(d for d in range(1, th + 1) if th % d == 0 and (d == 1 or d * tw
                                                                     <= BLOCK_TILES))

    def weight_shape(self) -> tuple[int, ...]:
        g = self.k // (self.nk * self.lanes)
        return (self.a * self.a, g, self.c, self.nk * self.lanes)


def pack_weights(w: np.ndarray, s: Winograd) -> np.ndarray:
    """[K, C, 3, 3] -> U = G g G^T per (k, c), as [A*A, K/(NK*L), s.c, NK*L] (zero padded)."""
    k, c = w.shape[:2]
    full = np.zeros((s.k, s.c, 3, 3), np.float64)
    full[:k, :c] = w
    _, g, _ = MATRICES[s.m]
    u = np.einsum("xi,kcij,yj->xykc", g, full, g).reshape(s.a * s.a, s.k, s.c)
    sh = s.weight_shape()
    return np.ascontiguousarray(u.reshape(sh[0], sh[1], sh[3], s.c).transpose(0, 1, 3, 2)
                                .astype(np.float32))


def _sum(T, terms):
    """sum of coef * value over (coef, value), without multiplying by +-1."""
    out = None
    for coef, v in terms:
        if coef == -1:
            out = -v if out is None else out - v
            continue
        v = v if coef == 1 else T.float32(coef) * v
        out = v if out is None else out + v
    return out


def _pick(T, e, values: list):
    """values[e] for a loop variable e that unrolling makes a constant (the Select chain then
    folds away): how one unrolled statement gets a different transform row per step."""
    out = values[-1]
    for i in range(len(values) - 2, -1, -1):
        out = T.Select(e == i, values[i], out)
    return out


def winograd_kernel(s: Winograd, ep: Epilogue = NO_EPILOGUE):
    """TIR PrimFunc: args (x[n,h,w,c] f32 padded, u = pack_weights(w, s), bias[k],
    [residual[n,oh,ow,k]], y[n,oh,ow,k])."""
    from tvm.script import tirx as T

    N, H, W, C, K, M, A, L = s.n, s.h, s.w, s.c, s.k, s.m, s.a, s.lanes
    OH, OW = s.oh, s.ow
    TH, TW = s.tiles
    RB = s.block_rows
    TB = RB * TW  # tiles per block
    NK = s.nk
    G = K // (NK * L)
    LC = math.gcd(C, L)  # input-transform vector over channels
    PB = min(PIXELS, TB)
    TAIL = TB % PB
    bt, _, at = MATRICES[M]
    vec = f"float32x{L}"
    exact = OH % M == 0 and OW % M == 0  # no partial tiles: no bounds checks

    def rows(table: np.ndarray, value) -> list:
        """Per row r of a transform table: sum over its nonzero (coef, i) of coef * value(i)
        (the separable transform, one axis at a time: 2 * A small sums per element)."""
        return [_sum(T, [(float(table[r, i]), value(i)) for i in np.nonzero(table[r])[0]])
                for r in range(table.shape[0])]

    def in_cols(x, n, row0, col0, c, i, nu):
        """(d B)[i, nu] of the tile at (row0, col0), channel c (reads past the input clamped:
        they only feed outputs past the edge, which are never written)."""
        return _pick(T, nu, rows(bt, lambda j: x[n, T.min(row0 + i, H - 1),
                                                  T.min(col0 + j, W - 1), c]))

    def in_rows(tmp, xi, nu, lane):
        """V[xi, nu] = (B^T (d B))[xi, nu] from tmp = d B."""
        return _pick(T, xi, rows(bt, lambda i: tmp[(i * A + nu) * LC + lane]))

    def out_cols(mb, t, k, xi, j):
        """(M A)[xi, j] of tile t, channel k."""
        return _pick(T, j, rows(at, lambda nu: mb[((xi * A + nu) * TB + t) * K + k]))

    def out_value(tmp, bias, res, n, oh, ow, k, lane, i, j):
        """Output (i, j): (A^T (M A))[i, j], + bias, the epilogue."""
        acc = bias[k] + _pick(T, i, rows(at, lambda xi: tmp[(xi * M + j) * L + lane]))
        return activation(T, acc + res[n, oh, ow, k] if ep.residual else acc, ep.act)

    def tile_input(ctx, p, r):
        v, _, xn, _, t0 = ctx
        return v[xn, t0 + p, r[0]]

    def tile_weights(ctx, j, r):
        _, u, xn, g, _ = ctx
        return u.vload([xn, g, r[0], j * L], vec)

    def gemm(pb: int):
        loop = accumulate(pb, NK, L, (C, 1, 1), tile_input, tile_weights)

        @T.macro
        def block(v, u, mb, xn, g, t0):
            acc = T.alloc_buffer((pb * NK * L,), "float32", scope="global")
            for p, j in T.grid(pb, NK):
                acc[T.ramp((p * NK + j) * L, 1, L)] = T.broadcast(T.float32(0), L)
            loop(acc, (v, u, xn, g, t0))
            for p, j in T.grid(pb, NK):
                mb[T.ramp(((xn * TB + t0 + p) * K + (g * NK + j) * L), 1, L)] = \
                    acc.vload([(p * NK + j) * L], vec)

        return block

    main, tail = gemm(PB), gemm(max(TAIL, 1))

    @T.macro
    def body(x, u, bias, y, res):
        v = T.alloc_buffer((A * A, TB, C), "float32", scope="global")
        mb = T.alloc_buffer((A * A * TB * K,), "float32", scope="global")
        for n, blk in T.grid(N, TH // RB):
            # 1. input transform of the block's tiles (rows past the input: clamped reads,
            # they only feed outputs past the edge, which are never written)
            for r, tw, cb in T.grid(RB, TW, C // LC):
                dbt = T.alloc_buffer((A * A * LC,), "float32", scope="global")
                for i in T.unroll(A):
                    for nu in T.unroll(A):
                        for lane in T.vectorized(LC):
                            dbt[(i * A + nu) * LC + lane] = in_cols(
                                x, n, (blk * RB + r) * M, tw * M, cb * LC + lane, i, nu)
                for xi in T.unroll(A):
                    for nu in T.unroll(A):
                        for lane in T.vectorized(LC):
                            v[xi * A + nu, r * TW + tw, cb * LC + lane] = in_rows(dbt, xi, nu,
                                                                                  lane)
            # 2. the A*A GEMMs
            for xn, g in T.grid(A * A, G):
                for tb in range(TB // PB):
                    main(v, u, mb, xn, g, tb * PB)
                if TAIL > 0:
                    tail(v, u, mb, xn, g, TB - TAIL)
            # 3. output transform + epilogue
            for r, tw, kb in T.grid(RB, TW, K // L):
                ma = T.alloc_buffer((A * M * L,), "float32", scope="global")
                for xi in T.unroll(A):
                    for j in T.unroll(M):
                        for lane in T.vectorized(L):
                            ma[(xi * M + j) * L + lane] = out_cols(mb, r * TW + tw,
                                                                   kb * L + lane, xi, j)
                for i in T.unroll(M):
                    for j in T.unroll(M):
                        if exact or ((blk * RB + r) * M + i < OH and tw * M + j < OW):
                            for lane in T.vectorized(L):
                                y[n, (blk * RB + r) * M + i, tw * M + j, kb * L + lane] = \
                                    out_value(ma, bias, res, n, (blk * RB + r) * M + i,
                                              tw * M + j, kb * L + lane, lane, i, j)

    return fp32_kernel("winograd_f32", body, (N, H, W, C), s.weight_shape(), K,
                       (N, OH, OW, K), ep.residual)


# ---- the registry's interface (kernels/registry.py): an option family ----

def shape(layer: Layer, target) -> Winograd:
    lanes = vector_lanes(target)
    ph, pw = layer.padding
    return Winograd(layer.n, layer.h + 2 * ph, layer.w + 2 * pw, layer.in_channels,
                    round_up(layer.k, lanes), tile_size(layer.h, layer.w), lanes)


def fits(layer: Layer, target) -> str | None:
    if layer.kind != "conv2d" or layer.groups != 1 or layer.kernel != (3, 3):
        return "not a groups-1 3x3 conv2d"
    if layer.stride != (1, 1) or layer.dilation != (1, 1):
        return "Winograd F(m, 3x3) here needs stride 1 and dilation 1"
    if layer.padding != (1, 1):
        return "Winograd here needs 'same' padding (1)"
    if target.arch != "x86_64" or layer.dtype != "float32":
        return "our Winograd kernels are x86 (AVX2/AVX-512) FP32 only"
    return fp32_reason(layer, target)


def emit(layer: Layer, target):
    return winograd_kernel(shape(layer, target), layer.epilogue)


def pack(layer: Layer, target, weight: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    s = shape(layer, target)
    return [pack_weights(weight, s), pad_bias(bias, layer.k, s.k)]
