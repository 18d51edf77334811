"""Pruning: masked (unstructured, threshold, block, N:M, gradual) and structured (channel).

    result = prune(model, parse_prune("block:4x1:0.9"), spec.example_input(), spec)
    result.model   # a pruned deep copy; result.kind is "masked" or "structured"

Configs are frozen dataclasses (one per method family, grammar in config.py); each family is
a strategy module: magnitude, block, nm (masked), structured (torch-pruning), gradual
(schedule + fine-tuning). Masks are permanent zeros in plain weight tensors: no hooks.
"""

from edgebench.prune.api import PruneResult, mask_pruner, prune
from edgebench.prune.api import check as check_prune
from edgebench.prune.config import (
    METHODS,
    BlockConfig,
    ChannelConfig,
    GradualConfig,
    LayerSelection,
    NMConfig,
    PruneConfig,
    PruneError,
    ThresholdConfig,
    UnstructuredConfig,
    parse_prune,
)
from edgebench.prune.gradual import PolynomialDecay
from edgebench.prune.stats import LayerStats

__all__ = [
    "METHODS",
    "BlockConfig",
    "ChannelConfig",
    "GradualConfig",
    "LayerSelection",
    "LayerStats",
    "NMConfig",
    "PolynomialDecay",
    "PruneConfig",
    "PruneError",
    "PruneResult",
    "ThresholdConfig",
    "UnstructuredConfig",
    "check_prune",
    "mask_pruner",
    "parse_prune",
    "prune",
]
