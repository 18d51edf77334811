"""Model registry: built-ins build, train, cache and export; user refs resolve or fail clearly."""

from __future__ import annotations

import functools
import pickle
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from edgebench.data import digits_split, fixed_batch
from edgebench.models import ModelError, get_model, import_user_module, list_models
from edgebench.models import train as train_mod
from edgebench.models.digits import evaluate_accuracy, steps_per_epoch, train_digits_model
from edgebench.paths import cache_dir

OUTPUT_SHAPES = {"digits-mlp": (1, 10), "digits-cnn": (1, 10), "mlp": (1, 10),
                 "crepe-tiny": (1, 360), "crepe-full": (1, 360), "resnet18-digits": (1, 10),
                 "mobilenetv2-digits": (1, 10), "resnet18": (1, 1000),
                 "mobilenetv2": (1, 1000), "encoder": (1, 10)}
# 89 MB weights / training (mlp: ~45 s on a loaded host); the 224x224 nets ~15 s
SLOW = {"crepe-full", "resnet18-digits", "mobilenetv2-digits", "resnet18", "mobilenetv2", "mlp"}
KNOWN = ("digits-mlp, digits-cnn, mlp, crepe-tiny, crepe-full, resnet18-digits, "
         "mobilenetv2-digits, resnet18, mobilenetv2, encoder")

USER_FILE = """
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


def make():
    return Net()


def boom():
    raise RuntimeError("boom")


def not_a_module():
    return 42
"""


@functools.cache
def built(name: str) -> nn.Module:
    return get_model(name).build()


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_model.py"
    path.write_text(USER_FILE)
    return path


def test_list_models_order() -> None:
    assert [s.name for s in list_models()] == list(OUTPUT_SHAPES)


def test_digits_split_and_fixed_batch() -> None:
    split = digits_split()
    assert split.x_train.shape == (1437, 1, 8, 8) and split.x_test.shape == (360, 1, 8, 8)
    assert split.x_train.dtype == torch.float32 and split.y_test.dtype == torch.int64
    assert abs(float(split.x_train.mean())) < 1e-4 and abs(float(split.x_train.std()) - 1) < 1e-4
    assert digits_split(28).x_test.shape == (360, 1, 28, 28)
    assert torch.equal(fixed_batch((1, 3), 5), fixed_batch((1, 3), 5))
    ids = fixed_batch((1, 7), 4, "int64", high=10)
    assert ids.shape == (4, 1, 7) and ids.dtype == torch.int64 and int(ids.max()) < 10


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in OUTPUT_SHAPES])
def test_builtin_builds_runs_and_exports(name: str) -> None:
    spec = get_model(name)
    model = built(name)
    assert not model.training
    inputs, labels = spec.eval_data()
    data = spec.dataset()
    n = data.test(spec.eval_samples)[0].shape[0] if data else spec.fidelity_samples
    assert n == {"crepe-tiny": 1000, "crepe-full": 256}.get(name, 360 if data else 64)
    assert inputs.shape == (n, *spec.input_shape)
    assert inputs.dtype == getattr(torch, spec.input_dtype)
    assert (labels is None) == (spec.evaluation == "fidelity (random weights)")
    x = spec.example_input()
    assert x.shape == spec.input_shape
    with torch.no_grad():
        out = model(x)
    assert out.shape == OUTPUT_SHAPES[name]
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), out)


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn",
                                  pytest.param("mlp", marks=pytest.mark.slow)])
def test_digits_accuracy(name: str) -> None:
    spec = get_model(name)
    assert evaluate_accuracy(built(name), *spec.eval_data()) >= 0.95


def test_digits_cache_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_model("digits-cnn")
    first = spec.build()
    assert len(list((cache_dir() / "models").glob("digits-cnn-*.pt"))) == 1

    def no_training(*args: object, **kwargs: object) -> nn.Module:
        raise AssertionError("cached model was retrained")

    monkeypatch.setattr(train_mod, "train_model", no_training)
    start = time.perf_counter()
    second = spec.build()
    assert time.perf_counter() - start < 1.0
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_train_digits_model_fine_tunes_with_callbacks() -> None:
    spec = get_model("digits-mlp")
    model = spec.build()
    steps: list[int] = []
    out = train_digits_model(
        model, spec, epochs=1, lr=1e-4, callbacks=[lambda s, m: steps.append(s)]
    )
    assert out is model and not model.training
    assert steps == list(range(1, steps_per_epoch() + 1))
    assert evaluate_accuracy(model, *spec.eval_data()) >= 0.9


def test_user_model_from_file(user_file: Path, tmp_path: Path) -> None:
    ref = f"{user_file}:make"
    spec = get_model(ref, input_shape=(1, 4))
    assert spec.name == ref and spec.evaluation == "fidelity (no data)"
    assert spec.image_size is None and spec.dataset() is None
    model = spec.build()
    assert not model.training and model(spec.example_input()).shape == (1, 2)
    assert torch.equal(model.fc.weight, spec.build().fc.weight)  # seeded init
    module = import_user_module(user_file)
    assert module.__name__.startswith("edgebench_user_my_model_") and module.__name__ in sys.modules
    assert type(model).__module__ == module.__name__
    assert isinstance(pickle.loads(pickle.dumps(model)), module.Net)


def test_user_model_from_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "ebtest_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(USER_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = get_model("ebtest_pkg.nets:make", input_shape=(1, 4)).build()
    assert model(torch.ones(1, 4)).shape == (1, 2)
    assert isinstance(get_model("torch.nn:Identity", input_shape=(1, 3)).build(), nn.Identity)


def _error(ref: str, input_shape: tuple[int, ...] | None = (1, 4), **kw: object) -> str:
    with pytest.raises(ModelError) as info:
        get_model(ref, input_shape=input_shape, **kw).build()  # type: ignore[arg-type]
    return str(info.value)


def test_model_errors(user_file: Path, tmp_path: Path) -> None:
    assert _error("foo", None) == f"unknown model 'foo'; known models: {KNOWN}"
    assert _error(f"{user_file}:make", None) == (
        f"model '{user_file}:make': user models need an input shape, "
        "e.g. --input-shape 1,3,224,224")
    assert "cannot import module 'no_such_module_xyz'" in _error("no_such_module_xyz:make")
    assert "file not found" in _error(f"{tmp_path}/missing.py:make")
    assert "has no attribute 'nope'" in _error(f"{user_file}:nope")
    assert "has no attribute 'NoSuchFactory'" in _error("torch.nn:NoSuchFactory")
    assert "factory raised RuntimeError: boom" in _error(f"{user_file}:boom")
    assert "factory returned int, not a torch.nn.Module" in _error(f"{user_file}:not_a_module")
    bad = tmp_path / "bad.py"
    bad.write_text("def make(:\n")
    assert "SyntaxError" in _error(f"{bad}:make")
    assert "fixed input shape 1,3,224,224" in _error("resnet18", (1, 3, 32, 32))
    assert "need input_high" in _error(f"{user_file}:make", input_dtype="int64")
    with pytest.raises(ModelError) as info:
        get_model("no_such_module_xyz:make", input_shape=(1, 4))
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize("name", [pytest.param("resnet18", marks=pytest.mark.slow),
                                  pytest.param("mobilenetv2", marks=pytest.mark.slow), "encoder"])
def test_fidelity_models_are_not_degenerate(name: str) -> None:
    """Random weights are calibrated: O(1) logits whose arg-max varies, so agreement means
    something (uncalibrated MobileNetV2 gave 1e-9 logits, ResNet-18 one class for all)."""
    spec = get_model(name)
    model = spec.build()
    xs, _ = spec.eval_data()
    with torch.no_grad():
        logits = torch.cat([model(x) for x in xs[:16]])
    assert 0.3 < float(logits.std()) < 3.0
    assert len(set(logits.argmax(1).tolist())) >= 8
