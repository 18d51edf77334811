"""Digits models: small nets trained on the real sklearn digits, so accuracy is meaningful.

Training goes through the generic loop in models/train.py (cached on disk); the helpers here
keep the digits-specific call forms (an image size or a digits ModelSpec as the data source).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from edgebench.data import Dataset, digits_dataset
from edgebench.models.train import Callback, predict, train_model

if TYPE_CHECKING:
    from edgebench.models import ModelSpec


class DigitsCNN(nn.Module):
    """Three conv-BN-ReLU stages on 8x8 digits, global average pool, linear head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, 16), *block(16, 32), nn.MaxPool2d(2), *block(32, 64), nn.AdaptiveAvgPool2d(1)
        )
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _dataset(source: int | ModelSpec, flatten: bool | None) -> Dataset:
    if isinstance(source, int):
        return digits_dataset(source, bool(flatten))
    data = source.dataset()
    if data is None:
        raise ValueError(f"model '{source.name}' has no training data")
    return data


def steps_per_epoch(batch_size: int = 64, spec: ModelSpec | None = None) -> int:
    """Optimizer steps per epoch on the spec's data (default: digits)."""
    return _dataset(spec if spec is not None else 8, None).steps_per_epoch(batch_size)


def train_digits_model(
    model: nn.Module,
    source: int | ModelSpec = 8,
    flatten: bool | None = None,
    epochs: int = 10,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 64,
    callbacks: Sequence[Callback] = (),
) -> nn.Module:
    """train_model on digits of this image size, or on a ModelSpec's own data."""
    return train_model(model, _dataset(source, flatten), epochs=epochs, seed=seed, lr=lr,
                       batch_size=batch_size, callbacks=callbacks)


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 512
) -> float:
    """Top-1 accuracy; inputs are (N, *input_shape) with input_shape[0] == 1 (eval_data form)."""
    if inputs.dim() < 2 or inputs.shape[1] != 1:
        raise ValueError(f"expected inputs shaped (N, 1, ...), got {tuple(inputs.shape)}")
    logits = predict(model, inputs.flatten(0, 1), batch_size)
    return float((logits.argmax(-1) == labels).double().mean())
