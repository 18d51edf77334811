"""Block sparsity: zero whole (rows x cols) blocks of the 2-D weight, for BSR kernels.

Rows run along the output dim and cols along the input dim of Linear [out, in] or Conv2d
[out, in/groups*kh*kw], the layout of TVM's BSR dense (`bsr_dense`) weights. Blocks are
ranked by L2 norm; exactly round(s * n_blocks) blocks are zeroed per layer (or globally).
A shape that does not tile is not padded: a BSR kernel would need the same padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from edgebench.prune.layers import Layer
from edgebench.prune.masks import Masks, select


def block_norms(w2d: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """L2 norm of each block: shape (out/rows, in/cols)."""
    o, i = w2d.shape
    return w2d.reshape(o // rows, rows, i // cols, cols).pow(2).sum((1, 3)).sqrt()


def expand_blocks(block_keep: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Block mask (out/rows, in/cols) -> element mask (out, in)."""
    return block_keep.repeat_interleave(rows, 0).repeat_interleave(cols, 1)


@dataclass(frozen=True)
class BlockPruner:
    """Zero the lowest-norm (rows, cols) blocks."""

    rows: int
    cols: int
    scope: str = "layer"

    def misfit(self, layer: Layer) -> str | None:
        o, i = layer.weight2d().shape
        if o % self.rows or i % self.cols:
            return (f"2-D weight [{o}, {i}] does not tile into {self.rows}x{self.cols} blocks "
                    f"({o} % {self.rows} or {i} % {self.cols} is not 0)")
        return None

    def masks(self, layers: Sequence[Layer], sparsity: float) -> Masks:
        norms = {la.name: block_norms(la.weight2d(), self.rows, self.cols) for la in layers}
        if not norms:
            return {}
        keep = select(norms, sparsity, self.scope)
        shapes = {la.name: la.weight.shape for la in layers}
        return {n: expand_blocks(k, self.rows, self.cols).reshape(shapes[n])
                for n, k in keep.items()}
