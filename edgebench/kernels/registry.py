"""Which of our kernels runs a layer on a target: the one place that answers it.

Each kernel family is one module exposing `NAME`, `INSTRUCTION` (what its built assembly must
contain), `fits(layer, target) -> str | None` (None: it fits; else why not), `emit(layer,
target) -> tirx.PrimFunc`, and `pack(layer, target, weight, bias) -> list[np.ndarray]` (the
constant arguments, packed once at build time in the order the kernel reads them). `choose`
returns the first family that fits. The int8 families (int8_conv, int8_amx, depthwise int8)
are still chosen inside passes/int8.py and join this list when that lowering moves here.
"""

from __future__ import annotations

from types import ModuleType

from edgebench.kernels import fp32_bmm, fp32_conv, fp32_dense, fp32_depthwise
from edgebench.kernels.layer import Layer

FAMILIES: tuple[ModuleType, ...] = (fp32_depthwise, fp32_conv, fp32_dense, fp32_bmm)


def choose(layer: Layer, target) -> ModuleType | None:
    """The kernel family that runs `layer` on `target`, or None (TVM's own op then)."""
    for family in FAMILIES:
        if family.fits(layer, target) is None:
            return family
    return None


def reasons(layer: Layer, target) -> dict[str, str | None]:
    """Per family, why it does not take the layer (None: it does)."""
    return {family.NAME: family.fits(layer, target) for family in FAMILIES}
