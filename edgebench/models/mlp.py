"""Plain ReLU multilayer perceptrons (digits-mlp and the larger 784-2048-2048-10 `mlp`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn


class MLP(nn.Sequential):
    """Linear layers with ReLU in between; a Sequential so layers are easy to prune/quantise."""

    def __init__(self, sizes: Sequence[int]) -> None:
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
