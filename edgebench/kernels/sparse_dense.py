"""Sparse x dense kernels for Linear/matmul layers whose weight is a compile-time constant.

y[m, n] = act(sum_k x[m, k] * W[n, k] + bias[n]) with W ([N, K], out x in, as Linear stores it)
held in BSR form. Two TIR kernels, both hand-scheduled (`tirx.is_scheduled`: MetaSchedule
leaves them alone) and written with portable vector loops, so one definition compiles for
AVX-512 on x86 and NEON on aarch64:

* `bsr_dense` for blocks of R x C (R >= 2 output rows): the R rows of a block are the vector
  lanes, each non-zero block costs one vector load and a broadcast-FMA per column. 16x1 on
  AVX-512 and 4x1 on NEON fill a register exactly.
* `csr_gather` for unstructured (1x1) sparsity: the non-zeros of an output row are the lanes;
  each row is padded ahead of time to a multiple of `lanes` (zeros pointing at column 0), so
  the inner loop is a fixed-width vector multiply with a gather of x, and one horizontal sum
  per row.

Bias and ReLU/ReLU6 run in the kernel's epilogue, the fusion the dense path gets from FuseOps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("none", "relu", "relu6")


@dataclass(frozen=True)
class BSR:
    """A [N, K] weight in block-sparse-row form. For the gather kernel (block 1x1 with
    lanes > 1) `data`/`indices` are [chunks, lanes] and `indptr` counts chunks."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]
    block: tuple[int, int]
    lanes: int = 1

    @property
    def nnz(self) -> int:
        """Stored non-zero blocks (or padded chunks x lanes for the gather form)."""
        return int(self.data.size // (self.block[0] * self.block[1]))

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + self.indices.nbytes + self.indptr.nbytes


def block_fits(shape: tuple[int, int], block: tuple[int, int]) -> bool:
    return shape[0] % block[0] == 0 and shape[1] % block[1] == 0


def to_bsr(w: np.ndarray, block: tuple[int, int], lanes: int = 16) -> BSR:
    """Convert a dense [N, K] weight to BSR with block (R, C); blocks that are all zero are
    dropped. Block 1x1 gives the padded row-chunk form of `csr_gather` with `lanes` lanes."""
    w = np.ascontiguousarray(w, dtype="float32")
    n, k = w.shape
    r, c = block
    if not block_fits((n, k), block):
        raise ValueError(f"block {r}x{c} does not tile the weight {n}x{k}")
    if (r, c) == (1, 1) and lanes > 1:
        return _to_row_chunks(w, lanes)
    blocks = w.reshape(n // r, r, k // c, c).transpose(0, 2, 1, 3)  # [nb, kb, r, c]
    keep = np.abs(blocks).sum(axis=(2, 3)) != 0
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype("int32")
    rows, cols = np.nonzero(keep)
    data = blocks[rows, cols]
    if len(data) == 0:  # TIR buffers need a non-empty extent; indptr keeps every row empty
        data, cols = np.zeros((1, r, c), "float32"), np.zeros(1, "int64")
    return BSR(np.ascontiguousarray(data, dtype="float32"), cols.astype("int32"), indptr,
               (n, k), (r, c))


def _to_row_chunks(w: np.ndarray, lanes: int) -> BSR:
    n, k = w.shape
    counts = (w != 0).sum(axis=1)
    chunks = -(-counts // lanes)
    indptr = np.concatenate([[0], np.cumsum(chunks)]).astype("int32")
    total = max(int(indptr[-1]), 1)
    data = np.zeros((total, lanes), "float32")
    indices = np.zeros((total, lanes), "int32")
    flat_d, flat_i = data.reshape(-1), indices.reshape(-1)
    for row in range(n):
        cols = np.flatnonzero(w[row])
        start = indptr[row] * lanes
        flat_d[start:start + len(cols)] = w[row, cols]
        flat_i[start:start + len(cols)] = cols
    return BSR(data, indices, indptr, (n, k), (1, 1), lanes)


def _epilogue(T, value, bias_value, act: str):
    v = value + bias_value
    if act == "relu":
        return T.max(v, T.float32(0))
    if act == "relu6":
        return T.min(T.max(v, T.float32(0)), T.float32(6))
    return v


def sparse_dense_kernel(m: int, w: BSR, act: str = "none"):
    """The TIR PrimFunc for y = act(x @ W.T + bias): args (x[m,K], data, indices, indptr,
    bias[N], y[m,N]). Pass bias zeros when the layer has none."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unsupported epilogue activation {act!r}; known: {ACTIVATIONS}")
    if w.block == (1, 1) and w.lanes > 1:
        return _csr_gather(m, w, act)
    return _bsr_dense(m, w, act)


def _bsr_dense(M: int, w: BSR, act: str):
    from tvm.script import tirx as T

    N, K = w.shape
    R, C = w.block
    NB, NNZB = N // R, w.data.shape[0]
    # Independent accumulators hide the FMA latency: MT rows of x at a time, and for batch 1
    # the row's blocks split U ways (each chain alone would wait ~4 cycles per block).
    MT = max(d for d in range(1, 9) if M % d == 0)
    U = 4 if MT == 1 else 1

    @T.prim_func
    def bsr_dense(x: T.Buffer((M, K), "float32"), data: T.Buffer((NNZB, R, C), "float32"),
                  indices: T.Buffer((NNZB,), "int32"), indptr: T.Buffer((NB + 1,), "int32"),
                  bias: T.Buffer((N,), "float32"), y: T.Buffer((M, N), "float32")):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        # "global" scope: a small constant-size alloca that LLVM keeps in registers.
        acc = T.alloc_buffer((U, MT, R), "float32", scope="global")
        for i in range(NB):
            for mo in range(M // MT):
                for u in T.unroll(U):
                    for t in T.unroll(MT):
                        for r in T.vectorized(R):
                            acc[u, t, r] = T.float32(0)
                for p in range((indptr[i + 1] - indptr[i]) // U):
                    for u in T.unroll(U):
                        for c in T.unroll(C):
                            for t in T.unroll(MT):
                                for r in T.vectorized(R):
                                    acc[u, t, r] = acc[u, t, r] + data[
                                        indptr[i] + p * U + u, r, c] * x[
                                        mo * MT + t, indices[indptr[i] + p * U + u] * C + c]
                for b in range(indptr[i] + (indptr[i + 1] - indptr[i]) // U * U, indptr[i + 1]):
                    for c in T.unroll(C):
                        for t in T.unroll(MT):
                            for r in T.vectorized(R):
                                acc[0, t, r] = acc[0, t, r] + data[b, r, c] * x[
                                    mo * MT + t, indices[b] * C + c]
                for t in T.unroll(MT):
                    for r in T.vectorized(R):
                        y[mo * MT + t, i * R + r] = _epilogue(
                            T, _sum_u(T, acc, U, t, r), bias[i * R + r], act)

    return bsr_dense


def _sum_u(T, acc, u: int, t, r):
    total = acc[0, t, r]
    for k in range(1, u):
        total = total + acc[k, t, r]
    return total


def _csr_gather(M: int, w: BSR, act: str):
    from tvm.script import tirx as T

    N, K = w.shape
    L = w.lanes
    CH = w.data.shape[0]

    @T.prim_func
    def csr_gather(x: T.Buffer((M, K), "float32"), data: T.Buffer((CH, L), "float32"),
                   indices: T.Buffer((CH, L), "int32"), indptr: T.Buffer((N + 1,), "int32"),
                   bias: T.Buffer((N,), "float32"), y: T.Buffer((M, N), "float32")):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        acc = T.alloc_buffer((L,), "float32", scope="local")
        total = T.alloc_buffer((1,), "float32", scope="local")
        for mm in range(M):
            for i in range(N):
                for lane in T.vectorized(L):
                    acc[lane] = T.float32(0)
                for ch in range(indptr[i], indptr[i + 1]):
                    for lane in T.vectorized(L):
                        acc[lane] = acc[lane] + data[ch, lane] * x[mm, indices[ch, lane]]
                total[0] = T.float32(0)
                for lane in T.unroll(L):
                    total[0] = total[0] + acc[lane]
                y[mm, i] = _epilogue(T, total[0], bias[i], act)

    return csr_gather
