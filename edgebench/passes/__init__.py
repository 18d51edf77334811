"""edgebench's Relax passes: one pass per module, each rewriting layers onto our kernels."""

from edgebench.passes.sparse_weights import SparseLayer, SparsifyWeights

__all__ = ["SparseLayer", "SparsifyWeights"]
