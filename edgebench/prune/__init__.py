"""Pruning: masked (unstructured, threshold, block, N:M, gradual) and structured (channel).

    result = prune(model, parse_prune("block:4x1:0.9"), spec.example_input(), spec)
    result.model   # a pruned deep copy; result.kind is "masked" or "structured"

Configs are frozen dataclasses (one per method family, grammar in config.py); each family is
a strategy module: magnitude, block, nm (masked), structured (torch-pruning), gradual
(schedule + fine-tuning). Masks are permanent zeros in plain weight tensors: no hooks.
"""

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


_LAZY = {  # name -> the submodule (importing torch) that defines it
    **dict.fromkeys(("PruneResult", "mask_pruner", "prune", "check_prune"), "api"),
    **dict.fromkeys(("PolynomialDecay",), "gradual"),
    **dict.fromkeys(("LayerStats",), "stats"),
}


def __getattr__(name: str):
    """The torch-using names load on first use, so parsing a recipe stays cheap."""
    if name not in _LAZY:
        raise AttributeError(name)
    import importlib

    module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    return getattr(module, "check" if name == "check_prune" else name)
