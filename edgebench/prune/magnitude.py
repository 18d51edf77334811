"""Unstructured magnitude pruning (per layer or global) and the classic |w| < t threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgebench.prune.layers import Layer
from edgebench.prune.masks import Masks, select


@dataclass(frozen=True)
class MagnitudePruner:
    """Zero the smallest |w|: exactly round(s * n) per layer, or over all layers (global).

    Global ranking compares raw magnitudes across layers, so layers with small weights
    (often the wide ones) lose more; that is the point of it, and also its risk.
    """

    scope: str = "layer"

    def misfit(self, layer: Layer) -> str | None:
        return None

    def masks(self, layers: Sequence[Layer], sparsity: float) -> Masks:
        scores = {la.name: la.weight.detach().abs() for la in layers}
        return select(scores, sparsity, self.scope) if scores else {}


@dataclass(frozen=True)
class ThresholdPruner:
    """Zero |w| < threshold (Han et al. 2015); the sparsity follows from the threshold."""

    threshold: float

    def misfit(self, layer: Layer) -> str | None:
        return None

    def masks(self, layers: Sequence[Layer], sparsity: float = 0.0) -> Masks:
        return {la.name: la.weight.detach().abs() >= self.threshold for la in layers}

