"""Fine-tuning through the fake-quant graph (QAT, ternary, binary) on the model's training data.

QAT starts from the calibrated PTQ model (BatchNorm already folded into the convs, as torch.ao
recommends for fine-tuning) and trains with a small learning rate on the task loss plus the
data's distillation term against the FP32 model, so it stays close to what it quantizes.
Weights are quantized on the fly with straight-through gradients (torch's fake-quant ops for
int, detach-STE for ternary/binary); activations use the calibrated qparams, frozen. Weights
that are exactly zero when training starts (pruning) are held at zero after every step, so
prune-then-QAT keeps its sparsity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import fx

from edgebench.models.train import TrainStats, finetune_model
from edgebench.quantize.fakequant import act_quants

if TYPE_CHECKING:
    from edgebench.models import ModelSpec


def zero_masks(gm: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Masks of exact zeros in weight matrices/kernels (only where some exist)."""
    masks = {}
    for name, p in gm.named_parameters():
        if p.dim() > 1:
            mask = p.detach() == 0
            if bool(mask.any()):
                masks[name] = mask
    return masks


def finetune(gm: fx.GraphModule, spec: ModelSpec, epochs: int, lr: float,
             seed: int = 0, teacher: torch.nn.Module | None = None) -> TrainStats | None:
    """Train `gm` in place on spec's data (Adam, cosine decay) with its quantizers active,
    distilling from `teacher` (the FP32 model) where the data allows."""
    for a in act_quants(gm).values():
        a.mode = "quant"
    masks = zero_masks(gm)
    params = dict(gm.named_parameters())

    def keep_zeros(step: int, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for name, mask in masks.items():
                params[name].masked_fill_(mask, 0.0)

    data = spec.dataset()
    stats = None
    if epochs > 0 and data is not None:
        stats = finetune_model(gm, data, epochs, lr, teacher, seed, [keep_zeros])
    gm.eval()
    return stats
