"""Int8 block-sparse (BSR) x dense for Linear layers on x86 VNNI (vpdpbusd, u8 x s8 -> int32)
and on aarch64 with the dot product (sdot, s8 x s8 -> int32).

y[m, n] = epilogue(sum_k x[m, k] * W[n, k] + bias[n]) with W int8 [N, K] pruned in R x 1
blocks (R = 16, 8 or 4 output rows x 1 input column) and x uint8 [M, K].

Why this layout: one vpdpbusd multiplies, per int32 lane, 4 uint8 by 4 int8 and adds them.
The R rows of a block are the lanes (R = 16: a zmm register, 8: ymm, 4: xmm, the AVX512-VL
forms), and the 4 bytes each lane reduces are 4 *non-zero block-columns* of the block-row:
the non-zero columns of each block-row are grouped ahead of time into tiles of 4, stored as
one [R rows x 4 columns] int8 tile (4R bytes, row-major: lane r's 4 bytes are contiguous)
plus the 4 column indices. At run time the 4 uint8 activations of a tile's columns are
gathered into one 32-bit word, broadcast to every lane, and one vpdpbusd does R x 4 MACs.
The last tile of a block-row is padded with zero columns (index: a real column of the row,
so the gather stays in bounds and the product is 0). For batch 1 each block-row's tiles run
on U independent accumulators (vpdpbusd latency); rows of x (M > 1) are looped outside,
MT of them sharing each tile.

On aarch64 (`isa="sdot"`) a NEON register holds 4 int32 lanes, so R = 4 ([4 x 4] tiles, 16
bytes; a 16x1 or 8x1 pattern is also a 4x1 one) and, as in int8_conv_arm.py, the gathered
word is flipped to x - 128 (sdot multiplies signed bytes: u8 x s8 needs i8mm's usdot, which
Cortex-A76 lacks); the caller adds 128 * sum(w) to the bias (`bias_shift`), exact in int32.

The epilogues are int8_conv.py's (reference.py's requantize with round-half-even shift, or
float32(acc) * scale, or the raw int32 accumulator). The bias is the int32 bias with the
zero points folded in, as passes/int8.py computes it. Hand-scheduled (`tirx.is_scheduled`),
`tirx.noalias` (see kernels/__init__.py), op_pattern OPAQUE like the other int8 kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.kernels.int8_conv import FIXED, OPAQUE, VNNI, fused_epilogue, scale_dtype

ROWS = (16, 8, 4)  # block heights with a vpdpbusd form: zmm, ymm, xmm
INTRINSIC = {("vnni", 16): VNNI, ("vnni", 8): "llvm.x86.avx512.vpdpbusd.256",
             ("vnni", 4): "llvm.x86.avx512.vpdpbusd.128",
             ("sdot", 4): "llvm.aarch64.neon.sdot.v4i32.v16i8"}
INSTRUCTION = {"vnni": "vpdpbusd", "sdot": "sdot"}
SIGN_FLIP = -0x7F7F7F80  # 0x80808080 as int32: x ^ it turns 4 uint8 into 4 (x - 128) int8
OUTPUTS = ("uint8", "int8", "float32", "int32")
MAX_ACCUMULATORS = 4  # U * MT accumulator vectors


@dataclass(frozen=True)
class Int8BSR:
    """An int8 [N, K] weight as tiles of 4 non-zero block-columns per block-row of R rows."""

    data: np.ndarray  # [tiles, 4R] int8: lane r, tile column j at [t, 4r + j]
    indices: np.ndarray  # [tiles, 4] int32: the input column of each tile column
    indptr: np.ndarray  # [N/R + 1] int32: first tile of each block-row
    shape: tuple[int, int]
    rows: int

    @property
    def tiles(self) -> int:
        return int(self.indptr[-1])

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + self.indices.nbytes + self.indptr.nbytes


def to_int8_bsr(w: np.ndarray, rows: int) -> Int8BSR:
    """Dense int8 weight [N, K] (out x in, as Linear stores it) -> Int8BSR with R = rows.
    Every column a block-row has a non-zero in is kept (exact for any pattern; compact when
    the weight was pruned in rows x 1 blocks)."""
    if rows not in ROWS:
        raise ValueError(f"int8 BSR block {rows}x1 has no vpdpbusd form; use one of {ROWS}")
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[0] % rows:
        raise ValueError(f"block {rows}x1 does not tile the weight {w.shape}")
    if w.min(initial=0) < -128 or w.max(initial=0) > 127:
        raise ValueError("int8 BSR weights must lie in [-128, 127]")
    n, k = w.shape
    blocks = w.reshape(n // rows, rows, k)
    data, indices, indptr = [], [], [0]
    for b in blocks:
        cols = np.flatnonzero(np.any(b != 0, axis=0))
        ntiles = -(-len(cols) // 4)
        padded = np.concatenate([cols, np.full(ntiles * 4 - len(cols),
                                               cols[-1] if len(cols) else 0)])
        tile = np.zeros((ntiles * 4, rows), np.int8)
        tile[:len(cols)] = b[:, cols].T
        # [tiles, 4 cols, R] -> [tiles, R, 4]: lane r's 4 bytes contiguous
        data.append(tile.reshape(ntiles, 4, rows).transpose(0, 2, 1).reshape(ntiles, 4 * rows))
        indices.append(padded.reshape(ntiles, 4))
        indptr.append(indptr[-1] + ntiles)
    total = indptr[-1]
    if total == 0:  # TIR buffers need a non-empty extent; indptr keeps every row empty
        data, indices = [np.zeros((1, 4 * rows), np.int8)], [np.zeros((1, 4), np.int64)]
    return Int8BSR(np.ascontiguousarray(np.concatenate(data), np.int8),
                   np.ascontiguousarray(np.concatenate(indices), np.int32),
                   np.asarray(indptr, np.int32), (n, k), rows)


def bias_shift(w: np.ndarray, isa: str) -> np.ndarray:
    """What the int32 bias gains per output row for the kernel: 128 * sum(w) for sdot's
    x - 128, nothing for vpdpbusd."""
    w = np.asarray(w, np.int64)
    return 128 * w.sum(1) if isa == "sdot" else np.zeros(w.shape[0], np.int64)


def blocking(m: int) -> tuple[int, int]:
    """(MT rows of x sharing each tile, U accumulators per row over the tiles)."""
    mt = max(d for d in range(1, MAX_ACCUMULATORS + 1) if m % d == 0)
    return mt, MAX_ACCUMULATORS // mt


def int8_bsr_kernel(m: int, w: Int8BSR, out: str, zero_point: int = 0, lo: int = 0,
                    hi: int = 255, isa: str = "vnni", requant: str = FIXED):
    """TIR PrimFunc: args (x[m, K] u8, data i8, indices i32, indptr i32, bias[N] i32 (with
    bias_shift for sdot), then for out "uint8"/"int8": m0[N] i64, shift[N] i64 (with
    requant=EXACT_F64: scale[N] f64); "float32": scale[N] f32; "int32": nothing; y[m, N])."""
    from tvm.script import tirx as T

    if out not in OUTPUTS:
        raise ValueError(f"int8 BSR output {out!r} unknown; known: {OUTPUTS}")
    if (isa, w.rows) not in INTRINSIC:
        raise ValueError(f"no int8 BSR kernel for {isa} with {w.rows}x1 tiles; have "
                         f"{sorted(INTRINSIC)}")
    N, K = w.shape
    R = w.rows
    L = 4 * R
    NB, NT = N // R, w.data.shape[0]
    M = m
    MT, U = blocking(M)
    intrin = INTRINSIC[isa, R]
    acc_t, x_t, w_t = f"int32x{R}", ("int8x" if isa == "sdot" else "uint8x") + str(L), \
        f"int8x{L}"

    def word(x, row, indices, t):
        """The 4 activations of tile t's columns as one 32-bit word (byte j = column j);
        for sdot each byte flipped to x - 128."""
        total = T.Cast("int32", x[row, indices[t, 0]])
        for j in range(1, 4):
            total = T.bitwise_or(total, T.shift_left(T.Cast("int32", x[row, indices[t, j]]),
                                                     T.int32(8 * j)))
        return T.bitwise_xor(total, T.int32(SIGN_FLIP)) if isa == "sdot" else total

    def dot(acc, a, x, row, data, indices, t):
        return T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(intrin), acc.vload([a * R], acc_t),
            T.reinterpret(T.broadcast(word(x, row, indices, t), R), dtype=x_t),
            data.vload([t, 0], w_t), dtype=acc_t)

    def total(acc, t, r, bias, c):
        v = bias[c]
        for u in range(U):
            v = v + acc[(u * MT + t) * R + r]
        return v

    @T.macro
    def accumulate(acc, x, data, indices, indptr, i, mo):
        for a in T.unroll(U * MT):
            for r in T.vectorized(R):
                acc[a * R + r] = 0
        for p in range((indptr[i + 1] - indptr[i]) // U):
            for u in T.unroll(U):
                for t in T.unroll(MT):
                    acc[T.ramp((u * MT + t) * R, 1, R)] = dot(
                        acc, u * MT + t, x, mo * MT + t, data, indices, indptr[i] + p * U + u)
        for b in range(indptr[i] + (indptr[i + 1] - indptr[i]) // U * U, indptr[i + 1]):
            for t in T.unroll(MT):
                acc[T.ramp(t * R, 1, R)] = dot(acc, t, x, mo * MT + t, data, indices, b)

    @T.macro
    def rows(x, data, indices, indptr, bias, y, m0, shift, scale):
        acc = T.alloc_buffer((U * MT * R,), "int32", scope="global")
        for i, mo in T.grid(NB, M // MT):
            accumulate(acc, x, data, indices, indptr, i, mo)
            for t in T.unroll(MT):
                for r in T.vectorized(R):
                    y[mo * MT + t, i * R + r] = fused_epilogue(
                        T, out, total(acc, t, r, bias, i * R + r), i * R + r, m0, shift, scale,
                        zero_point, lo, hi)

    if out == "int32":
        @T.prim_func
        def int8_bsr_i(x: T.Buffer((M, K), "uint8"), data: T.Buffer((NT, L), "int8"),
                       indices: T.Buffer((NT, 4), "int32"), indptr: T.Buffer((NB + 1,), "int32"),
                       bias: T.Buffer((N,), "int32"), y: T.Buffer((M, N), "int32")):
            T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
            rows(x, data, indices, indptr, bias, y, None, None, None)

        return int8_bsr_i

    sdt = scale_dtype(out, requant)
    if sdt is not None:
        @T.prim_func
        def int8_bsr_f(x: T.Buffer((M, K), "uint8"), data: T.Buffer((NT, L), "int8"),
                       indices: T.Buffer((NT, 4), "int32"), indptr: T.Buffer((NB + 1,), "int32"),
                       bias: T.Buffer((N,), "int32"), scale: T.Buffer((N,), sdt),
                       y: T.Buffer((M, N), out)):
            T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
            rows(x, data, indices, indptr, bias, y, None, None, scale)

        return int8_bsr_f

    @T.prim_func
    def int8_bsr_q(x: T.Buffer((M, K), "uint8"), data: T.Buffer((NT, L), "int8"),
                   indices: T.Buffer((NT, 4), "int32"), indptr: T.Buffer((NB + 1,), "int32"),
                   bias: T.Buffer((N,), "int32"), m0: T.Buffer((N,), "int64"),
                   shift: T.Buffer((N,), "int64"), y: T.Buffer((M, N), out)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        rows(x, data, indices, indptr, bias, y, m0, shift, None)

    return int8_bsr_q
