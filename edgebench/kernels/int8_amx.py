"""Int8 conv2d (and linear, as a 1x1 conv over rows) on Intel AMX-INT8 `tdpbusd`: one
instruction multiplies a 16 x 64 uint8 tile by a 64 x 16 int8 tile into 16 x 16 int32
(16K multiply-adds), several times vpdpbusd's throughput on Sapphire/Emerald Rapids.

Implicit GEMM, no im2col: for one kernel row kh, the KW * C input bytes a pixel reduces over
are contiguous in the padded NHWC input (dilation_w 1), so the reduction runs over that byte
run in chunks of 64 and an A tile is 16 consecutive output pixels x 64 of those bytes: row r
starts at x[n, oh * SH + kh * DH, (ow0 + r) * SW, 0] + 64 * chunk, row stride SW * C bytes
(tileloadd). Any C works, the 3-channel stem included (7 * 3 = 21 bytes: one chunk per kh),
because the weights of the bytes past KW * C are zero; the input only needs `extra_width`
columns on the right so the last chunk stays inside the buffer. A B tile is the weights of
those 64 bytes for 16 output channels in VNNI order (16 rows of [k][4]).

Blocking: PT x KT C tiles (2 x 2 when the output width and channels allow: tmm0-3 C, tmm4-5
A, tmm6-7 B). A tile holds M = min(16, OW) pixel rows; a ragged last block of the row starts
at OW - M (recomputing a few pixels, which is exact). All C tiles go to an int32 scratch
first (tilestored64; storing and reading back one tile at a time stalls on each store: the
stem ran 6x slower that way), then the epilogue, int8_conv.fused_epilogue (bias, requantize /
float / raw), runs vectorized from there: bit exact against the VNNI kernel.

Linux hands out the AMX tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA); without it the first tile instruction raises SIGILL, and the pip TVM has
no runtime hook for it. So the kernel makes the request itself (one syscall per call, cheap
against a conv: see results/int8/README.md) and the library works in any process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.kernels.int8_conv import (
    FIXED,
    X86_VNNI,
    ConvShape,
    conv_shape,
    dense_weights,
    dot_reason,
    epilogue_kernel,
    fused_epilogue,
    weights_4d,
)
from edgebench.kernels.layer import Layer

INSTRUCTION = "tdpbusd"
TILE = 16  # rows (pixels) per A/C tile, int32 columns per C tile, output channels per B tile
CHUNK = 64  # reduction bytes per tile product
SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18


@dataclass(frozen=True)
class AmxPlan:
    """How one conv maps onto tiles."""

    s: ConvShape

    @property
    def chunks(self) -> int:
        """64-byte reduction chunks per kernel row (KW * C bytes, zero weights past it)."""
        return -(-self.s.kw * self.s.c // CHUNK)

    @property
    def flat(self) -> bool:
        """Stride 1: pixel (oh, ow) reads the input from flat position oh * W + ow (W the padded
        input width), so tile rows can run on across output rows: the tiles cover all
        `span` positions of the image at once, computing W - OW discarded positions per row
        instead of padding every row to whole tiles (a 7x7 output: 4 tiles, not 7 of 7 rows)."""
        return self.s.stride == (1, 1)

    @property
    def span(self) -> int:
        """Positions one sweep of tiles covers: the whole flattened image (flat) or a row."""
        s = self.s
        return (s.oh - 1) * (s.w + self.extra_width) + s.ow if self.flat else s.ow

    @property
    def rows(self) -> int:
        """Pixels per A/C tile."""
        return min(TILE, self.span)

    @property
    def pixel_tiles(self) -> int:
        return 2 if self.span > TILE else 1

    @property
    def k_tiles(self) -> int:
        return 2 if self.s.k % (2 * TILE) == 0 else 1

    @property
    def extra_width(self) -> int:
        """Input columns to add on the right so the last chunk of the last pixel is in bounds."""
        s = self.s
        need = (s.ow - 1) * s.stride[1] * s.c + self.chunks * CHUNK
        return max(0, -(-(need - s.w * s.c) // s.c))


def amx_fits(s: ConvShape) -> bool:
    """What the kernel computes: dilation_w 1 (contiguous taps), output channels in 16s. Any
    C, even the ResNet-18 stem (KW * C = 28 of each 64-byte chunk)."""
    return s.dilation[1] == 1 and s.k % TILE == 0


def amx_pays(s: ConvShape) -> bool:
    """Whether the lowering should take the tile kernel over vpdpbusd: only when a kernel row
    fills at least one whole 64-byte chunk. The stem (7 x 4 = 28 bytes: 56% of every
    tdpbusd is zero weights) ran 1.33 ms on AMX against 0.74 ms on vpdpbusd, measured side
    by side on an idle core (results/int8/README.md)."""
    return amx_fits(s) and s.kw * s.c >= CHUNK


def pack_weights(w: np.ndarray, k_pad: int) -> np.ndarray:
    """[K, C, KH, KW] int -> [K/16, KH, chunks, 16, 16, 4] int8: per kernel row, the KW * C
    reduction bytes (kw major, c minor, as the input holds them) zero-padded to whole chunks,
    each chunk a B tile (row = 4 bytes of reduction, [k][4] within a row)."""
    k, c, kh, kw = w.shape
    chunks = -(-kw * c // CHUNK)
    red = np.zeros((k_pad, kh, chunks * CHUNK), np.int8)
    red[:k, :, :kw * c] = w.transpose(0, 2, 3, 1).reshape(k, kh, kw * c)
    tiles = red.reshape(k_pad // TILE, TILE, kh, chunks, TILE, 4)
    return np.ascontiguousarray(tiles.transpose(0, 2, 3, 4, 1, 5))


def conv_amx_kernel(s: ConvShape, out: str, zero_point: int = 0, lo: int = 0, hi: int = 255,
                    requant: str = FIXED):
    """TIR PrimFunc with conv_dot_kernel's argument convention: (x[n, h, w + extra_width, c] u8
    padded NHWC, wt = pack_weights(w, k) int8, bias[k] i32, then m0/shift i64 ("uint8"/"int8"),
    scale f64 (those with requant=EXACT_F64), scale f32 ("float32") or nothing ("int32"),
    y[n, oh, ow, k])."""
    from tvm.script import tirx as T

    if out not in ("int32", "float32", "uint8", "int8"):
        raise ValueError(f"conv_amx_kernel: unsupported output dtype {out!r}")
    if not amx_fits(s):
        raise ValueError(f"conv_amx_kernel: {s} needs dilation_w 1 and K a multiple of 16")
    plan = AmxPlan(s)
    N, H, C, K, KH = s.n, s.h, s.c, s.k, s.kh
    W = s.w + plan.extra_width
    SH, SW = s.stride
    DH = s.dilation[0]
    OH, OW = s.oh, s.ow
    RC, M, PT, KT = plan.chunks, plan.rows, plan.pixel_tiles, plan.k_tiles
    KB = K // TILE
    FLAT, SPAN = plan.flat, plan.span
    ROWS = 1 if FLAT else OH  # sweeps of tiles: once over the flat image, or once per row
    PBLK = -(-SPAN // (PT * M))
    wt_shape = (KB, KH, RC, TILE, TILE, 4)

    def intrin(name: str, *args):
        return T.call_llvm_intrin("void", T.llvm_lookup_intrinsic_id(f"llvm.x86.{name}"), *args)

    def epilogue(acc, bias, p, j, r, lane, kbo, m0, shift, scale):
        c = (kbo * KT + j) * TILE + lane
        return fused_epilogue(T, out, acc[((p * KT + j) * M + r) * TILE + lane] + bias[c], c,
                              m0, shift, scale, zero_point, lo, hi)

    @T.macro
    def body(x, wt, bias, y, m0, shift, scale):
        cfg = T.alloc_buffer((64,), "uint8", scope="global")
        acc = T.alloc_buffer((PT * KT * M * TILE,), "int32", scope="global")
        T.evaluate(T.call_extern("int64", "syscall", T.int64(SYS_ARCH_PRCTL),
                                 T.int64(ARCH_REQ_XCOMP_PERM), T.int64(XFEATURE_XTILEDATA)))
        for i in range(64):
            cfg[i] = T.uint8(0)
        cfg[0] = T.uint8(1)  # palette 1
        for t in T.unroll(8):  # colsb (u16 at 16 + 2t): 64 bytes; rows (u8 at 48 + t): B
            cfg[16 + 2 * t] = T.uint8(64)  # tiles (6, 7) 16 rows of 4 reduction bytes, A/C M
            cfg[48 + t] = T.Cast("uint8", T.Select(t >= 6, TILE, M))
        T.evaluate(intrin("ldtilecfg", T.address_of(cfg[0])))
        for n, kbo, oh, pb in T.grid(N, KB // KT, ROWS, PBLK):
            for ct in T.unroll(PT * KT):
                T.evaluate(intrin("tilezero", T.Cast("int8", ct)))
            for kh, rc in T.grid(KH, RC):
                for p in T.unroll(PT):
                    T.evaluate(intrin(
                        "tileloadd64", T.Cast("int8", 4 + p),
                        T.address_of(x[n, oh * SH + kh * DH,
                                       T.min(pb * (PT * M) + p * M, SPAN - M) * SW,
                                       rc * CHUNK]),  # (flattened: may run past w and c)
                        T.int64(SW * C)))
                for j in T.unroll(KT):
                    T.evaluate(intrin("tileloadd64", T.Cast("int8", 6 + j),
                                      T.address_of(wt[kbo * KT + j, kh, rc, 0, 0, 0]),
                                      T.int64(TILE * 4)))
                for p in T.unroll(PT):
                    for j in T.unroll(KT):
                        T.evaluate(intrin("tdpbusd", T.Cast("int8", p * KT + j),
                                          T.Cast("int8", 4 + p), T.Cast("int8", 6 + j)))
            for p in T.unroll(PT):  # all C tiles out first: their stores overlap
                for j in T.unroll(KT):
                    T.evaluate(intrin("tilestored64", T.Cast("int8", p * KT + j),
                                      T.address_of(acc[(p * KT + j) * M * TILE]),
                                      T.int64(TILE * 4)))
            for p, j, r in T.grid(PT, KT, M):
                if FLAT:  # position q is pixel (q // W, q % W); W - OW of each row discarded
                    q = T.min(pb * (PT * M) + p * M, SPAN - M) + r
                    if q % W < OW:
                        for lane in T.vectorized(TILE):
                            y[n, q // W, q % W, (kbo * KT + j) * TILE + lane] = epilogue(
                                acc, bias, p, j, r, lane, kbo, m0, shift, scale)
                else:
                    for lane in T.vectorized(TILE):
                        y[n, oh, T.min(pb * (PT * M) + p * M, OW - M) + r,
                          (kbo * KT + j) * TILE + lane] = epilogue(
                            acc, bias, p, j, r, lane, kbo, m0, shift, scale)
        T.evaluate(intrin("tilerelease"))

    return epilogue_kernel("conv_amx", body, (N, H, W, C), wt_shape, "int8", K,
                           (N, OH, OW, K), out, requant)


# ---- the registry's interface (kernels/registry.py): before int8_conv, which takes the rest ----
NAME = "int8_amx"
LABEL, KERNEL = "amx", "conv_amx"  # its int8_layers kernel, its functions' name


def shape(layer: Layer, target) -> ConvShape:
    return conv_shape(layer, TILE)


def fits(layer: Layer, target) -> str | None:
    reason = dot_reason(layer)
    if reason:
        return reason
    if not (target.amx and target.vnni):
        return "no AMX-INT8 (with AVX512-VNNI)"
    if layer.weight_bits != 8:
        return "ternary/binary weights stay packed on vpdpbusd"
    if not amx_pays(shape(layer, target)):
        return "a kernel row fills no 64-byte chunk (or dilated columns, K not in 16s)"
    return None


def padded_input(layer: Layer, target) -> tuple[int, int]:
    """(channels, extra columns) of the NHWC input: the tile loads overrun the last pixel."""
    s = shape(layer, target)
    return s.c, AmxPlan(s).extra_width


def emit(layer: Layer, target):
    o = layer.quant
    return conv_amx_kernel(shape(layer, target), o.dtype, o.zp, o.lo, o.hi, o.requant)


def pack(layer: Layer, target, weight: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    s, w4 = shape(layer, target), weights_4d(weight)
    full = np.zeros(s.k, np.int64)
    full[:w4.shape[0]] = bias + X86_VNNI.bias_shift(w4)
    return [pack_weights(dense_weights(w4, s.c, s.k), s.k), full]
