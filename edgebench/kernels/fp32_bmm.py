"""FP32 batched matmul of two activations (attention's Q K^T and A V): y[b] = a[b] @ w[b].

Neither operand is a constant, so nothing is packed: w[b] is row-major [K, N] with N
contiguous, which is already the order the micro-kernel reads (one row of N is NK weight
vectors). The register tile is the packed GEMM's (kernels/fp32_dense.py): PB rows x NK
vectors of accumulators, each a[b, m, k] broadcast feeding NK FMAs and each w vector PB.
Rows PB does not divide end in a narrower tail block. N must be a multiple of the lanes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.kernels.fp32_conv import ATTRS, accumulate
from edgebench.kernels.layer import AVX512, Layer, Vectors, fp32_reason, vector_lanes, vectors

NAME = "fp32_bmm"


@dataclass(frozen=True)
class Bmm:
    """y[batch, m, n] = a[batch, m, k] @ w[batch, k, n]."""

    batch: int
    m: int
    k: int
    n: int
    vec: Vectors = AVX512

    @property
    def lanes(self) -> int:
        return self.vec.lanes

    @property
    def macs(self) -> int:
        return self.batch * self.m * self.k * self.n

    def blocking(self) -> tuple[int, int]:
        """(PB rows, NK vectors): up to 4 vectors dividing N (vec.row_vectors), then rows to
        fill the accumulators (6 x 4, MLAS's tile on AVX-512; 4 x 2 / 6 x 2 on NEON)."""
        nb = self.n // self.lanes
        nk = max(d for d in (1, 2, 4) if nb % d == 0 and d <= self.vec.row_vectors)
        return min(self.m, self.vec.max_accumulators // nk, 6 if nk == 4 else 12), nk


def bmm_kernel(s: Bmm):
    """TIR PrimFunc: args (a[batch, m, k], w[batch, k, n], y[batch, m, n])."""
    from tvm.script import tirx as T

    B, M, K, N, L = s.batch, s.m, s.k, s.n, s.lanes
    PB, NK = s.blocking()
    G = N // (NK * L)
    TAIL = M % PB
    vec, DT = s.vec.vec, s.vec.dtype

    def row(ctx, p, r):
        a, _, b, _, m0 = ctx
        return a[b, m0 + p, r[0]]

    def columns(ctx, j, r):
        _, w, b, g, _ = ctx
        return w.vload([b, r[0], (g * NK + j) * L], vec)

    def tile(pb: int):
        loop = accumulate(pb, NK, L, (K, 1, 1), row, columns, DT)

        @T.macro
        def block(a, w, y, b, g, m0):
            acc = T.alloc_buffer((pb * NK * L,), DT, scope="global")
            for p, j in T.grid(pb, NK):
                acc[T.ramp((p * NK + j) * L, 1, L)] = T.broadcast(T.Cast(DT, 0), L)
            loop(acc, (a, w, b, g, m0))
            for p, j in T.grid(pb, NK):
                for lane in T.vectorized(L):
                    y[b, m0 + p, (g * NK + j) * L + lane] = acc[(p * NK + j) * L + lane]

        return block

    main, tail = tile(PB), tile(max(TAIL, 1))

    @T.prim_func
    def bmm_f32(a: T.Buffer((B, M, K), DT), w: T.Buffer((B, K, N), DT),
                y: T.Buffer((B, M, N), DT)):
        T.func_attr(ATTRS)
        for b, g in T.grid(B, G):
            for mo in range(M // PB):
                main(a, w, y, b, g, mo * PB)
            if TAIL > 0:
                tail(a, w, y, b, g, M - TAIL)

    return bmm_f32


# ---- the registry's interface (kernels/registry.py) ----
# A batched matmul is Layer(kind="matmul", n=batch, w=m rows, c=k, k=n columns).

def shape(layer: Layer, target) -> Bmm:
    return Bmm(layer.n, layer.w, layer.c, layer.k, vectors(target, layer.dtype))


def fits(layer: Layer, target) -> str | None:
    if layer.kind != "matmul":
        return "not a matmul of two activations"
    reason = fp32_reason(layer, target)
    if reason:
        return reason
    lanes = vector_lanes(target, layer.dtype)
    if layer.k % lanes:
        return f"{layer.k} columns, not a multiple of {lanes} lanes"
    return None


def emit(layer: Layer, target):
    return bmm_kernel(shape(layer, target))


def pack(layer: Layer, target, weight: np.ndarray | None = None,
         bias: np.ndarray | None = None) -> list[np.ndarray]:
    """No constants: both operands are activations."""
    return []
