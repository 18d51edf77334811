"""The variant record: model + prune + quantize + target, the unit that flows through the pipeline.

A variant string names the transformations applied to the FP32 model: `fp32` for none, later
`prune=unstructured:0.9`, `quant=static`, or both joined with `+`. Parsing validates the grammar
up front so a typo fails before minutes of tuning, not after.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgebench.models import ModelSpec
from edgebench.prune import METHODS as PRUNE_METHODS
from edgebench.prune import PruneError, PruneResult, parse_prune, prune
from edgebench.targets import Target


class VariantError(ValueError):
    """A variant string names an unknown or malformed transformation."""


@dataclass(frozen=True)
class VariantSpec:
    """The transformations, parsed from a variant string (no model, no target yet)."""

    prune: str | None = None
    quant: str | None = None

    @property
    def name(self) -> str:
        parts = [f"prune={self.prune}"] if self.prune else []
        parts += [f"quant={self.quant}"] if self.quant else []
        return "+".join(parts) or "fp32"

    @property
    def dtype(self) -> str:
        """The dtype the variant computes in, which sets its verification tolerance."""
        return "float32"

    def apply(self, model: nn.Module, spec: ModelSpec) -> Transformed:
        """The variant's PyTorch model: the reference its compiled outputs must match."""
        if not self.prune:
            return Transformed(model)
        result = prune(model, parse_prune(self.prune), spec.example_input(), spec)
        return Transformed(result.model, result.kind, result)


@dataclass(frozen=True)
class Transformed:
    """A variant's model plus what the transformations say about it (for the result rows)."""

    model: nn.Module
    prune_kind: str | None = None
    pruned: PruneResult | None = None

    def row_fields(self) -> dict:
        if self.pruned is None:
            return {}
        p = self.pruned
        layers = ";".join(f"{s.name}={s.sparsity:.3f}" for s in p.layers if s.pruned)
        return {"prune_kind": self.prune_kind, "sparsity": p.sparsity, "macs": p.macs,
                "layer_sparsity": layers}


_KNOWN = {"prune": tuple(PRUNE_METHODS), "quant": ()}  # quantization arrives with its issue


def parse_variant(text: str) -> VariantSpec:
    text = text.strip()
    if text in ("fp32", ""):
        return VariantSpec()
    fields: dict[str, str] = {}
    for part in text.split("+"):
        kind, sep, value = part.partition("=")
        if not sep or kind not in _KNOWN or not value:
            raise VariantError(f"variant '{text}': '{part}' is not of the form prune=... or "
                               "quant=... (or fp32)")
        method = value.split(":", 1)[0]
        if method not in _KNOWN[kind]:
            known = ", ".join(_KNOWN[kind]) or "none in this version"
            raise VariantError(f"variant '{text}': unknown {kind} method '{method}' "
                               f"(known: {known})")
        if kind == "prune":
            try:
                parse_prune(value)
            except PruneError as e:
                raise VariantError(f"variant '{text}': {e}") from None
        fields[kind] = value
    return VariantSpec(**fields)


@dataclass(frozen=True)
class Variant:
    """One record: what model, transformed how, compiled for which target."""

    model: ModelSpec
    spec: VariantSpec
    target: Target

    @property
    def name(self) -> str:
        return self.spec.name
