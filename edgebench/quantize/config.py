"""Quantization configs and the variant-string grammar (the part after `quant=`).

    dynamic[:per-tensor]                      Linear only: int8 weights, activations at run time
    static[:OBSERVER][:per-tensor][:act-int8][:w4]   post-training int8 with calibration
    qat[:OBSERVER][:per-tensor][:act-int8][:w4]      fake-quant fine-tuning (digits), then as static
    fp16                                      weights and activations in float16
    ternary[:OBSERVER]                        2-bit {-a, 0, a} weights (STE-trained, digits)
    binary[:OBSERVER]                         1-bit {-a, a} weights (STE-trained, digits)

OBSERVER (activation ranges) is minmax (the default), percentile (99.99) or entropy (KL).
Percentile was not better: accuracy ties on digits, and logit SQNR vs FP32 is higher with
min-max on digits-cnn, digits-mlp and the encoder, within 0.8 dB either way on ResNet-18 and
MobileNetV2 (results/quantization/accuracy.md); entropy clips too hard on the CNNs.
Weights are symmetric per output channel unless `per-tensor`; activations asymmetric uint8
unless `act-int8`. Configs validate in __post_init__, so a bad value fails the same way from
Python and from a variant string.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

METHODS = ("dynamic", "static", "qat", "fp16", "ternary", "binary")
OBSERVERS = ("minmax", "percentile", "entropy")
DEFAULT_OBSERVER = "minmax"
ACT_DTYPES = ("uint8", "int8")
# Supported weight bits per method (the first is the default).
WEIGHT_BITS: dict[str, tuple[int, ...]] = {
    "dynamic": (8, 4), "static": (8, 4), "qat": (8, 4), "fp16": (16,), "ternary": (2,),
    "binary": (1,),
}
TRAINED = ("qat", "ternary", "binary")  # methods that fine-tune on the digits training split
# Fine-tuning recipe (epochs, Adam lr with cosine decay) when the config does not override it.
TRAIN_DEFAULTS: dict[str, tuple[int, float]] = {
    "qat": (8, 3e-4), "ternary": (15, 2e-3), "binary": (15, 2e-3),
}


class QuantError(ValueError):
    """A quantization request that cannot be honoured; the message names the value and the fix."""


@dataclass(frozen=True)
class QuantConfig:
    """One quantization recipe. `weight_bits=None` means the method's default.

    calibration_samples: size of the default calibration set (a seeded sample of the model's
    training data, or fixed_batch(seed=1) for models without data). epochs/lr: fine-tuning
    for qat/ternary/binary on the model's data (None: TRAIN_DEFAULTS). keep_fp32: layer or
    node names to leave in FP32 on purpose (listed with reason "kept FP32 by request").
    """

    method: str
    observer: str = DEFAULT_OBSERVER
    per_channel: bool = True
    activation_dtype: str = "uint8"
    weight_bits: int | None = None
    percentile: float = 99.99
    calibration_samples: int | None = None
    epochs: int | None = None
    lr: float | None = None
    keep_fp32: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise QuantError(f"unknown quantization method '{self.method}' "
                             f"(known: {', '.join(METHODS)})")
        if self.observer not in OBSERVERS:
            raise QuantError(f"unknown observer '{self.observer}' (known: {', '.join(OBSERVERS)})")
        if self.activation_dtype not in ACT_DTYPES:
            raise QuantError(f"activation dtype '{self.activation_dtype}' not supported "
                             f"(supported: {', '.join(ACT_DTYPES)})")
        supported = WEIGHT_BITS[self.method]
        bits = supported[0] if self.weight_bits is None else self.weight_bits
        if isinstance(bits, bool) or not isinstance(bits, int) or bits not in supported:
            raise QuantError(f"{self.method}: weight bits {bits!r} not supported "
                             f"(supported: {', '.join(map(str, supported))})")
        object.__setattr__(self, "weight_bits", bits)
        if not self.per_channel and self.method in ("ternary", "binary"):
            raise QuantError(f"{self.method}: weights always use per-channel scales; "
                             "per-tensor is not supported")
        if not 50.0 < self.percentile <= 100.0:
            raise QuantError(f"percentile {self.percentile} is outside (50, 100]")
        if self.calibration_samples is not None and self.calibration_samples < 1:
            raise QuantError(f"calibration_samples must be >= 1, got {self.calibration_samples}")
        if self.epochs is not None and self.epochs < 0:
            raise QuantError(f"epochs must be >= 0, got {self.epochs}")
        if self.lr is not None and not self.lr > 0:
            raise QuantError(f"lr must be > 0, got {self.lr}")
        object.__setattr__(self, "keep_fp32", tuple(self.keep_fp32))

    @property
    def bits(self) -> int:
        assert self.weight_bits is not None  # resolved in __post_init__
        return self.weight_bits

    @property
    def calibrated(self) -> bool:
        """Static activation ranges from a calibration set (everything but dynamic and fp16)."""
        return self.method not in ("dynamic", "fp16")

    @property
    def trained(self) -> bool:
        return self.method in TRAINED

    @property
    def represents_zero(self) -> bool:
        """Binary weights are +-a: a pruned zero cannot survive (reject prune+binary)."""
        return self.method != "binary"

    @property
    def verify_dtype(self) -> str:
        """Key of edgebench.verify.TOLERANCE for outputs of this variant."""
        return "float16" if self.method == "fp16" else "int8"

    @property
    def train_recipe(self) -> tuple[int, float]:
        epochs, lr = TRAIN_DEFAULTS.get(self.method, (0, 0.0))
        return (epochs if self.epochs is None else self.epochs,
                lr if self.lr is None else self.lr)

    @property
    def text(self) -> str:
        """Canonical variant spelling (defaults omitted): parse_quant(c.text) == c."""
        parts = [self.method]
        if self.calibrated and self.observer != DEFAULT_OBSERVER:
            parts.append(self.observer)
        if not self.per_channel:
            parts.append("per-tensor")
        if self.activation_dtype != "uint8":
            parts.append(f"act-{self.activation_dtype}")
        if self.weight_bits != WEIGHT_BITS[self.method][0]:
            parts.append(f"w{self.weight_bits}")
        return ":".join(parts)


def _options(method: str) -> list[str]:
    opts: list[str] = []
    if method not in ("dynamic", "fp16"):
        opts += list(OBSERVERS)
    if method in ("dynamic", "static", "qat"):
        opts += ["per-channel", "per-tensor"]
    if method in ("static", "qat", "ternary", "binary"):
        opts += ["act-uint8", "act-int8"]
    if method in ("dynamic", "static", "qat"):
        opts += [f"w{b}" for b in WEIGHT_BITS[method]]
    return opts


def parse_quant(text: str) -> QuantConfig:
    """Parse `static:entropy:per-tensor` (a leading `quant=` is accepted) into a QuantConfig."""
    raw = text.strip()
    body = raw.removeprefix("quant=")
    method, *tokens = body.split(":")
    if not method:
        raise QuantError(f"quant '{raw}': empty method (known: {', '.join(METHODS)})")
    if method not in METHODS:
        raise QuantError(f"quant '{raw}': unknown method '{method}' (known: {', '.join(METHODS)})")
    allowed = _options(method)
    kwargs: dict[str, object] = {}

    def set_once(key: str, value: object, token: str) -> None:
        if key in kwargs:
            raise QuantError(f"quant '{raw}': '{token}' conflicts with an earlier option")
        kwargs[key] = value

    for token in tokens:
        if token not in allowed and not (token.startswith("w") and token[1:].isdigit()
                                         and method in ("dynamic", "static", "qat")):
            listed = ", ".join(allowed) or "none"
            raise QuantError(f"quant '{raw}': unknown option '{token}' for {method} "
                             f"(options: {listed})")
        if token in OBSERVERS:
            set_once("observer", token, token)
        elif token in ("per-channel", "per-tensor"):
            set_once("per_channel", token == "per-channel", token)
        elif token.startswith("act-"):
            set_once("activation_dtype", token[4:], token)
        else:
            set_once("weight_bits", int(token[1:]), token)
    try:
        return QuantConfig(method=method, **kwargs)  # type: ignore[arg-type]
    except QuantError as e:
        raise QuantError(f"quant '{raw}': {e}") from None


def with_overrides(config: QuantConfig, **changes: object) -> QuantConfig:
    """A copy with fields changed (validated again)."""
    return replace(config, **changes)  # type: ignore[arg-type]
