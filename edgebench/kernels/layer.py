"""What a kernel family is asked to run: one layer, described by its op and shapes only."""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = (None, "relu", "relu6", "sigmoid")
INT8_DTYPES = ("uint8", "int8")


@dataclass(frozen=True)
class Epilogue:
    """What follows the accumulation in registers, in this order: + residual (same NHWC shape),
    the activation, `affine` (a per-channel scale and shift: a BatchNorm after the activation,
    CREPE's conv -> ReLU -> BN, which no weight folding can absorb), then `pool` (the max over
    `pool` consecutive output rows, stride `pool`: a (pool x 1) max pool over the rows a
    column tile holds). `pad` (rows, columns) writes the result into the interior of a
    zero-bordered output, the padded input of the next conv (no pad copy between them;
    families with PADDED_OUTPUT); `pad_end` the bottom/right border if it differs (CREPE pads
    31 above, 32 below)."""

    act: str | None = None
    residual: bool = False
    pad: tuple[int, int] = (0, 0)
    pad_end: tuple[int, int] | None = None
    affine: bool = False
    pool: int = 1

    def __post_init__(self) -> None:
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.act!r} (known: {ACTIVATIONS})")
        if self.pool < 1:
            raise ValueError(f"pool {self.pool} < 1")
        if self.pad_end is not None and tuple(self.pad_end) == tuple(self.pad):
            object.__setattr__(self, "pad_end", None)  # symmetric: one spelling, one key

    @property
    def borders(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) zero rows/columns around the result."""
        end = self.pad if self.pad_end is None else self.pad_end
        return self.pad[0], end[0], self.pad[1], end[1]

    @property
    def tag(self) -> str:
        t, b, left, r = self.borders
        pad = ("_pad{}x{}".format(*self.pad) if (t, left) == (b, r)
               else f"_pad{t}-{b}x{left}-{r}") if any(self.borders) else ""
        return (self.act or "none") + ("_res" if self.residual else "") + \
            ("_affine" if self.affine else "") + \
            (f"_pool{self.pool}" if self.pool > 1 else "") + pad


NO_EPILOGUE = Epilogue()


@dataclass(frozen=True)
class Int8Out:
    """How an int8 conv/linear kernel writes its int32 accumulators: requantized to
    uint8/int8 (zero point, clamp, requantize form kernels.int8_conv FIXED or EXACT_F64; or
    QUANTIZE: the float path of the layer's Epilogue, then quantized with 1 / scale =
    inv_scale into the next layer's qparams), scaled to float32, or raw int32. Its per-channel
    arrays are constants of the call."""

    dtype: str = "int32"
    zp: int = 0
    lo: int = 0
    hi: int = 0
    requant: str = "fixed"
    inv_scale: float = 0.0


@dataclass(frozen=True)
class Layer:
    """One conv2d or linear as the lowering sees it. A linear is `kind="linear"` with its rows
    as the width (h = 1, w = rows). c is the logical input channel count, cp what the input
    tensor carries (our NHWC kernels pad channels to whole vectors; the extra ones are 0)."""

    kind: str  # "conv2d" | "linear"
    c: int
    k: int
    h: int = 1
    w: int = 1
    n: int = 1
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)  # each side (symmetric)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    dtype: str = "float32"
    epilogue: Epilogue = NO_EPILOGUE
    cp: int | None = None
    sparsity: float = 0.0  # fraction of zero weights: the sparse families fit above a threshold
    # int8 layers (dtype "uint8"/"int8": the input activations): the bits the weights are
    # stored in (8, or 2/1 for ternary/binary), and what the kernel is specialized on besides
    # the shapes: Int8Out (conv/linear), the family's own record for add/pool/quantize
    weight_bits: int = 8
    quant: object = None
    shape: tuple[int, ...] = ()  # elementwise kinds (add): the operands' shape

    @property
    def in_channels(self) -> int:
        """Channels of the input tensor the kernel reads (padded ones included)."""
        return self.cp or self.c

    @property
    def depthwise(self) -> bool:
        return self.kind == "conv2d" and self.groups == self.c == self.k and self.groups > 1


@dataclass(frozen=True)
class Vectors:
    """The FMA vectors our float kernels are built on: everything that differs between
    AVX-512, AVX2 and NEON, FP32 and FP16; the builders take it as a parameter, never copies.

    lanes: elements per vector register; dtype: what they compute in (FP16 accumulates in
    float16 too: `fmla v.8h` / `vfmadd231ph`); pixels x 2 vectors: a conv's register tile;
    max_accumulators and row_vectors: the caps of a linear's rows tile (the registers left
    after the weight vectors and broadcasts); instruction / register: what the built assembly
    of every such kernel must contain (mnemonic, and the register form on the same line)."""

    lanes: int = 16
    dtype: str = "float32"
    pixels: int = 7
    max_accumulators: int = 28
    row_vectors: int = 4  # a linear's rows tile: at most this many vectors wide
    instruction: str = "vfmadd231ps"
    register: str = "zmm"

    @property
    def vec(self) -> str:
        """The TIR vector type, e.g. float32x16."""
        return f"{self.dtype}x{self.lanes}"


AVX512 = Vectors()  # 32 zmm: 7 pixels x 2 vectors (results/fp32/tiles.md)
AVX2 = Vectors(8, register="ymm")
# aarch64 NEON: 32 q registers of 4 floats (8 halfs). XNNPACK's register tiles: 4 rows x 8
# columns on Cortex-A72 (one 128-bit FMA pipe: 8 accumulators cover its latency), 6 x 8 on
# Cortex-A76 and later (two pipes); the by-element `fmla v.4s, v.4s, v.s[i]` needs no
# broadcast register. Cores with two FMA pipes get the wider tile.
NEON_WIDE_CORES = ("cortex-a76", "cortex-a77", "cortex-a78", "cortex-x1", "cortex-x2",
                   "cortex-a710", "cortex-a715", "neoverse-n1", "neoverse-n2", "neoverse-v1",
                   "apple-m1")


def vectors(target, dtype: str = "float32") -> Vectors | None:
    """The FMA vectors of the target for `dtype`, or None (no kernels of ours there): x86
    AVX-512 (16 float32 / 32 float16 lanes, the latter with avx512fp16), AVX2 + FMA (8
    float32), aarch64 NEON (4 float32, 8 float16 with +fullfp16; the tile per the target's
    mcpu: 6 x 2 vectors on two-pipe cores, else 4 x 2)."""
    if dtype == "float16" and not target.fp16_arith:
        return None
    if dtype not in ("float32", "float16"):
        return None
    half = dtype == "float16"
    if target.arch == "x86_64":
        if target.avx512:
            return Vectors(32, dtype, instruction="vfmadd231ph") if half else AVX512
        return AVX2 if not half and target.has("avx2") and target.has("fma") else None
    if target.arch == "aarch64" and target.has("neon"):
        wide = str(target.tvm.get("mcpu", "")) in NEON_WIDE_CORES
        pixels = 6 if wide else 4
        return Vectors(8 if half else 4, dtype, pixels, 2 * pixels, 2, "fmla",
                       ".8h" if half else ".4s")
    return None


def vector_lanes(target, dtype: str = "float32") -> int:
    """Lanes of the target's FMA vectors for `dtype` (see `vectors`), 0 if we have none."""
    v = vectors(target, dtype)
    return v.lanes if v else 0


def int8_reason(layer: Layer, kinds: tuple[str, ...], dtypes=INT8_DTYPES) -> str | None:
    """Why an int8 family does not take the layer on its op and activation dtype alone."""
    if layer.kind not in kinds:
        return f"not a {' / '.join(kinds)}"
    if layer.dtype not in dtypes:
        return f"not a {' / '.join(dtypes)} layer ({layer.dtype} activations)"
    return None


def fp32_reason(layer: Layer, target) -> str | None:
    """Why no float kernel family of ours takes the layer on this target, whatever its op
    (float32 layers, and float16 ones where the target computes in FP16)."""
    if layer.dtype not in ("float32", "float16"):
        return f"{layer.dtype}, not float32 or float16"
    if layer.dtype == "float16" and not target.fp16_arith:
        return f"float16 on {target.arch} without FP16 arithmetic (no {target.fp16_feature})"
    if not vector_lanes(target, layer.dtype):
        return f"no FMA vectors on {target.arch} (x86 AVX2/AVX-512, aarch64 NEON only)"
    return None


def out_size(size: int, k: int, stride: int, dilation: int) -> int:
    """Output rows/columns of a window k (dilated) sliding with stride over a padded size."""
    return (size - (k - 1) * dilation - 1) // stride + 1


class SlidingWindow:
    """Output height/width of a geometry with h, w (padded input), kh, kw, stride, dilation:
    shared by the conv and depthwise geometries (dataclasses that mix it in)."""

    h: int
    w: int
    kh: int
    kw: int
    stride: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def oh(self) -> int:
        return out_size(self.h, self.kh, self.stride[0], self.dilation[0])

    @property
    def ow(self) -> int:
        return out_size(self.w, self.kw, self.stride[1], self.dilation[1])


def round_up(v: int, m: int) -> int:
    return -(-v // m) * m
