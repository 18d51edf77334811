"""Pruning configs (one frozen dataclass per method family) and the variant-string grammar.

Grammar (the part after `prune=` in a variant string; SPARSITY is a fraction in [0, 1)):

    unstructured:SPARSITY[:layer|:global]   smallest |w| zeroed, per layer (default) or globally
    threshold:T                             |w| < T zeroed (the classic Han et al. recipe)
    block:RxC:SPARSITY[:layer|:global]      whole R x C blocks zeroed (R along outputs)
    nm:N:M                                  N of every M consecutive input weights kept
    channel:SPARSITY[:layer|:global]        fraction of channels removed (torch-pruning)
    gradual:SPARSITY                        = gradual:unstructured:SPARSITY
    gradual:unstructured:SPARSITY[:global]  polynomial schedule while fine-tuning
    gradual:block:RxC:SPARSITY[:global]

Any one-shot form takes a trailing `:ftN`: prune once, then fine-tune N epochs on the model's
training data (BatchNorm frozen, distilled from the unpruned model where the data allows).

Configs validate in __post_init__, so a bad value fails the same way from Python and from a
variant string, before any model is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

Scope = Literal["layer", "global"]
LAYER_TYPES = ("Linear", "Conv2d")


class PruneError(ValueError):
    """A pruning request that cannot be honoured; the message names the value and the fix."""


def _check_sparsity(value: float, what: str = "sparsity") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PruneError(f"{what} must be a number in [0, 1), got {value!r}")
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        hint = (f" (a fraction: {value / 100:g} for {value:g}%)"
                if 1 < value <= 100 and value == int(value) else "")
        raise PruneError(f"{what} {value:g} is outside [0, 1){hint}")
    return float(value)


def _check_scope(scope: str) -> None:
    if scope not in ("layer", "global"):
        raise PruneError(f"scope must be 'layer' or 'global', got {scope!r}")


def _patterns(value: object, what: str) -> tuple[str, ...]:
    """Accept a string or any iterable of strings (a bare str is one pattern, not chars)."""
    items = (value,) if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]
    if not all(isinstance(p, str) and p for p in items):
        raise PruneError(f"{what} must be non-empty strings, got {value!r}")
    return items


@dataclass(frozen=True)
class PruneConfig:
    """Base of every config; `method` is the grammar keyword, `kind` what prune() returns."""

    method: ClassVar[str] = ""
    kind: ClassVar[str] = "masked"

    @property
    def text(self) -> str:
        """The variant-grammar spelling (only the grammar-expressible fields)."""
        raise NotImplementedError


@dataclass(frozen=True)
class LayerSelection(PruneConfig):
    """Which layers a one-shot method touches; fields shared by every one-shot config.

    include/exclude are fnmatch patterns on module names (`features.0`, `layers.*.ffn.0`);
    every pattern must match a layer, so typos fail. types limits the layer classes.
    keep_first_last: the first and last layer in execution order are the most sensitive to
    pruning (Gale et al. 2019). True keeps both dense, False prunes them, None (default)
    keeps each dense only if it holds under 10% of the model's Linear/Conv2d weights: a
    1-channel first conv or a classifier head costs little to keep, while an MLP's input
    layer (half of digits-mlp) is too big to leave out. A layer named exactly in include is
    pruned regardless.
    finetune_epochs > 0 fine-tunes that many epochs on the model's training data after
    pruning (`:ftN`), masks re-applied after every step, BatchNorm frozen, and with
    finetune_distill (default) the data's distillation term against the unpruned model.
    """

    include: tuple[str, ...] = field(default=(), kw_only=True)
    exclude: tuple[str, ...] = field(default=(), kw_only=True)
    types: tuple[str, ...] = field(default=LAYER_TYPES, kw_only=True)
    keep_first_last: bool | None = field(default=None, kw_only=True)
    finetune_epochs: int = field(default=0, kw_only=True)

    def _spell(self, head: str) -> str:
        """`head`, then `:global` if the scope is global, then `:ftN` (N fine-tuning epochs)."""
        scope = ":global" if getattr(self, "scope", "layer") == "global" else ""
        return head + scope + (f":ft{self.finetune_epochs}" if self.finetune_epochs else "")
    finetune_lr: float = field(default=3e-3, kw_only=True)
    finetune_distill: bool = field(default=True, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "include", _patterns(self.include, "include patterns"))
        object.__setattr__(self, "exclude", _patterns(self.exclude, "exclude patterns"))
        object.__setattr__(self, "types", _patterns(self.types, "types"))
        unknown = [t for t in self.types if t not in LAYER_TYPES]
        if unknown or not self.types:
            raise PruneError(f"unsupported layer type(s) {', '.join(unknown) or '(none)'} in "
                             f"types (supported: {', '.join(LAYER_TYPES)})")
        if self.finetune_epochs < 0 or self.finetune_lr <= 0:
            raise PruneError("finetune_epochs must be >= 0 and finetune_lr > 0")


@dataclass(frozen=True)
class UnstructuredConfig(LayerSelection):
    """Zero the round(sparsity * n) smallest-|w| weights of each layer, or of all at once."""

    sparsity: float
    scope: Scope = "layer"
    method: ClassVar[str] = "unstructured"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "sparsity", _check_sparsity(self.sparsity))
        _check_scope(self.scope)

    @property
    def text(self) -> str:
        return self._spell(f"unstructured:{self.sparsity:g}")


@dataclass(frozen=True)
class ThresholdConfig(LayerSelection):
    """Zero every weight with |w| < threshold; the sparsity is whatever that gives."""

    threshold: float
    method: ClassVar[str] = "threshold"

    def __post_init__(self) -> None:
        super().__post_init__()
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            raise PruneError(f"threshold must be a finite number >= 0, got {t!r}")
        object.__setattr__(self, "threshold", float(t))

    @property
    def text(self) -> str:
        return self._spell(f"threshold:{self.threshold:g}")


@dataclass(frozen=True)
class BlockConfig(LayerSelection):
    """Zero whole (rows, cols) blocks of the 2-D weight by block L2 norm (BSR-friendly).

    The 2-D weight is Linear [out, in] or Conv2d [out, in*kh*kw]; rows run along outputs.
    Layers whose dims are not multiples of the block are skipped (listed in the result),
    or refused with PruneError if named exactly in include.
    """

    block: tuple[int, int]
    sparsity: float
    scope: Scope = "layer"
    method: ClassVar[str] = "block"

    def __post_init__(self) -> None:
        super().__post_init__()
        b = tuple(self.block)
        if len(b) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                  for v in b):
            raise PruneError(f"block must be two positive integers (rows, cols), got "
                             f"{self.block!r}")
        object.__setattr__(self, "block", b)
        object.__setattr__(self, "sparsity", _check_sparsity(self.sparsity))
        _check_scope(self.scope)

    @property
    def text(self) -> str:
        r, c = self.block
        return self._spell(f"block:{r}x{c}:{self.sparsity:g}")


@dataclass(frozen=True)
class NMConfig(LayerSelection):
    """Keep the n largest |w| in every group of m consecutive input weights of each row.

    Groups run along the input dim of the 2-D weight (Conv2d: in*kh*kw, PyTorch order).
    Layers whose input dim is not a multiple of m are skipped, or refused if named exactly.
    """

    n: int
    m: int
    method: ClassVar[str] = "nm"

    def __post_init__(self) -> None:
        super().__post_init__()
        n, m = self.n, self.m
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, m)):
            raise PruneError(f"N:M needs integers, got {n!r}:{m!r}")
        if n < 1 or m < 1 or n > m:
            raise PruneError(f"N:M needs 1 <= N <= M, got {n}:{m}")

    @property
    def sparsity(self) -> float:
        return 1 - self.n / self.m

    @property
    def text(self) -> str:
        return self._spell(f"nm:{self.n}:{self.m}")


@dataclass(frozen=True)
class ChannelConfig(LayerSelection):
    """Remove a fraction of output channels/features with torch-pruning (a smaller dense net).

    Selected layers are the roots whose outputs shrink; coupled layers (BatchNorm, the next
    layer's inputs, residual partners) follow via torch-pruning's DependencyGraph. The final
    layer is never a root, so output shapes stay. keep_first_last defaults to False here:
    shrinking the first conv's outputs is standard and cheap in accuracy. importance_p is
    the norm of tp.importance.GroupMagnitudeImportance; round_to keeps channel counts
    multiples of it (vector-width friendly).
    """

    sparsity: float
    scope: Scope = "layer"
    keep_first_last: bool | None = field(default=False, kw_only=True)
    importance_p: int = field(default=2, kw_only=True)
    round_to: int | None = field(default=None, kw_only=True)
    method: ClassVar[str] = "channel"
    kind: ClassVar[str] = "structured"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "sparsity", _check_sparsity(self.sparsity))
        _check_scope(self.scope)
        if self.importance_p not in (1, 2):
            raise PruneError(f"importance_p must be 1 or 2, got {self.importance_p!r}")
        if self.round_to is not None and self.round_to < 1:
            raise PruneError(f"round_to must be a positive integer, got {self.round_to!r}")

    @property
    def text(self) -> str:
        return self._spell(f"channel:{self.sparsity:g}")


@dataclass(frozen=True)
class GradualConfig(PruneConfig):
    """Prune to target.sparsity along TF-MOT's PolynomialDecay while fine-tuning on digits.

    target (unstructured or block) supplies the pattern, scope and layer selection. The
    schedule s(t) = final + (initial - final) * (1 - p)^power, p = (t - begin)/(end - begin),
    recomputes masks every `frequency` optimizer steps in [begin_step, end_step] and always
    at end_step, so the final sparsity is reached exactly; masks are re-applied after every
    step. end_step=None means end_fraction of the run's steps, leaving the rest to recover.
    Defaults (30 epochs, Adam at the digits models' own lr 3e-3 with cosine decay, pruning
    over the first 60%) keep digits-cnn (unstructured) within a point of FP32 at 90-95% (see
    results/pruning); on 360 test images the recipe is flat within that noise. distill adds
    the data's distillation term against the unpruned model (as `:ftN` does).
    """

    target: UnstructuredConfig | BlockConfig
    initial_sparsity: float = 0.0
    epochs: int = 30
    lr: float = 3e-3
    begin_step: int = 0
    end_step: int | None = None
    end_fraction: float = 0.6
    frequency: int = 10
    power: float = 3.0
    batch_size: int = 64
    seed: int = 0
    distill: bool = True
    method: ClassVar[str] = "gradual"

    def __post_init__(self) -> None:
        if not isinstance(self.target, UnstructuredConfig | BlockConfig):
            raise PruneError("gradual pruning needs an UnstructuredConfig or BlockConfig target, "
                             f"got {type(self.target).__name__}")
        _check_sparsity(self.initial_sparsity, "initial_sparsity")
        if self.initial_sparsity > self.target.sparsity:
            raise PruneError(f"initial_sparsity {self.initial_sparsity:g} exceeds the final "
                             f"sparsity {self.target.sparsity:g}")
        if self.epochs < 1 or self.lr <= 0 or self.frequency < 1 or self.batch_size < 1:
            raise PruneError("gradual pruning needs epochs >= 1, lr > 0, frequency >= 1 and "
                             "batch_size >= 1")
        if self.begin_step < 0 or (self.end_step is not None and self.end_step <= self.begin_step):
            raise PruneError(f"need 0 <= begin_step < end_step, got {self.begin_step}, "
                             f"{self.end_step}")
        if not 0 < self.end_fraction <= 1:
            raise PruneError(f"end_fraction must be in (0, 1], got {self.end_fraction:g}")
        if self.power <= 0:
            raise PruneError(f"power must be > 0, got {self.power:g}")

    @property
    def sparsity(self) -> float:
        return self.target.sparsity

    @property
    def text(self) -> str:
        inner = self.target.text
        return "gradual:" + (inner.split(":", 1)[1]
                             if isinstance(self.target, UnstructuredConfig)
                             and self.target.scope == "layer" else inner)


# ---------------------------------------------------------------------------------------------
# Grammar

def _number(raw: str, value: str, what: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise PruneError(f"prune '{raw}': {what} '{value}' is not a number") from None
    if not math.isfinite(out):
        raise PruneError(f"prune '{raw}': {what} '{value}' is not finite")
    return out


def _sparsity(raw: str, value: str) -> float:
    try:
        return _check_sparsity(_number(raw, value, "sparsity"))
    except PruneError as e:
        msg = str(e)
        raise PruneError(msg if msg.startswith("prune '") else f"prune '{raw}': {msg}") from None


def _scope(raw: str, rest: list[str], form: str) -> Scope:
    if not rest:
        return "layer"
    if len(rest) == 1 and rest[0] in ("layer", "global"):
        return rest[0]  # type: ignore[return-value]
    raise PruneError(f"prune '{raw}': unexpected '{':'.join(rest)}' (expected {form})")


def _block(raw: str, value: str) -> tuple[int, int]:
    rows, sep, cols = value.lower().partition("x")
    if not (sep and rows.isdigit() and cols.isdigit() and int(rows) > 0 and int(cols) > 0):
        raise PruneError(f"prune '{raw}': bad block '{value}' (expected RxC with positive "
                         "integers, e.g. 4x1)")
    return int(rows), int(cols)


def _scoped(cls: type, name: str, example: str):
    """Parser for NAME:SPARSITY[:layer|:global] forms (unstructured, channel)."""
    form = f"{name}:SPARSITY[:global]"

    def parse(raw: str, args: list[str]):
        if not args:
            raise PruneError(f"prune '{raw}': expected {form}, e.g. {name}:{example}")
        return cls(_sparsity(raw, args[0]), scope=_scope(raw, args[1:], form))

    return parse


_parse_unstructured = _scoped(UnstructuredConfig, "unstructured", "0.9")


def _parse_threshold(raw: str, args: list[str]) -> ThresholdConfig:
    if len(args) != 1:
        raise PruneError(f"prune '{raw}': expected threshold:T, e.g. threshold:0.05")
    t = _number(raw, args[0], "threshold")
    if t < 0:
        raise PruneError(f"prune '{raw}': threshold must be >= 0")
    return ThresholdConfig(t)


def _parse_block(raw: str, args: list[str]) -> BlockConfig:
    form = "block:RxC:SPARSITY[:global]"
    if len(args) < 2:
        raise PruneError(f"prune '{raw}': expected {form}, e.g. block:4x1:0.9")
    return BlockConfig(_block(raw, args[0]), _sparsity(raw, args[1]),
                       scope=_scope(raw, args[2:], form))


def _parse_nm(raw: str, args: list[str]) -> NMConfig:
    if len(args) != 2 or not all(a.isdigit() for a in args):
        raise PruneError(f"prune '{raw}': expected nm:N:M with integers, e.g. nm:2:4")
    try:
        return NMConfig(int(args[0]), int(args[1]))
    except PruneError as e:
        raise PruneError(f"prune '{raw}': {e}") from None


_parse_channel = _scoped(ChannelConfig, "channel", "0.5")


def _parse_gradual(raw: str, args: list[str]) -> GradualConfig:
    if not args:
        raise PruneError(f"prune '{raw}': expected gradual:SPARSITY, "
                         "gradual:unstructured:SPARSITY[:global] or gradual:block:RxC:SPARSITY")
    inner = args[0].lower()
    if inner == "unstructured":
        return GradualConfig(_parse_unstructured(raw, args[1:]))
    if inner == "block":
        return GradualConfig(_parse_block(raw, args[1:]))
    try:
        float(inner)
    except ValueError:
        pass
    else:
        return GradualConfig(_parse_unstructured(raw, args))
    raise PruneError(f"prune '{raw}': gradual pruning supports unstructured and block, "
                     f"not '{args[0]}'")


_PARSERS = {"unstructured": _parse_unstructured, "threshold": _parse_threshold,
            "block": _parse_block, "nm": _parse_nm, "channel": _parse_channel,
            "gradual": _parse_gradual}
METHODS: tuple[str, ...] = tuple(_PARSERS)


def parse_prune(text: str) -> PruneConfig:
    """Parse the grammar in this module's docstring into a validated config."""
    raw = text.strip()
    parts = [p.strip() for p in raw.split(":")]
    method = parts[0].lower()
    if method not in _PARSERS:
        raise PruneError(f"unknown pruning method '{parts[0]}' in '{raw}' "
                         f"(known: {', '.join(METHODS)})")
    epochs = 0
    if len(parts) > 1 and parts[-1].startswith("ft") and parts[-1][2:].isdigit():
        epochs, parts = int(parts[-1][2:]), parts[:-1]
    config = _PARSERS[method](raw, parts[1:])
    if epochs:
        if not isinstance(config, LayerSelection):
            raise PruneError(f"prune '{raw}': ':ftN' applies to one-shot methods; gradual "
                             "pruning fine-tunes already")
        config = replace(config, finetune_epochs=epochs)
    return config
