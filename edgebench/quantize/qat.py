"""Fine-tuning through the fake-quant graph (QAT, ternary, binary) on the digits training split.

Weights are quantized on the fly with straight-through gradients (torch's fake-quant ops for
int, detach-STE for ternary/binary); activations use the calibrated qparams, frozen. Weights
that are exactly zero when training starts (pruning) are held at zero after every step, so
prune-then-QAT keeps its sparsity.
"""

from __future__ import annotations

import torch
from torch import fx

from edgebench.models.digits import train_digits_model
from edgebench.quantize.fakequant import act_quants


def zero_masks(gm: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Masks of exact zeros in weight matrices/kernels (only where some exist)."""
    masks = {}
    for name, p in gm.named_parameters():
        if p.dim() > 1:
            mask = p.detach() == 0
            if bool(mask.any()):
                masks[name] = mask
    return masks


def finetune(gm: fx.GraphModule, source: object, epochs: int, lr: float,
             seed: int = 0) -> fx.GraphModule:
    """Train `gm` in place (Adam, cosine decay) with its quantizers active."""
    for a in act_quants(gm).values():
        a.mode = "quant"
    masks = zero_masks(gm)
    params = dict(gm.named_parameters())

    def keep_zeros(step: int, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for name, mask in masks.items():
                params[name].masked_fill_(mask, 0.0)

    if epochs > 0:
        train_digits_model(gm, source, epochs=epochs, lr=lr, seed=seed,  # type: ignore[arg-type]
                           callbacks=[keep_zeros])
    return gm.eval()
