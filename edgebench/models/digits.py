"""Digits models: small nets trained on the real sklearn digits, so accuracy is meaningful.

Training is deterministic and cached on disk (keyed by architecture + recipe), so every run
of the benchmark compares compiled variants against the same FP32 weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.data import digits_split
from edgebench.paths import cache_dir

if TYPE_CHECKING:
    from edgebench.models import ModelSpec

Callback = Callable[[int, nn.Module], None]
RECIPE_VERSION = 1  # bump to invalidate every cached digits model


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


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic algorithms on one thread for the duration, then restore the caller's.

    One thread makes float reductions independent of the core count, and these models are
    so small that a contended multi-threaded OpenMP pool is ~100x slower, not faster.
    """
    prev, warn = (torch.are_deterministic_algorithms_enabled(),
                  torch.is_deterministic_algorithms_warn_only_enabled())
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(prev, warn_only=warn)


def _data_args(source: int | ModelSpec, flatten: bool | None) -> tuple[int, bool]:
    if isinstance(source, int):
        return source, bool(flatten)
    if source.image_size is None:
        raise ValueError(f"model '{source.name}' is not a digits model")
    return source.image_size, source.flatten if flatten is None else flatten


def steps_per_epoch(batch_size: int = 64) -> int:
    """Optimizer steps per epoch (useful for step-based schedules such as gradual pruning)."""
    return -(-len(digits_split(8).y_train) // batch_size)


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
    """Train (or fine-tune) `model` in place on the digits train split with Adam.

    The learning rate follows a cosine decay from `lr` to 0 over all steps, so the final
    weights do not depend on where a noisy constant-rate run happened to stop.

    `source` is an image size (8 or 28) or a digits ModelSpec (supplies image size and
    flatten). Batches are shuffled by a generator seeded with `seed`. Each callback is called
    as cb(step, model) after every optimizer step (step counts from 1). Returns the model in
    eval mode.
    """
    image_size, flat = _data_args(source, flatten)
    split = digits_split(image_size)
    x, y = (split.x_train.flatten(1) if flat else split.x_train), split.y_train
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    total = epochs * -(-len(y) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total))
    )
    step = 0
    with _deterministic():
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=gen)
            for i in range(0, len(y), batch_size):
                idx = perm[i : i + batch_size]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
                sched.step()
                step += 1
                for cb in callbacks:
                    cb(step, model)
    return model.eval()


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 512
) -> float:
    """Top-1 accuracy; inputs are (N, *input_shape) with input_shape[0] == 1 (eval_data form).

    Samples are concatenated along their batch-1 axis so the model runs batched.
    """
    if inputs.dim() < 2 or inputs.shape[1] != 1:
        raise ValueError(f"expected inputs shaped (N, 1, ...), got {tuple(inputs.shape)}")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(inputs), batch_size):
        logits = model(inputs[i : i + batch_size].flatten(0, 1))
        correct += int((logits.argmax(-1) == labels[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(labels)


def _atomic_save(obj: object, path: os.PathLike[str] | str) -> None:
    """torch.save to a temp file in the same directory, then os.replace (no torn files)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def cached_trained(
    name: str,
    make: Callable[[], nn.Module],
    image_size: int,
    flatten: bool,
    epochs: int,
    lr: float = 1e-3,
    seed: int = 0,
) -> nn.Module:
    """Build with torch.manual_seed(seed), then load cached weights or train and cache them."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make()
    recipe = {"arch": repr(model), "image_size": image_size, "flatten": flatten,
              "epochs": epochs, "lr": lr, "seed": seed, "batch_size": 64,
              "version": RECIPE_VERSION}
    key = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    path = cache_dir() / "models" / f"{name}-{key}.pt"
    if path.is_file():
        try:
            state = torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
            state = None  # unreadable/corrupt cache entry: retrain and overwrite it
        if state is not None:
            model.load_state_dict(state)
            return model.eval()
    train_digits_model(model, image_size, flatten, epochs=epochs, seed=seed, lr=lr)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(model.state_dict(), path)
    return model
