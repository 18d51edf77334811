"""What every masked method shares: the strategy protocol, exact selection, applying masks.

A mask is a bool keep-tensor shaped like the layer's weight. Masks are applied by writing
zeros into the weight itself (no hooks, no weight_orig), so the pruned model is an ordinary
dense module whose state_dict holds plain tensors with zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from edgebench.prune.layers import Layer

Masks = dict[str, torch.Tensor]


class MaskPruner(Protocol):
    """A masked pruning strategy (unstructured, threshold, block, N:M)."""

    def misfit(self, layer: Layer) -> str | None:
        """Why the pattern cannot apply to this layer's shape, or None if it fits."""
        ...

    def masks(self, layers: Sequence[Layer], sparsity: float) -> Masks:
        """Keep-masks for `layers` at `sparsity` (ignored by fixed-pattern strategies)."""
        ...


def n_pruned(sparsity: float, n: int) -> int:
    """round(sparsity * n), the number of units to zero; half-way rounds up, not to even."""
    return min(n, int(sparsity * n + 0.5))


def keep_all_but_lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of scores' shape with exactly the k lowest scores False.

    A stable sort decides ties by position, so the count is exact even when many weights
    share a magnitude (a threshold would zero all of them, overshooting).
    """
    flat = scores.reshape(-1)
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k > 0:
        keep[torch.argsort(flat, stable=True)[:k]] = False
    return keep.view_as(scores)


def select(scores: dict[str, torch.Tensor], sparsity: float, scope: str) -> Masks:
    """Unit keep-masks: round(sparsity * n) lowest per tensor, or over all tensors (global)."""
    if scope == "layer":
        return {n: keep_all_but_lowest(s, n_pruned(sparsity, s.numel()))
                for n, s in scores.items()}
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = keep_all_but_lowest(flat, n_pruned(sparsity, flat.numel()))
    out, i = {}, 0
    for n, s in scores.items():
        out[n] = keep[i : i + s.numel()].view_as(s)
        i += s.numel()
    return out


@torch.no_grad()
def apply_masks(layers: Sequence[Layer], masks: Masks) -> None:
    """Zero the pruned weights in place (masked_fill writes +0.0, never -0.0)."""
    for layer in layers:
        mask = masks.get(layer.name)
        if mask is not None:
            layer.weight.masked_fill_(~mask.view_as(layer.weight), 0.0)
