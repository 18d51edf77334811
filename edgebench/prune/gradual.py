"""Gradual pruning (Zhu & Gupta 2017, TF-MOT's PolynomialDecay) and masked fine-tuning.

Both run through train_digits_model's per-step callbacks, so they train exactly like the FP32
digits models (Adam, cosine LR, seeded shuffles). Masks are re-applied after every optimizer
step: Adam's momentum would otherwise revive pruned weights between pruning steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from edgebench.models import ModelSpec
from edgebench.models.digits import steps_per_epoch, train_digits_model
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


def require_digits(spec: ModelSpec | None, what: str, name: str) -> None:
    if spec is None:
        raise PruneError(f"model '{name}': {what} fine-tunes on the digits training split; pass "
                         "the model's ModelSpec (digits models only)")
    if spec.evaluation != "digits":
        raise PruneError(f"model '{name}': {what} fine-tunes on the digits training split, so "
                         f"it is only for digits models (this one is evaluated by "
                         f"{spec.evaluation})")


def schedule_for(config: GradualConfig) -> PolynomialDecay:
    """The schedule over this config's run; end_step defaults to end_fraction of the steps."""
    total = config.epochs * steps_per_epoch(config.batch_size)
    end = config.end_step if config.end_step is not None else max(
        config.begin_step + 1, round(config.end_fraction * total))
    if end > total:
        raise PruneError(f"end_step {end} is past the last training step {total} "
                         f"({config.epochs} epochs x {steps_per_epoch(config.batch_size)})")
    return PolynomialDecay(config.initial_sparsity, config.target.sparsity, config.begin_step,
                           end, config.frequency, config.power)


def gradual_prune(model: nn.Module, config: GradualConfig, pruner: MaskPruner,
                  layers: Sequence[Layer], spec: ModelSpec | None, name: str) -> Masks:
    """Prune `model` in place along the schedule while fine-tuning; returns the final masks."""
    require_digits(spec, "gradual pruning", name)
    sched = schedule_for(config)
    masks: Masks = {}
    if sched.begin_step == 0:
        masks = pruner.masks(layers, sched(0))
        apply_masks(layers, masks)

    def step(t: int, _model: nn.Module) -> None:
        nonlocal masks
        if sched.should_prune(t):
            masks = pruner.masks(layers, sched(t))
        apply_masks(layers, masks)

    train_digits_model(model, spec, epochs=config.epochs, seed=config.seed, lr=config.lr,
                       batch_size=config.batch_size, callbacks=[step])
    return masks


def finetune(model: nn.Module, spec: ModelSpec | None, epochs: int, lr: float, name: str,
             layers: Sequence[Layer] = (), masks: Masks | None = None) -> None:
    """Fine-tune in place on digits; with masks, pruned weights are held at zero."""
    require_digits(spec, "fine-tuning", name)
    callbacks = [lambda _t, _m: apply_masks(layers, masks)] if masks else []
    train_digits_model(model, spec, epochs=epochs, lr=lr, callbacks=callbacks)
