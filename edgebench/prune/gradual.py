"""Gradual pruning (Zhu & Gupta 2017, TF-MOT's PolynomialDecay) and masked fine-tuning.

Both run through finetune_model on the model's own data (digits, CREPE's tones, the user's
--data): Adam, cosine LR, seeded shuffles, BatchNorm kept in eval mode, and by default the
data's distillation term against the unpruned FP32 model (the teacher). Masks are
re-applied after every optimizer step: Adam's momentum would otherwise revive pruned weights
between pruning steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from edgebench.data import Dataset
from edgebench.models import ModelSpec
from edgebench.models.train import TrainStats, finetune_model
from edgebench.prune.config import GradualConfig, PruneError
from edgebench.prune.layers import Layer
from edgebench.prune.masks import MaskPruner, Masks, apply_masks


@dataclass(frozen=True)
class PolynomialDecay:
    """Sparsity schedule s(t) = final + (initial - final) * (1 - p)^power, as TF-MOT's.

    p = clip((t - begin) / (end - begin), 0, 1). Pruning happens at begin, every `frequency`
    steps after it, and (unlike TF-MOT, whose last turn may fall before end_step) always at
    end_step, so the final sparsity is reached exactly.
    """

    initial_sparsity: float
    final_sparsity: float
    begin_step: int
    end_step: int
    frequency: int = 100
    power: float = 3.0

    def __call__(self, step: int) -> float:
        p = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (
            (1 - p) ** self.power)

    def should_prune(self, step: int) -> bool:
        if not self.begin_step <= step <= self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step


def require_data(spec: ModelSpec | None, what: str, name: str) -> Dataset:
    """The labelled data `what` trains on, or PruneError saying why there is none."""
    data = spec.dataset() if spec is not None else None
    if data is None:
        raise PruneError(f"model '{name}': {what} trains on the model's data and it has none "
                         "(give --data with a train part, or pass a ModelSpec that has data)")
    if data.y_train is None:
        raise PruneError(f"model '{name}': {what} needs labels and the train part of data "
                         f"'{data.name}' has none")
    return data


def schedule_for(config: GradualConfig, data: Dataset | None = None) -> PolynomialDecay:
    """The schedule over this config's run on `data` (default digits); end_step defaults to
    end_fraction of the steps."""
    if data is None:
        from edgebench.data import digits_dataset

        data = digits_dataset()
    per_epoch = data.steps_per_epoch(config.batch_size)
    total = config.epochs * per_epoch
    end = config.end_step if config.end_step is not None else max(
        config.begin_step + 1, round(config.end_fraction * total))
    if end > total:
        raise PruneError(f"end_step {end} is past the last training step {total} "
                         f"({config.epochs} epochs x {per_epoch})")
    return PolynomialDecay(config.initial_sparsity, config.target.sparsity, config.begin_step,
                           end, config.frequency, config.power)


def gradual_prune(model: nn.Module, config: GradualConfig, pruner: MaskPruner,
                  layers: Sequence[Layer], spec: ModelSpec | None, name: str,
                  teacher: nn.Module | None = None) -> tuple[Masks, TrainStats]:
    """Prune `model` in place along the schedule while fine-tuning (distilling from
    `teacher` if given); returns the final masks and what the training cost."""
    data = require_data(spec, "gradual pruning", name)
    sched = schedule_for(config, data)
    masks: Masks = {}
    if sched.begin_step == 0:
        masks = pruner.masks(layers, sched(0))
        apply_masks(layers, masks)

    def step(t: int, _model: nn.Module) -> None:
        nonlocal masks
        if sched.should_prune(t):
            masks = pruner.masks(layers, sched(t))
        apply_masks(layers, masks)

    stats = finetune_model(model, data, config.epochs, config.lr, teacher, config.seed, [step],
                           config.batch_size)
    return masks, stats


def finetune(model: nn.Module, spec: ModelSpec | None, epochs: int, lr: float, name: str,
             layers: Sequence[Layer] = (), masks: Masks | None = None,
             teacher: nn.Module | None = None) -> TrainStats:
    """Fine-tune in place on the model's data (distilling from `teacher` if given); with
    masks, pruned weights are held at zero."""
    data = require_data(spec, "fine-tuning", name)
    callbacks = [lambda _t, _m: apply_masks(layers, masks)] if masks else []
    return finetune_model(model, data, epochs, lr, teacher, callbacks=callbacks)
