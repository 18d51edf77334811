"""N:M semi-structured sparsity: in every M consecutive input weights of a row keep N.

Groups run along the input dim of the 2-D weight (Linear [out, in]; Conv2d [out,
in/groups*kh*kw] in PyTorch order), the layout Ampere-style 2:4 GEMM kernels read. The
sparsity is fixed at 1 - N/M; within a group the N largest |w| stay (stable on ties).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from edgebench.prune.layers import Layer
from edgebench.prune.masks import Masks


def nm_mask(w2d: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask (out, in) with exactly n True in every group of m along the input dim."""
    o, i = w2d.shape
    groups = w2d.abs().reshape(o, i // m, m)
    order = torch.argsort(groups, dim=-1, descending=True, stable=True)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(-1, order[..., :n], True)
    return keep.reshape(o, i)


@dataclass(frozen=True)
class NMPruner:
    """Keep n of every m consecutive input weights."""

    n: int
    m: int

    def misfit(self, layer: Layer) -> str | None:
        o, i = layer.weight2d().shape
        if i % self.m:
            return (f"input dim {i} of 2-D weight [{o}, {i}] is not a multiple of "
                    f"M={self.m}")
        return None

    def masks(self, layers: Sequence[Layer], sparsity: float = 0.0) -> Masks:
        return {la.name: nm_mask(la.weight2d(), self.n, self.m).reshape(la.weight.shape)
                for la in layers}
