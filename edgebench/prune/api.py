"""prune(): pick the strategy for a config, run it on a copy, and describe the result."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from edgebench.models import ModelSpec
from edgebench.models.train import TrainStats, evaluate
from edgebench.prune.block import BlockPruner
from edgebench.prune.config import (
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
from edgebench.prune.gradual import finetune, gradual_prune, require_data
from edgebench.prune.layers import Layer, execution_order, prunable_layers, select_layers
from edgebench.prune.magnitude import MagnitudePruner, ThresholdPruner
from edgebench.prune.masks import MaskPruner, apply_masks
from edgebench.prune.nm import NMPruner
from edgebench.prune.stats import LayerStats, count_macs, count_params, layer_stats
from edgebench.prune.structured import channel_prune


@dataclass
class PruneResult:
    """The pruned model and what pruning did to it.

    kind is "masked" (same architecture, zeros in the weights: unstructured, threshold,
    block, nm, gradual) or "structured" (a smaller dense network: channel). params/nonzero
    count every parameter; macs are dense MACs for one example (zeros still cost MACs).
    skipped lists (layer, reason) for selected layers left dense. metric_before/after are
    the model's data metric (PyTorch, test part) for models with data; accuracy_* is the
    same as a fraction when that metric is top1. train is what fine-tuning cost (steps,
    seconds), None without fine-tuning.
    """

    model: nn.Module
    kind: str
    config: PruneConfig
    layers: list[LayerStats]
    params: int
    nonzero: int
    macs: int
    params_before: int
    macs_before: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    metric: str | None = None
    metric_before: float | None = None
    metric_after: float | None = None
    train: TrainStats | None = None

    @property
    def accuracy_before(self) -> float | None:
        return self._fraction(self.metric_before)

    @property
    def accuracy_after(self) -> float | None:
        return self._fraction(self.metric_after)

    def _fraction(self, value: float | None) -> float | None:
        return value / 100 if value is not None and self.metric == "top1" else None

    @property
    def sparsity(self) -> float:
        """Fraction of zero weights over all Linear/Conv2d weights (pruned or not)."""
        total = sum(la.params for la in self.layers)
        return 1 - sum(la.nonzero for la in self.layers) / total if total else 0.0

    @property
    def pruned_sparsity(self) -> float:
        """Fraction of zero weights over the pruned layers only (what the config asked for)."""
        pruned = [la for la in self.layers if la.pruned]
        total = sum(la.params for la in pruned)
        return 1 - sum(la.nonzero for la in pruned) / total if total else 0.0


def mask_pruner(config: PruneConfig) -> MaskPruner:
    """The strategy for a masked config (GradualConfig: the strategy of its target)."""
    if isinstance(config, GradualConfig):
        return mask_pruner(config.target)
    if isinstance(config, UnstructuredConfig):
        return MagnitudePruner(config.scope)
    if isinstance(config, ThresholdConfig):
        return ThresholdPruner(config.threshold)
    if isinstance(config, BlockConfig):
        return BlockPruner(*config.block, scope=config.scope)
    if isinstance(config, NMConfig):
        return NMPruner(config.n, config.m)
    raise PruneError(f"no masked pruner for {type(config).__name__}")


def _fit(pruner: MaskPruner, layers: list[Layer], config: PruneConfig
         ) -> tuple[list[Layer], list[tuple[str, str]]]:
    """Drop layers the pattern does not fit; a layer named exactly in include is an error."""
    fit, skipped = [], []
    for la in layers:
        why = pruner.misfit(la)
        if why is None:
            fit.append(la)
        elif la.explicit:
            raise PruneError(f"layer '{la.name}' cannot take {config.text}: {why}")
        else:
            skipped.append((la.name, why))
    return fit, skipped


def _metric(model: nn.Module, spec: ModelSpec | None) -> float | None:
    data = spec.dataset() if spec is not None else None
    if data is None or (data.metric.needs_labels and data.y_test is None):
        return None
    return evaluate(model, data, spec.eval_samples)


def _plan(model: nn.Module, config: PruneConfig, example: torch.Tensor,
          spec: ModelSpec | None, name: str
          ) -> tuple[list[str], list[Layer], list[tuple[str, str]], MaskPruner | None]:
    """What pruning `model` would touch, without touching it: (execution order, layers,
    skipped, the mask strategy or None for channel pruning). PruneError if the config does
    not fit the model (a pattern that tiles no layer, fine-tuning a non-digits model)."""
    selection = config.target if isinstance(config, GradualConfig) else config
    assert isinstance(selection, LayerSelection)
    if isinstance(config, GradualConfig):  # fail before any work, not after
        require_data(spec, "gradual pruning", name)
    elif selection.finetune_epochs:
        require_data(spec, "fine-tuning", name)
    order = execution_order(model, example)
    layers, skipped = select_layers(model, selection, order)
    if isinstance(config, ChannelConfig):
        return order, layers, skipped, None
    pruner = mask_pruner(config)
    layers, more = _fit(pruner, layers, config)
    skipped += more
    if not layers:
        why = "; ".join(f"{n}: {r}" for n, r in skipped) or "no layer selected"
        raise PruneError(f"model '{name}': nothing to prune with {config.text} ({why})")
    return order, layers, skipped, pruner


def check(model: nn.Module, config: PruneConfig | str, example: torch.Tensor,
          spec: ModelSpec | None = None) -> None:
    """Raise PruneError now if `config` cannot prune `model` (a run validates every variant
    this way before it measures anything); the model is not modified."""
    if isinstance(config, str):
        config = parse_prune(config)
    name = spec.name if spec is not None else type(model).__name__
    was_training = model.training
    try:
        _plan(model.eval(), config, example, spec, name)
    finally:
        model.train(was_training)


def prune(model: nn.Module, config: PruneConfig | str, example: torch.Tensor,
          spec: ModelSpec | None = None) -> PruneResult:
    """Prune a deep copy of `model` as `config` says; the input model is never modified.

    `example` is one input as the model takes it (spec.example_input()). `spec` names the
    model in errors and, for digits models, enables fine-tuning (gradual, finetune_epochs)
    and the accuracy fields.
    """
    if isinstance(config, str):
        config = parse_prune(config)
    name = spec.name if spec is not None else type(model).__name__
    selection = config.target if isinstance(config, GradualConfig) else config
    work = copy.deepcopy(model).eval()
    order, layers, skipped, pruner = _plan(work, config, example, spec, name)
    params_before = count_params(work)[0]
    macs_before = count_macs(work, example)
    data = spec.dataset() if spec is not None else None
    metric_before = _metric(work, spec)
    distill = config.distill if isinstance(config, GradualConfig) else selection.finetune_distill
    teacher = copy.deepcopy(model).eval() if distill else None
    train = None

    if isinstance(config, ChannelConfig):
        shapes = {n: m.weight.shape for n, m in prunable_layers(work)}
        work, more = channel_prune(work, config, example, layers, order, name)
        skipped += more
        pruned = {n for n, m in prunable_layers(work) if m.weight.shape != shapes.get(n)}
        if config.finetune_epochs:
            train = finetune(work, spec, config.finetune_epochs, config.finetune_lr, name,
                             teacher=teacher)
    else:
        assert pruner is not None
        if isinstance(config, GradualConfig):
            masks, train = gradual_prune(work, config, pruner, layers, spec, name, teacher)
        else:
            masks = pruner.masks(layers, getattr(config, "sparsity", 0.0))
            apply_masks(layers, masks)
            if selection.finetune_epochs:
                train = finetune(work, spec, selection.finetune_epochs,
                                 selection.finetune_lr, name, layers, masks, teacher)
        apply_masks(layers, masks)
        pruned = {la.name for la in layers}

    work.eval()
    params, nonzero = count_params(work)
    return PruneResult(model=work, kind=config.kind, config=config,
                       layers=layer_stats(work, pruned), params=params, nonzero=nonzero,
                       macs=count_macs(work, example), params_before=params_before,
                       macs_before=macs_before, skipped=skipped,
                       metric=data.metric.name if data is not None else None,
                       metric_before=metric_before, metric_after=_metric(work, spec),
                       train=train)
