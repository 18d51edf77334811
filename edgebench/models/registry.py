"""The model specs: built-in benchmark models plus user factories (`module:fn`, `file.py:fn`).

A ModelSpec carries everything the pipeline needs to build a model and evaluate it: digits
models are scored on the real digits test split, the rest by agreement with FP32 outputs
on a fixed seeded batch.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from edgebench.data import digits_split, fixed_batch, torch_dtype
from edgebench.models import BUILTIN_NAMES, ModelError, unknown_model
from edgebench.models.digits import DigitsCNN, cached_trained
from edgebench.models.encoder import EncoderClassifier
from edgebench.models.mlp import MLP
from edgebench.models.mobilenet import MobileNetV2
from edgebench.models.resnet import ResNet18
from edgebench.models.user import import_dotted_module, import_user_module, is_file_target

__all__ = ["ModelError", "ModelSpec", "get_model", "import_user_module", "list_models"]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """How to build one model and what data to evaluate it on.

    input_shape includes the batch-1 axis; evaluation is "digits" (test-split accuracy) or
    "fidelity" (agreement with FP32 on fixed_batch(input_shape, fidelity_samples, ...)).
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

    def eval_data(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(inputs shaped (N, *input_shape), labels or None for fidelity models)."""
        if self.evaluation == "digits":
            assert self.image_size is not None
            split = digits_split(self.image_size)
            return split.x_test.reshape(len(split.x_test), *self.input_shape), split.y_test
        inputs = fixed_batch(self.input_shape, self.fidelity_samples, self.input_dtype,
                             seed=0, high=self.input_high)
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


def _digits(name: str, description: str, make: Callable[[], nn.Module], image_size: int,
            flatten: bool, epochs: int, lr: float) -> ModelSpec:
    shape = (1, image_size * image_size) if flatten else (1, 1, image_size, image_size)
    build = functools.partial(cached_trained, name, make, image_size, flatten, epochs, lr)
    return ModelSpec(name=name, description=description, input_shape=shape, evaluation="digits",
                     image_size=image_size, flatten=flatten, build=build)


_BUILTINS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        _digits("digits-mlp", "64-128-64-10 ReLU MLP on flattened 8x8 digits",
                lambda: MLP([64, 128, 64, 10]), 8, True, epochs=20, lr=3e-3),
        _digits("digits-cnn", "3-layer conv-BN-ReLU CNN on 8x8 digits",
                DigitsCNN, 8, False, epochs=10, lr=3e-3),
        _digits("mlp", "784-2048-2048-10 ReLU MLP on digits upsampled to 28x28",
                lambda: MLP([784, 2048, 2048, 10]), 28, True, epochs=10, lr=3e-4),
        ModelSpec(name="resnet18", description="ResNet-18, 224x224, 1000 classes (random init)",
                  input_shape=(1, 3, 224, 224), evaluation="fidelity",
                  build=_seeded(ResNet18, (1, 3, 224, 224))),
        ModelSpec(name="mobilenetv2",
                  description="MobileNetV2 1.0, 224x224, 1000 classes (random init)",
                  input_shape=(1, 3, 224, 224), evaluation="fidelity",
                  build=_seeded(MobileNetV2, (1, 3, 224, 224))),
        ModelSpec(name="encoder",
                  description="4-layer pre-norm transformer encoder, 128 tokens, d=256 "
                  "(random init)",
                  input_shape=(1, 128), input_dtype="int64", input_high=1000,
                  evaluation="fidelity", build=_seeded(EncoderClassifier, (1, 128), "int64", 1000)),
    ]
}
assert tuple(_BUILTINS) == BUILTIN_NAMES, "edgebench.models.BUILTIN_NAMES is out of date"


def list_models() -> list[ModelSpec]:
    """Built-in models in a stable order."""
    return list(_BUILTINS.values())


def _load_factory(ref: str) -> Callable[[], object]:
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise ModelError(f"model '{ref}': expected package.module:factory or file.py:factory")
    try:
        module = import_user_module(target) if is_file_target(target) else (
            import_dotted_module(target))
    except FileNotFoundError as e:
        raise ModelError(f"model '{ref}': file not found: {target}") from e
    except ModuleNotFoundError as e:
        raise ModelError(f"model '{ref}': cannot import module '{target}': {e}") from e
    except Exception as e:
        raise ModelError(f"model '{ref}': importing '{target}' failed: "
                         f"{type(e).__name__}: {e}") from e
    try:
        factory = operator.attrgetter(attr)(module)
    except AttributeError as e:
        raise ModelError(f"model '{ref}': '{target}' has no attribute '{attr}'") from e
    if not callable(factory):
        raise ModelError(f"model '{ref}': '{attr}' in '{target}' is not callable")
    return factory


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
                     input_high=input_high, evaluation="fidelity",
                     build=functools.partial(_build_user, ref, factory))
