"""Per-layer sparsity, parameter/non-zero totals and MACs of a (pruned) model."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from edgebench.prune.layers import prunable_layers


@dataclass(frozen=True)
class LayerStats:
    """One Linear/Conv2d: weight shape, weight count, non-zeros, and whether it was pruned."""

    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    nonzero: int
    pruned: bool

    @property
    def sparsity(self) -> float:
        return 1 - self.nonzero / self.params if self.params else 0.0


def layer_stats(model: nn.Module, pruned: set[str]) -> list[LayerStats]:
    """A record per Linear/Conv2d weight (biases and norms are counted in the totals only)."""
    return [LayerStats(name=n, type=type(m).__name__, shape=tuple(m.weight.shape),
                       params=m.weight.numel(), nonzero=int(torch.count_nonzero(m.weight)),
                       pruned=n in pruned)
            for n, m in prunable_layers(model)]


def count_params(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters) over every parameter, as the pipeline counts them."""
    params = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return params, nonzero


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Dense multiply-accumulates for one example (torch_pruning.utils.count_ops_and_params).

    Zeros in masked weights still cost MACs here: that is what a dense kernel executes.
    """
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        macs, _ = tp.utils.count_ops_and_params(model, example)
    return int(macs)
