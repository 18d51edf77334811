"""Which of our kernels runs a layer on a target: the one place that answers it.

Each kernel family is one module exposing `NAME` (its instruction: layer.vectors(target)),
`fits(layer, target) -> str | None` (None: it fits; else why not), `emit(layer,
target) -> tirx.PrimFunc`, and `pack(layer, target, weight, bias) -> list[np.ndarray]` (the
constant arguments, packed once at build time in the order the kernel reads them). `choose`
returns the first family that fits. Option families (`OPTIONS`: Winograd) trade accuracy for
speed, so they are tried first only when the variant names them (`fp32+winograd`): never in
a plain FP32 row; the sparse conv (`+sparse`) fits only a layer whose weight is sparse enough,
and the lowering still times it against the dense family per layer (passes/fp32.py).

The int8 families take layers whose `dtype` is the activations' "uint8"/"int8" (the input
quantize: "float32" with kind "quantize"), so a family of one precision never fits a layer of
the other: AMX tiles first (where a kernel row fills a 64-byte chunk), then depthwise on the
dot product, the dot-product conv/linear (vpdpbusd on x86 AVX512-VNNI, sdot on aarch64
+dotprod), then the int8 glue (max pool, requantized add, input quantize). Their `pack` takes
the folded int32 bias; `padded_input` says how the conv input is laid out, `LABEL` names the
kernel in the int8_layers column. The int8 BSR kernel is chosen per layer by a measurement
(passes/int8_sparse.py), not here.
"""

from __future__ import annotations

from collections.abc import Collection
from types import ModuleType

from edgebench.kernels import (
    fp32_bmm,
    fp32_conv,
    fp32_dense,
    fp32_depthwise,
    fp32_sparse_conv,
    fp32_winograd,
    int8_add,
    int8_amx,
    int8_conv,
    int8_conv_arm,
    int8_depthwise,
    int8_pool,
    int8_quantize,
)
from edgebench.kernels.layer import Layer, vectors

FAMILIES: tuple[ModuleType, ...] = (
    fp32_depthwise, fp32_conv, fp32_dense, fp32_bmm,
    int8_amx, int8_depthwise, int8_conv, int8_conv_arm, int8_pool, int8_add, int8_quantize)
# variant option -> the families it puts first (each module's OPTION names it)
OPTIONS: dict[str, tuple[ModuleType, ...]] = {fp32_winograd.OPTION: (fp32_winograd,),
                                              fp32_sparse_conv.OPTION: (fp32_sparse_conv,)}

SPARSE = frozenset({fp32_sparse_conv.NAME})  # families timed per layer against the dense one


def _families(options: Collection[str]) -> tuple[ModuleType, ...]:
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown kernel option(s) {sorted(unknown)} (known: {list(OPTIONS)})")
    return tuple(f for o in sorted(options) for f in OPTIONS[o]) + FAMILIES


def choose(layer: Layer, target, options: Collection[str] = ()) -> ModuleType | None:
    """The kernel family that runs `layer` on `target`, or None (TVM's own op then);
    `options` (e.g. {"winograd"}) are the variant's opt-in families, tried first."""
    for family in _families(options):
        if family.fits(layer, target) is None:
            return family
    return None


def reasons(layer: Layer, target, options: Collection[str] = ()) -> dict[str, str | None]:
    """Per family, why it does not take the layer (None: it does)."""
    return {family.NAME: family.fits(layer, target) for family in _families(options)}


def instruction(family: ModuleType, target) -> str | None:
    """The instruction `family`'s built assembly must contain on `target` (None: nothing to
    check); most int8 families have one, int8 depthwise one per dot-product ISA, and the
    float families the FMA of the target's vectors (layer.vectors)."""
    per_target = getattr(family, "instruction", None)
    if per_target:
        return per_target(target)
    if hasattr(family, "INSTRUCTION"):
        return family.INSTRUCTION
    vec = vectors(target)
    return vec.instruction if vec else None
