"""The variant record: model + prune + quantize + target, the unit that flows through the pipeline.

A variant string names the transformations applied to the FP32 model: `fp32` for none, later
`prune=unstructured:0.9`, `quant=static`, or both joined with `+`. Parsing validates the grammar
up front so a typo fails before minutes of tuning, not after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgebench.prune import METHODS as PRUNE_METHODS
from edgebench.prune import PruneError, parse_prune
from edgebench.quantize import METHODS as QUANT_METHODS
from edgebench.quantize import QuantError, parse_quant
from edgebench.report.row import KeptFp32, LayerSparsity, ModelFacts
from edgebench.targets import Target

if TYPE_CHECKING:  # parsing a variant needs no torch (the CLI checks them before loading it)
    from torch import nn

    from edgebench.models import ModelSpec
    from edgebench.prune import PruneResult
    from edgebench.quantize import QuantResult

SPARSE_MODES = ("auto", "all")


class VariantError(ValueError):
    """A variant string names an unknown or malformed transformation."""


@dataclass(frozen=True)
class VariantSpec:
    """The transformations, parsed from a variant string (no model, no target yet)."""

    prune: str | None = None
    quant: str | None = None
    # "auto" (measured per layer) or "all" (every layer >= threshold); with quant= the int8
    # BSR kernel (passes/int8_sparse.py), else the FP32 ones (passes/sparse_weights.py)
    sparse: str | None = None
    # FP32 on TVM's own ops tuned by MetaSchedule instead of our kernels (passes/fp32.py):
    # the old build, kept for the record
    metaschedule: bool = False
    # FP32 with Winograd F(2x2, 3x3) for stride-1 3x3 convs (kernels/fp32_winograd.py): fewer
    # multiplies, a little more rounding error (its own tolerance, its own rows)
    winograd: bool = False

    @property
    def kernel_options(self) -> frozenset[str]:
        """The opt-in kernel families of the FP32 lowering (kernels/registry.OPTIONS)."""
        return frozenset(({"winograd"} if self.winograd else set())
                         | ({"sparse"} if self.sparse and not self.quant else set()))

    @property
    def name(self) -> str:
        parts = [f"prune={self.prune}"] if self.prune else []
        parts += [f"quant={self.quant}"] if self.quant else []
        parts += [{"auto": "sparse"}.get(self.sparse, f"sparse={self.sparse}")] \
            if self.sparse else []
        if self.metaschedule:
            parts = (parts or ["fp32"]) + ["metaschedule"]
        if self.winograd:
            parts = (parts or ["fp32"]) + ["winograd"]
        return "+".join(parts) or "fp32"

    @property
    def dtype(self) -> str:
        """The dtype the variant computes in, which sets its verification tolerance."""
        if self.quant:
            return parse_quant(self.quant).verify_dtype
        return "float32-winograd" if self.winograd else "float32"

    def check(self, model: nn.Module, spec: ModelSpec) -> None:
        """VariantError now if this variant cannot apply to the model (e.g. a block pattern
        that tiles none of its layers): a run checks every variant before measuring any."""
        from edgebench.prune import check_prune

        if self.prune:
            try:
                check_prune(model, parse_prune(self.prune), spec.example_input(), spec)
            except PruneError as e:
                raise VariantError(f"variant '{self.name}': {e}") from None
        trained = bool(self.quant) and parse_quant(self.quant).trained
        data = spec.dataset() if trained else None
        if trained and (data is None or data.y_train is None):
            raise VariantError(f"variant '{self.name}' on model '{spec.name}': {self.quant} "
                               "fine-tunes on the model's labelled training data and it has "
                               "none (give --data with labels, or use quant=static)")

    def apply(self, model: nn.Module, spec: ModelSpec) -> Transformed:
        """The variant's PyTorch model (prune, then quantize): the reference its compiled
        outputs must match."""
        from edgebench.prune import prune
        from edgebench.quantize import quantize

        pruned = quantized = None
        if self.prune:
            pruned = prune(model, parse_prune(self.prune), spec.example_input(), spec)
            model = pruned.model
        if self.quant:
            quantized = quantize(model, parse_quant(self.quant), spec)
            model = quantized.model
        return Transformed(model, pruned.kind if pruned else None, pruned, quantized)


@dataclass(frozen=True)
class Transformed:
    """A variant's model plus what the transformations say about it (for the result rows)."""

    model: nn.Module
    prune_kind: str | None = None
    pruned: PruneResult | None = None
    quantized: QuantResult | None = None

    @property
    def training(self) -> str | None:
        """What fine-tuning cost (pruning's, then QAT's), for the log; None if nothing trained."""
        parts = [f"{what} {r.train}" for what, r in (("prune", self.pruned),
                                                      ("quant", self.quantized))
                 if r is not None and r.train is not None]
        return "; ".join(parts) or None

    def facts(self, params: int, nonzero_params: int) -> ModelFacts:
        """The row's model part: parameter counts (of the variant's model) and what pruning
        and quantization made of it."""
        facts = ModelFacts(params=params, nonzero_params=nonzero_params)
        if self.pruned is not None:
            p = self.pruned
            facts.prune_kind, facts.sparsity, facts.macs = self.prune_kind, p.sparsity, p.macs
            facts.layer_sparsity = LayerSparsity.of((s.name, f"{s.sparsity:.3f}")
                                                    for s in p.layers if s.pruned)
        if self.quantized is not None:
            q = self.quantized
            # Peers execute the fake-quant graph in float: the row must not pass for integer
            # code. A TVM build that lowers it to integer code says "int8" (BuildFacts).
            facts.quant_kind, facts.weight_bytes = "simulated", q.size.weight_bytes
            facts.kept_fp32 = KeptFp32.of((name, why) for name, _op, why in q.kept_fp32)
        return facts


_KNOWN = {"prune": tuple(PRUNE_METHODS), "quant": tuple(QUANT_METHODS), "sparse": SPARSE_MODES}


def parse_variant(text: str) -> VariantSpec:
    text = text.strip()
    if text in ("fp32", ""):
        return VariantSpec()
    fields: dict[str, str] = {}
    metaschedule = winograd = False
    for part in text.split("+"):
        if part == "fp32":
            continue
        if part == "metaschedule":
            metaschedule = True
            continue
        if part == "winograd":
            winograd = True
            continue
        if part == "sparse":
            part = "sparse=auto"
        kind, sep, value = part.partition("=")
        if not sep or kind not in _KNOWN or not value:
            raise VariantError(f"variant '{text}': '{part}' is not of the form prune=..., "
                               "quant=..., sparse, metaschedule or winograd (or fp32)")
        method = value.split(":", 1)[0]
        if method not in _KNOWN[kind]:
            known = ", ".join(_KNOWN[kind]) or "none in this version"
            raise VariantError(f"variant '{text}': unknown {kind} method '{method}' "
                               f"(known: {known})")
        if kind == "sparse":
            fields[kind] = value
            continue
        try:
            value = parse_prune(value).text if kind == "prune" else parse_quant(value).text
        except (PruneError, QuantError) as e:
            raise VariantError(f"variant '{text}': {e}") from None
        fields[kind] = value
    if "prune" in fields and "quant" in fields and not parse_quant(fields["quant"]).represents_zero:
        raise VariantError(f"variant '{text}': {fields['quant']} weights have no zero, so "
                           "pruned zeros cannot survive; drop the prune= part")
    if "sparse" in fields and "prune" not in fields:
        raise VariantError(f"variant '{text}': sparse kernels need pruned weights; add "
                           "prune=... (e.g. prune=unstructured:0.9+sparse)")
    if "sparse" in fields and "quant" in fields \
            and parse_quant(fields["quant"]).method == "fp16":
        raise VariantError(f"variant '{text}': sparse kernels run FP32 or int8 weights, not "
                           "fp16; drop quant=fp16 or sparse")
    if metaschedule and ("quant" in fields or "sparse" in fields):
        raise VariantError(f"variant '{text}': metaschedule selects the FP32 dense build "
                           "(TVM's ops instead of our kernels); drop quant=/sparse or it")
    if winograd and (metaschedule or "quant" in fields or "sparse" in fields):
        raise VariantError(f"variant '{text}': winograd selects our FP32 dense kernels' "
                           "Winograd family; drop quant=/sparse/metaschedule or it")
    return VariantSpec(**fields, metaschedule=metaschedule, winograd=winograd)


@dataclass(frozen=True)
class Variant:
    """One record: what model, transformed how, compiled for which target."""

    model: ModelSpec
    spec: VariantSpec
    target: Target

    @property
    def name(self) -> str:
        return self.spec.name
