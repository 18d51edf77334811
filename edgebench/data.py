"""The data every consumer uses: one `Dataset` (train/test tensors, optional labels, a metric).

Calibration, fine-tuning after pruning (`:ftN`), gradual pruning, QAT and the scoring of every
runtime's own outputs all read the same Dataset: the digits split, CREPE's synthetic tones or the
user's `--data`. Models without data are scored by agreement with FP32 on seeded inputs.
Everything is deterministic so that figures are comparable across runs.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

EVAL_SAMPLES = 1000  # default cap on test samples scored per runtime
CALIB_SAMPLES = 256  # default calibration samples drawn from the train part

ACCURACY = "accuracy"
FIDELITY_RANDOM = "fidelity (random weights)"
FIDELITY_NO_DATA = "fidelity (no data)"


class DataError(ValueError):
    """The data (or its metric) cannot be used with the model; the message is for the user."""


@dataclass(frozen=True)
class Metric:
    """How a model's outputs are scored against labels.

    fn(outputs, labels) -> float gets the model's first output stacked over samples, (N, ...)
    as the model returns it for a batch of N, and the labels (None if the data has none).
    percent metrics return a fraction and are reported in percent; `extras` adds columns
    (e.g. CREPE's mean cents error) from the same outputs.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor | None], float]
    higher_is_better: bool = True
    needs_labels: bool = True
    percent: bool = False
    extras: Callable[[torch.Tensor, torch.Tensor | None], dict[str, float]] | None = None

    def score(self, outputs: torch.Tensor, labels: torch.Tensor | None) -> float:
        """The metric's value in its reported units; DataError if fn returns a non-number."""
        value = self.fn(outputs, labels)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
                or not math.isfinite(float(value)):
            raise DataError(f"metric '{self.name}' returned {value!r} "
                            f"({type(value).__name__}), not a finite number")
        return float(value) * (100.0 if self.percent else 1.0)

    def drop(self, value: float, fp32: float) -> float:
        """Positive = worse than FP32, in the metric's units."""
        return fp32 - value if self.higher_is_better else value - fp32


def _top1(outputs: torch.Tensor, labels: torch.Tensor | None) -> float:
    assert labels is not None
    return float((outputs.reshape(len(labels), -1).argmax(1) == labels).double().mean())


def _mse(outputs: torch.Tensor, labels: torch.Tensor | None) -> float:
    assert labels is not None
    return float(F.mse_loss(outputs.double().reshape(labels.shape), labels.double()))


TOP1 = Metric("top1", _top1, percent=True)
MSE = Metric("mse", _mse, higher_is_better=False)
# agreement of the arg-max with FP32's: scored with FP32's arg-max as the labels
AGREEMENT = Metric("agreement", _top1, percent=True, needs_labels=False)


def default_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class ids, MSE otherwise (the fine-tuning loss without --loss)."""
    if not labels.is_floating_point():
        return F.cross_entropy(outputs.reshape(len(labels), -1), labels)
    return F.mse_loss(outputs.reshape(labels.shape), labels)


def distill_logits(outputs: torch.Tensor, teacher: torch.Tensor,
                   temperature: float = 2.0) -> torch.Tensor:
    """Hinton et al.'s distillation term for class logits: KL(teacher || student) of the
    softened distributions, times T^2 so its gradients keep the scale of the task loss."""
    t, s = (v.reshape(len(v), -1) / temperature for v in (teacher, outputs))
    return F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True,
                    reduction="batchmean") * temperature ** 2


def distill_mse(outputs: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Distillation for regression outputs: MSE to the teacher's outputs."""
    return F.mse_loss(outputs, teacher)


@dataclass(frozen=True)
class Dataset:
    """Train and test parts; x is (N, *sample) where the model takes (B, *sample) batches.

    Labels are optional (then only calibration and no-label metrics work). The tensors may be
    shared by every caller (cached): do not modify them in place. distill(outputs,
    teacher_outputs) is the term fine-tuning adds to `loss` when it has the FP32 model as a
    teacher (None: the data does not say how to compare outputs, no distillation).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor | None
    x_test: torch.Tensor
    y_test: torch.Tensor | None
    metric: Metric = TOP1
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = default_loss
    distill: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    evaluation: str = ACCURACY
    eval_samples: int = EVAL_SAMPLES
    calib_samples: int = CALIB_SAMPLES

    @property
    def labelled(self) -> bool:
        return self.y_train is not None and self.y_test is not None

    def test(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first n (default eval_samples) test samples and their labels."""
        n = min(n or self.eval_samples, len(self.x_test))
        return self.x_test[:n], None if self.y_test is None else self.y_test[:n]

    def calibration(self, n: int | None = None, seed: int = 0) -> torch.Tensor:
        """A seeded sample of n (default calib_samples) train inputs, (n, *sample)."""
        n = min(n or self.calib_samples, len(self.x_train))
        idx = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(seed))
        return self.x_train[idx[:n]]

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.x_train) // batch_size)

    def fingerprint(self, *choices: str | None) -> str:
        """`name#hash` of the tensors' contents (and the given choices, e.g. --metric/--loss):
        rows measured on other data or scored otherwise never count as already measured."""
        h = hashlib.sha1(repr(choices).encode())
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            if t is not None:
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.contiguous().numpy().tobytes())
        return f"{self.name}#{h.hexdigest()[:10]}"


def fit_dataset(ds: Dataset, input_shape: tuple[int, ...], input_dtype: str) -> Dataset:
    """`ds` checked against the model's input, samples given with the batch-1 axis
    ((N, *input_shape)) reshaped to (N, *input_shape[1:]), floats cast to the input dtype.
    DataError (one line naming the problem) if it cannot feed this model."""
    full, sample = tuple(input_shape), tuple(input_shape[1:])
    want = torch_dtype(input_dtype)

    def fit(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == len(full) + 1 and tuple(x.shape[1:]) == full:
            x = x.reshape(len(x), *sample)
        return x.to(want) if x.is_floating_point() and want.is_floating_point else x

    ds = replace(ds, x_train=fit(ds.x_train), x_test=fit(ds.x_test))
    check_dataset(ds, input_shape, input_dtype)
    return ds


def check_dataset(ds: Dataset, input_shape: tuple[int, ...], input_dtype: str) -> None:
    """Raise DataError (one line naming the problem) if `ds` cannot feed this model."""
    sample = tuple(input_shape[1:])
    for part, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        if x.dim() == 0 or len(x) == 0:
            raise DataError(f"data '{ds.name}': the {part} part is empty")
        if tuple(x.shape[1:]) != sample:
            raise DataError(f"data '{ds.name}': {part} inputs are shaped "
                            f"{tuple(x.shape[1:])} per sample, the model takes "
                            f"{sample} (input shape {tuple(input_shape)})")
        if x.is_floating_point() != torch_dtype(input_dtype).is_floating_point:
            raise DataError(f"data '{ds.name}': {part} inputs are {x.dtype}, the model takes "
                            f"{input_dtype}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise DataError(f"data '{ds.name}': the {part} inputs contain NaN or Inf")
        if y is not None and len(y) != len(x):
            raise DataError(f"data '{ds.name}': {len(x)} {part} inputs but {len(y)} labels")
    if ds.metric.needs_labels and ds.y_test is None:
        raise DataError(f"data '{ds.name}': metric '{ds.metric.name}' needs labels and the "
                        "test part has none")


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


@functools.cache
def digits_dataset(image_size: int = 8, flatten: bool = False, channels: int = 1) -> Dataset:
    """The digits split as a Dataset: (N, S*S) flattened, or (N, channels, S, S)."""
    split = digits_split(image_size)

    def shape(x: torch.Tensor) -> torch.Tensor:
        if flatten:
            return x.flatten(1)
        return x.expand(-1, channels, -1, -1).contiguous() if channels != 1 else x

    return Dataset(f"digits{image_size}", shape(split.x_train), split.y_train,
                   shape(split.x_test), split.y_test, distill=distill_logits)
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


# --- the user's data (--data, --metric, --loss) ----------------------------------------------

FIDELITY_NO_LABELS = "fidelity (no labels)"


@dataclass(frozen=True)
class DataOptions:
    """What the user said about data: `--data`, `--metric`, `--loss`, `--calib-samples`,
    `--eval-samples` (None: the model's own data and defaults)."""

    data: str | None = None
    metric: str | None = None
    loss: str | None = None
    calib_samples: int | None = None
    eval_samples: int | None = None

    def __post_init__(self) -> None:
        for name in ("calib_samples", "eval_samples"):
            n = getattr(self, name)
            if n is not None and n < 1:
                raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {n}")


def _callable(ref: str, kind: str) -> Callable[..., object]:
    from edgebench.models.user import load_callable

    return load_callable(ref, kind, DataError)


def _tensor(value: object, what: str) -> torch.Tensor | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise DataError(f"{what} is a {type(value).__name__}, not a tensor or array") from None
    return value


def _part(ref: str, name: str, part: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A train or test part: a torch Dataset of (input, label) or inputs, a pair (x, y), or x."""
    what = f"data '{ref}': the {name} part"
    if isinstance(part, torch.utils.data.Dataset) and not isinstance(part, torch.Tensor):
        try:
            items = [part[i] for i in range(len(part))]  # type: ignore[arg-type]
        except Exception as e:
            raise DataError(f"{what}: reading it raised {type(e).__name__}: {e}") from None
        if not items:
            raise DataError(f"{what} is empty")
        if isinstance(items[0], tuple | list):
            xs = [_tensor(it[0], what) for it in items]
            ys = [_tensor(it[1], what) for it in items] if len(items[0]) > 1 else None
        else:
            xs, ys = [_tensor(it, what) for it in items], None
        return torch.stack(xs), None if ys is None else torch.stack(ys)
    if isinstance(part, tuple | list):
        if len(part) != 2:
            raise DataError(f"{what} is a sequence of {len(part)}; give (x, y), (x, None), a "
                            "tensor x or a torch Dataset")
        x, y = _tensor(part[0], what), _tensor(part[1], what)
    else:
        x, y = _tensor(part, what), None
    assert x is not None
    return x, y


def _from_npz(path: str) -> tuple[tuple, tuple]:
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"data '{path}': file not found") from None
    except (OSError, ValueError) as e:
        raise DataError(f"data '{path}': not a readable .npz ({e})") from None
    with npz:
        for key in ("x_train", "x_test"):
            if key not in npz.files:
                raise DataError(f"data '{path}': the .npz has no '{key}' array (it has "
                                f"{', '.join(npz.files) or 'none'}; needs x_train, x_test and "
                                "optionally y_train, y_test)")
        get = {k: npz[k] for k in npz.files}
    return (get["x_train"], get.get("y_train")), (get["x_test"], get.get("y_test"))


def user_metric(ref: str) -> Metric:
    """`top1`, `mse`, or `file.py:fn` / `module:fn` with fn(outputs, labels) -> float; higher
    is better unless fn has an attribute higher_is_better = False."""
    if ref in ("top1", "mse"):
        return TOP1 if ref == "top1" else MSE
    fn = _callable(ref, "metric")
    name = getattr(fn, "__name__", ref.rpartition(":")[2])
    return Metric(name, fn, higher_is_better=bool(getattr(fn, "higher_is_better", True)))


def user_loss(ref: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`file.py:fn` / `module:fn` with fn(outputs, labels) -> scalar tensor to minimise."""
    return _callable(ref, "loss")  # type: ignore[return-value]


def load_data(ref: str, metric: str | None = None, loss: str | None = None) -> Dataset:
    """The user's data: an .npz (x_train, y_train, x_test, y_test; labels optional) or a
    factory `file.py:fn` / `module:fn` returning (train, test). DataError (one line) if it
    cannot be had. The metric defaults to top1 for integer labels, mse for float labels."""
    if ref.endswith(".npz"):
        train, test = _from_npz(ref)
    else:
        factory = _callable(ref, "data")
        try:
            got = factory()
        except Exception as e:
            raise DataError(f"data '{ref}': the factory raised {type(e).__name__}: {e}") \
                from None
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise DataError(f"data '{ref}': the factory returned {type(got).__name__}; it must "
                            "return (train, test)")
        train, test = got
    x_train, y_train = _part(ref, "train", train)
    x_test, y_test = _part(ref, "test", test)
    if x_train.dtype == torch.float64:
        x_train, x_test = x_train.float(), x_test.float()
    y_float = y_test is not None and y_test.is_floating_point()
    if metric is None:
        chosen = AGREEMENT if y_test is None else MSE if y_float else TOP1
    else:
        chosen = user_metric(metric)
    if y_train is not None and y_train.is_floating_point():
        y_train = y_train.float()
    if y_test is not None and y_test.is_floating_point():
        y_test = y_test.float()
    if chosen is TOP1 and y_test is not None and y_float:
        raise DataError(f"data '{ref}': metric top1 needs integer class labels; the test "
                        f"labels are {y_test.dtype} (use --metric mse or your own)")
    return Dataset(ref, x_train, y_train.long() if y_train is not None and not
                   y_train.is_floating_point() else y_train, x_test,
                   y_test.long() if y_test is not None and not y_test.is_floating_point()
                   else y_test, metric=chosen,
                   loss=user_loss(loss) if loss else default_loss,
                   distill=None if y_test is None else distill_mse if y_float else distill_logits,
                   evaluation=ACCURACY if y_test is not None else FIDELITY_NO_LABELS)
