"""What a kernel family is asked to run: one layer, described by its op and shapes only."""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = (None, "relu", "relu6")
INT8_DTYPES = ("uint8", "int8")


@dataclass(frozen=True)
class Epilogue:
    """What follows the accumulation in registers: + residual (same NHWC shape), then act;
    `pad` (rows, columns) writes the result into the interior of a zero-bordered output, the
    padded input of the next conv (no pad copy between them; families with PADDED_OUTPUT)."""

    act: str | None = None
    residual: bool = False
    pad: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.act!r} (known: {ACTIVATIONS})")

    @property
    def tag(self) -> str:
        return (self.act or "none") + ("_res" if self.residual else "") + \
            ("_pad{}x{}".format(*self.pad) if any(self.pad) else "")


NO_EPILOGUE = Epilogue()


@dataclass(frozen=True)
class Int8Out:
    """How an int8 conv/linear kernel writes its int32 accumulators: requantized to
    uint8/int8 (zero point, clamp, requantize form kernels.int8_conv FIXED or EXACT_F64),
    scaled to float32, or raw int32. Its per-channel arrays are constants of the call."""

    dtype: str = "int32"
    zp: int = 0
    lo: int = 0
    hi: int = 0
    requant: str = "fixed"


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


def int8_reason(layer: Layer, kinds: tuple[str, ...], dtypes=INT8_DTYPES) -> str | None:
    """Why an int8 family does not take the layer on its op and activation dtype alone."""
    if layer.kind not in kinds:
        return f"not a {' / '.join(kinds)}"
    if layer.dtype not in dtypes:
        return f"not a {' / '.join(dtypes)} layer ({layer.dtype} activations)"
    return None


def vector_lanes(target) -> int:
    """FP32 lanes of the target's widest FMA vector: 16 (AVX-512), 8 (AVX2 + FMA), else 0
    (no x86 FMA kernels: aarch64 NEON versions are not written yet)."""
    if target.arch != "x86_64":
        return 0
    if target.avx512:
        return 16
    return 8 if target.has("avx2") and target.has("fma") else 0


def fp32_reason(layer: Layer, target) -> str | None:
    """Why no FP32 kernel family of ours takes the layer on this target, whatever its op."""
    if layer.dtype != "float32":
        return f"{layer.dtype}, not float32"
    if not vector_lanes(target):
        return f"no FP32 FMA vectors on {target.arch} (x86 AVX2/AVX-512 only)"
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
