"""Training and fine-tuning on a Dataset: the one loop behind the trained built-ins, `:ftN`,
gradual pruning and QAT, whatever the data (digits, CREPE's tones, the user's `--data`).

Training is deterministic (seeded shuffles, one thread, deterministic algorithms) and trained
built-ins are cached on disk keyed by architecture + recipe, so every run compares compiled
variants against the same FP32 weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edgebench.data import DataError, Dataset
from edgebench.paths import cache_dir

Callback = Callable[[int, nn.Module], None]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RECIPE_VERSION = 2  # bump to invalidate every cached trained model


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
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


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> bool:
    """Re-estimate every BatchNorm's running statistics as the average over x's batches
    (train mode, no gradient), so eval mode normalises as training did; False if it has none."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    with deterministic():
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average: equal weight for every batch
        model.train()
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    for bn, momentum in zip(bns, momenta, strict=True):
        bn.momentum = momentum
    model.train(was_training)
    return True


@dataclass(frozen=True)
class TrainStats:
    """What a training run cost: optimizer steps, wall seconds, and whether it distilled."""

    steps: int
    seconds: float
    distilled: bool = False

    def __str__(self) -> str:
        return (f"{self.steps} steps in {self.seconds:.1f} s"
                + (" (distilled from FP32)" if self.distilled else ""))


def _first(y: torch.Tensor | tuple | list) -> torch.Tensor:
    return y[0] if isinstance(y, tuple | list) else y


def train_model(model: nn.Module, data: Dataset, epochs: int = 10, seed: int = 0,
                lr: float = 1e-3, batch_size: int = 64, callbacks: Sequence[Callback] = (),
                loss: Loss | None = None, teacher: nn.Module | None = None,
                stats: list[TrainStats] | None = None) -> nn.Module:
    """Train (or fine-tune) `model` in place on data's train part with Adam.

    The learning rate follows a cosine decay from `lr` to 0 over all steps, so the final
    weights do not depend on where a noisy constant-rate run happened to stop. Batches are
    shuffled by a generator seeded with `seed`; the loss is `loss`, else the data's own.
    With a `teacher` (the FP32 model a pruned/quantized one was made from) and data that
    says how to compare outputs (`Dataset.distill`), the data's distillation term against
    the teacher's outputs is added to the loss. Each callback is called as
    cb(step, model) after every optimizer step (from 1). Returns the model in eval mode;
    `stats`, if given, gets the run's TrainStats appended.
    """
    if data.y_train is None:
        raise DataError(f"data '{data.name}': fine-tuning needs labels and the train part has "
                        "none")
    loss = loss or data.loss
    distill = data.distill if teacher is not None else None
    x, y = data.x_train, data.y_train
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    total = max(1, epochs * data.steps_per_epoch(batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    step, start = 0, time.perf_counter()
    with deterministic():
        if teacher is not None:
            teacher.eval()
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                idx = perm[i : i + batch_size]
                opt.zero_grad(set_to_none=True)
                out = model(x[idx])
                value = loss(out, y[idx])
                if not isinstance(value, torch.Tensor) or value.numel() != 1:
                    raise DataError(f"the fine-tuning loss returned {type(value).__name__}, "
                                    "not a scalar tensor")
                if distill is not None:
                    assert teacher is not None
                    with torch.no_grad():
                        target = _first(teacher(x[idx]))
                    value = value + distill(_first(out), target)
                value.backward()
                opt.step()
                sched.step()
                step += 1
                for cb in callbacks:
                    cb(step, model)
    if stats is not None:
        stats.append(TrainStats(step, time.perf_counter() - start, distill is not None))
    return model.eval()


def finetune_model(model: nn.Module, data: Dataset, epochs: int, lr: float,
                   teacher: nn.Module | None = None, seed: int = 0,
                   callbacks: Sequence[Callback] = (), batch_size: int = 64) -> TrainStats:
    """Fine-tune a trained model that pruning or quantization perturbed (`:ftN`, gradual
    pruning, QAT), distilling from `teacher` (its FP32 original) where the data allows.

    BatchNorm trains on batch statistics, then its running statistics are re-estimated on
    the train part: pruning changed what each BN sees, and the running averages that eval
    mode uses lag behind (CREPE's BN has momentum 0: they never move, so the fine-tuned
    model was never the one eval mode runs; crepe-tiny at 80 % + ft5 scored 51.5 % RPA).
    """
    stats: list[TrainStats] = []
    train_model(model, data, epochs=epochs, lr=lr, seed=seed, batch_size=batch_size,
                callbacks=callbacks, teacher=teacher, stats=stats)
    recalibrate_batchnorm(model, data.x_train, batch_size)
    model.eval()
    return stats[0]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The model's (first) output over x (N, *sample), batched, in eval mode."""
    was_training = model.training
    model.eval()
    outs = []
    for i in range(0, len(x), batch_size):
        y = model(x[i : i + batch_size])
        outs.append(y[0] if isinstance(y, tuple | list) else y)
    model.train(was_training)
    return torch.cat(outs)


def evaluate(model: nn.Module, data: Dataset, n: int | None = None) -> float:
    """The data's metric for `model` on the first n test samples (PyTorch, batched)."""
    x, y = data.test(n)
    return data.metric.score(predict(model, x), y)


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


def cached_trained(name: str, make: Callable[[], nn.Module], data: Callable[[], Dataset],
                   epochs: int, lr: float = 1e-3, seed: int = 0, batch_size: int = 64,
                   train: Callable[..., nn.Module] | None = None) -> nn.Module:
    """Build with torch.manual_seed(seed), then load cached weights or train and cache them."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make()
    ds = data()
    recipe = {"arch": repr(model), "data": ds.name, "shape": list(ds.x_train.shape),
              "epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size,
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
    (train or train_model)(model, ds, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(model.state_dict(), path)
    return model.eval()
