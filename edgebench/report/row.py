"""The result row: one typed record per (model, variant, runtime, target, threads).

Each stage returns its part (the variant's model facts, the TVM build, the artifact, the
timing, the scores); the pipeline assembles them into a `ResultRow`, and ResultsWriter writes
it as one CSV line. Per-layer facts are structured (`LayerFacts`, `Fp32Layers`) and written
as the same column text earlier versions wrote, so old CSVs load and resume unchanged.
Reading (`ResultRow.from_columns`, `DTYPES` for pandas) goes through the same field types.
Kept free of pandas and torch: the passes and the workers import it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class LayerFacts:
    """Per layer, what it became: (layer, fact) pairs, written `layer=fact;layer=fact`.
    An item without the separator keeps its text as the layer and None as the fact, so any
    column text reads back and writes out unchanged."""

    items: tuple[tuple[str, str | None], ...] = ()
    SEP: ClassVar[str] = ";"
    KV: ClassVar[str] = "="

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, object]]) -> LayerFacts:
        return cls(tuple((str(k), None if v is None else str(v)) for k, v in pairs))

    @classmethod
    def parse(cls, text: str) -> LayerFacts:
        items = []
        for item in text.split(cls.SEP):
            layer, sep, fact = item.partition(cls.KV)
            items.append((layer, fact) if sep else (item, None))
        return cls(tuple(items))

    def text(self) -> str:
        return self.SEP.join(k if v is None else f"{k}{self.KV}{v}" for k, v in self.items)

    def mapping(self) -> dict[str, str | None]:
        return dict(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


class Int8Layers(LayerFacts):
    """`node=kind[/kernel(instruction)]` per integer layer (int8_layers)."""


class Fp16Kernels(LayerFacts):
    """`kernel=fp16(instructions)` per kernel of an FP16 build (fp16_kernels)."""


class LayerSparsity(LayerFacts):
    """`layer=0.900` per pruned layer (layer_sparsity)."""

    def sparsity(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.items if v is not None}


class KeptFp32(LayerFacts):
    """`layer: why` per layer a quantizer kept in FP32 (kept_fp32)."""

    KV = ": "


class SparseLayers(LayerFacts):
    """`label s=0.900 sparse 4x1 ...` per candidate layer of a +sparse build (sparse_layers)."""

    SEP = "; "
    KV = " "


@dataclass(frozen=True)
class Fp32Layers:
    """Our FP32 kernels in a build (fp32_layers): layers per kernel family, those whose code
    lacks the FMA, the ops left to TVM, or why nothing was lowered. Written `family:n ...
    [NO-FMA:a,b] [| tvm op:n ...]`."""

    families: tuple[tuple[str, int], ...] = ()
    no_fma: tuple[str, ...] = ()
    tvm_ops: tuple[tuple[str, int], ...] = ()
    not_lowered: str = ""

    @classmethod
    def of(cls, families: Iterable[str], no_fma: Iterable[str] = (),
           tvm_ops: Iterable[str] = (), not_lowered: str = "") -> Fp32Layers:
        """From one family name per kernel and one op name per op TVM kept."""
        return cls(_counts(families), tuple(no_fma), _counts(tvm_ops), not_lowered)

    @classmethod
    def parse(cls, text: str) -> Fp32Layers:
        if text.startswith("not lowered (") and text.endswith("): all on TVM's ops"):
            return cls(not_lowered=text[len("not lowered ("):-len("): all on TVM's ops")])
        head, _, ops = text.partition(" | tvm ")
        families, no_fma = [], ()
        for token in head.split():
            name, _, n = token.rpartition(":")
            if name == "NO-FMA":
                no_fma = tuple(n.split(","))
            else:
                families.append((name, int(n)))
        return cls(tuple(families), no_fma,
                   tuple((o, int(n)) for o, _, n in (t.rpartition(":") for t in ops.split())))

    def text(self) -> str:
        if self.not_lowered:
            return f"not lowered ({self.not_lowered}): all on TVM's ops"
        text = " ".join(f"{f}:{n}" for f, n in self.families)
        if self.no_fma:
            text += " NO-FMA:" + ",".join(self.no_fma)
        if self.tvm_ops:
            text += " | tvm " + " ".join(f"{o}:{n}" for o, n in self.tvm_ops)
        return text

    def __bool__(self) -> bool:
        return bool(self.families or self.tvm_ops or self.not_lowered)


def _counts(names: Iterable[str]) -> tuple[tuple[str, int], ...]:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return tuple(counts.items())


# ---- the parts, one per stage ---------------------------------------------------------------

@dataclass
class Where:
    """Target and machine: where and when the row was measured, and on what data."""

    target: str
    threads: int
    cores: str = ""
    machine: str = ""
    emulated: bool = False
    timestamp: str = ""
    board: str | None = None  # the board that measured it (RPC targets)
    data: str | None = None  # fingerprint of the user's --data/--metric/--loss (resume key)


@dataclass
class ModelFacts:
    """The variant's PyTorch model: parameters and what pruning/quantization made of it."""

    params: int | None = None
    nonzero_params: int | None = None
    prune_kind: str | None = None
    sparsity: float | None = None
    macs: int | None = None
    layer_sparsity: LayerSparsity | None = None
    quant_kind: str | None = None  # "simulated" (fake quant) until a build says otherwise
    weight_bytes: int | None = None
    kept_fp32: KeptFp32 | None = None


@dataclass
class BuildFacts:
    """What the TVM build did: tuning, compile time and each layer's kernel. `quant_kind` /
    `prune_kind`, when set, replace the model's (integer code, sparse kernels)."""

    tuned_trials: int | None = None
    tasks: int | None = None
    tasks_tuned_now: int | None = None
    tuning_s: float | None = None
    compile_s: float | None = None
    kernels_ms: float | None = None
    tuning_cut: str | None = None
    int8_layers: Int8Layers | None = None
    fp32_layers: Fp32Layers | None = None
    fp16_kernels: Fp16Kernels | None = None
    sparse_layers: SparseLayers | None = None
    quant_kind: str | None = None
    prune_kind: str | None = None


@dataclass
class Artifact:
    """The deployable file one runtime runs, and how long making it took."""

    export_s: float | None = None
    artifact_bytes: int | None = None
    artifact_gzip_bytes: int | None = None


@dataclass
class Timing:
    """The measuring worker's (or board's) latency and memory figures."""

    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    runs: int | None = None
    first_ms: float | None = None
    load_s: float | None = None
    peak_rss_mb: float | None = None
    model_rss_mb: float | None = None

    @classmethod
    def from_stats(cls, stats: Mapping) -> Timing:
        return cls(**{f.name: stats.get(f.name) for f in dataclasses.fields(cls)})


@dataclass
class Scores:
    """The runtime's own outputs scored: the model's metric against FP32's, top-1 agreement
    and error against the FP32 reference."""

    metric: str | None = None
    metric_value: float | None = None
    metric_fp32: float | None = None
    metric_drop: float | None = None  # points, positive = worse
    evaluation: str | None = None  # "accuracy" or a fidelity kind
    accuracy: float | None = None
    top1_agreement: float | None = None
    max_abs_err: float | None = None
    cents_error: float | None = None  # a metric's extra (CREPE)
    eval_warning: str | None = None


# ---- the row --------------------------------------------------------------------------------

PARTS = {"where": Where, "model_facts": ModelFacts, "build": BuildFacts, "artifact": Artifact,
         "timing": Timing, "scores": Scores}


@dataclass
class ResultRow:
    """One result row, assembled from the stages' parts (None: the stage did not run)."""

    model: str
    variant: str
    runtime: str
    where: Where
    status: str = "failed"
    error: str | None = None
    model_facts: ModelFacts | None = None
    build: BuildFacts | None = None
    artifact: Artifact | None = None
    verify_err: float | None = None  # verification: max error against the reference
    timing: Timing | None = None
    scores: Scores | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return (self.model, self.variant, self.runtime, self.where.target,
                str(self.where.threads))

    def columns(self) -> dict[str, object]:
        """Column -> typed value (structured facts as objects); a build's quant_kind and
        prune_kind replace the model's."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in PARTS:
                for g in dataclasses.fields(PARTS[f.name]):
                    v = None if value is None else getattr(value, g.name)
                    if v is not None or g.name not in out:
                        out[g.name] = v
            else:
                out[f.name] = value
        return out

    def csv_fields(self) -> dict[str, str]:
        """The row as CSV text, column by column (COLUMNS order)."""
        values = self.columns()
        return {c: _text(values[c]) for c in COLUMNS}

    def json_fields(self) -> dict[str, object]:
        """The row as JSON values (COLUMNS order): numbers typed, per-layer facts as text."""
        values = self.columns()
        return {c: values[c].text() if isinstance(values[c], LayerFacts | Fp32Layers)
                else values[c] for c in COLUMNS}

    def get(self, column: str) -> object:
        return self.columns()[column]

    @classmethod
    def from_columns(cls, columns: Mapping[str, object]) -> ResultRow:
        """A row read back (CSV text or typed values; missing columns are empty)."""
        typed = {c: _parse(TYPES[c], columns.get(c)) for c in COLUMNS}
        parts = {}
        for name, part in PARTS.items():
            names = [g.name for g in dataclasses.fields(part)
                     if not (name == "build" and g.name in _BUILD_OVERRIDES)]
            if name == "where" or any(typed[n] is not None for n in names):
                parts[name] = part(**{n: typed[n] for n in names})
        where = parts.pop("where")
        if where.threads is None:
            where.threads = 0
        return cls(model=typed["model"] or "", variant=typed["variant"] or "",
                   runtime=typed["runtime"] or "", where=where,
                   status=typed["status"] or "failed", error=typed["error"],
                   verify_err=typed["verify_err"], **parts)


_BUILD_OVERRIDES = ("quant_kind", "prune_kind")  # read back into the model's facts

# The CSV column order (kept from earlier versions: a file with this header resumes in place).
COLUMNS = [
    "model", "variant", "runtime", "target", "threads", "cores", "status", "error",
    "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "runs", "first_ms", "load_s",
    "peak_rss_mb", "model_rss_mb", "artifact_bytes", "artifact_gzip_bytes", "params",
    "nonzero_params", "accuracy", "top1_agreement", "metric", "metric_value", "metric_fp32",
    "metric_drop", "evaluation", "data", "cents_error", "max_abs_err", "verify_err",
    "tuned_trials", "tasks", "tasks_tuned_now", "tuning_s", "compile_s", "export_s",
    "kernels_ms", "tuning_cut",
    "prune_kind", "sparsity", "macs", "layer_sparsity", "sparse_layers", "quant_kind",
    "int8_layers", "fp32_layers", "fp16_kernels", "weight_bytes",
    "kept_fp32", "board", "emulated", "machine", "timestamp", "eval_warning",
]
KEY = ("model", "variant", "runtime", "target", "threads")


def _field_types() -> dict[str, type]:
    """Column -> its value type (the non-None member of each field's annotation)."""
    out: dict[str, type] = {}
    for owner in (ResultRow, *PARTS.values()):
        hints = typing.get_type_hints(owner)
        for f in dataclasses.fields(owner):
            if f.name in PARTS:
                continue
            t = hints[f.name]
            if isinstance(t, types.UnionType):
                t = next(a for a in typing.get_args(t) if a is not type(None))
            out.setdefault(f.name, t)
    return out


TYPES = _field_types()
assert set(TYPES) == set(COLUMNS), set(TYPES) ^ set(COLUMNS)
# pandas dtypes for reading a results CSV: text (and structured) columns stay text, figures are
# floats; integer and bool columns are left to pandas (int64 when complete, float with a gap).
DTYPES: dict[str, object] = {c: "float64" if t is float else str for c, t in TYPES.items()
                             if t not in (int, bool)}


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, LayerFacts | Fp32Layers):
        return value.text()
    return str(value)


def _parse(kind: type, value: object) -> object:
    if value is None or (isinstance(value, str) and value == "") or value != value:  # NaN
        return None
    if type(value) is kind or isinstance(value, LayerFacts | Fp32Layers):
        return value
    if hasattr(kind, "parse"):
        return kind.parse(str(value))
    if kind is bool:
        return str(value).strip().lower() in ("true", "1", "yes")
    if kind is int:
        return int(float(value))
    if kind is float:
        return float(value)
    return str(value)


__all__ = ["COLUMNS", "DTYPES", "KEY", "Artifact", "BuildFacts", "Fp16Kernels", "Fp32Layers",
           "Int8Layers", "KeptFp32", "LayerFacts", "LayerSparsity", "ModelFacts", "ResultRow",
           "Scores", "SparseLayers", "Timing", "Where"]
