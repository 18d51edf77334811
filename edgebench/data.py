"""Evaluation data: the real sklearn digits split and seeded synthetic batches.

Everything is deterministic so that accuracy/fidelity numbers are comparable across runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class DigitsSplit:
    """Train/test tensors; x is (N,1,S,S) float32 normalised with train stats, y is int64.

    The tensors are shared by every caller (cached): do not modify them in place.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@functools.cache
def digits_split(image_size: int = 8) -> DigitsSplit:
    """Stratified 80/20 split of sklearn digits (360 test images), optionally upsampled."""
    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=0.2, random_state=0, stratify=digits.target
    )
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x_train, x_test = x[idx_train], x[idx_test]
    mean, std = x_train.mean(), x_train.std()
    return DigitsSplit(
        x_train=((x_train - mean) / std).contiguous(),
        y_train=y[idx_train],
        x_test=((x_test - mean) / std).contiguous(),
        y_test=y[idx_test],
    )


def torch_dtype(name: str) -> torch.dtype:
    """Map a dtype name such as 'float32' or 'int64' to a torch.dtype."""
    dtype = getattr(torch, name, None)
    if isinstance(dtype, torch.dtype):
        return dtype
    raise ValueError(f"unknown dtype {name!r}")


def fixed_batch(
    input_shape: tuple[int, ...],
    n: int,
    dtype: str = "float32",
    seed: int = 0,
    high: int | None = None,
) -> torch.Tensor:
    """n seeded samples of shape input_shape stacked on a new axis: (n, *input_shape).

    Floats are standard normal (drawn in float32, then cast, so values match across float
    dtypes); integers are uniform in [0, high), e.g. token ids below the vocabulary size.
    """
    tdtype = torch_dtype(dtype)
    gen = torch.Generator().manual_seed(seed)
    shape = (n, *input_shape)
    if tdtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(tdtype)
    if high is None:
        raise ValueError(f"integer inputs ({dtype}) need `high` (e.g. the token vocabulary size)")
    return torch.randint(0, high, shape, generator=gen, dtype=tdtype)
