"""The pipeline: for each variant, export -> compile/tune -> run -> verify -> measure -> report.

Every runtime (TVM and the peers) runs the same variant model, on the same inputs, with the same
threads and pinned cores, each in its own worker process. A row is written the moment it is
measured; a runtime whose outputs disagree with PyTorch gets a `failed` row and no timing.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from edgebench import progress, verify
from edgebench.compile import CompileError, CompileResult, TuneBudget, compile_module
from edgebench.compile.sparse_choice import Int8MeasuredChoice, MeasuredChoice
from edgebench.data import AGREEMENT, DataOptions, Metric
from edgebench.envinfo import host_environment
from edgebench.errors import error_line, interrupted
from edgebench.execute.farm import Farm, Job, for_target
from edgebench.execute.local import WorkerResult, run_worker
from edgebench.execute.rpc import Board, run_remote
from edgebench.frontend import export_program, to_relax
from edgebench.kernels import fp32_sparse_conv
from edgebench.kernels.layer import vector_lanes
from edgebench.measure import MeasureConfig
from edgebench.models import ModelSpec, get_model, with_data
from edgebench.passes import SparsifyWeights
from edgebench.passes.fp16 import check_fp16_asm, fp16_passes
from edgebench.passes.fp32 import Fp32Kernels
from edgebench.passes.int8 import Lowering, fast_gelu, glue_trials, lower_int8
from edgebench.passes.int8_sparse import Int8Sparse
from edgebench.paths import cache_dir
from edgebench.quantize import FP16Model, QuantResult, default_calibration, parse_quant
from edgebench.report import ResultsWriter, write_markdown
from edgebench.report.row import (
    Artifact,
    BuildFacts,
    Fp16Kernels,
    ResultRow,
    Scores,
    SparseLayers,
    Timing,
    Where,
)
from edgebench.runtimes import DEFAULT_RUNTIMES, INT8_PEERS, runtime_module, unavailable_reason
from edgebench.targets import Target, find_target
from edgebench.variant import Transformed, Variant, VariantSpec, parse_variant

Log = Callable[[str], None]


@dataclass
class RunConfig:
    """Everything one `edgebench run` needs; the CLI and Python API both build one."""

    models: Sequence[str] = ("digits-mlp", "digits-cnn")
    target: str | Path = "x86-native"
    variants: Sequence[str] = ("fp32",)
    runtimes: Sequence[str] = DEFAULT_RUNTIMES
    trials: int = 32
    threads: int | None = None
    output: str | Path = "results/latest.csv"
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    input_shape: tuple[int, ...] | None = None
    input_dtype: str = "float32"
    input_high: int | None = None
    extra_passes: Sequence = ()
    resume: bool = True
    board_retries: int = 1  # farm: a row whose board died mid-run is measured once more
    log: Log = print
    tune_budget: TuneBudget = field(default_factory=TuneBudget)
    data: DataOptions = field(default_factory=DataOptions)  # --data, --metric, --loss, ...


def _count(model: torch.nn.Module) -> tuple[int, int]:
    params = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return params, nonzero


def _artifact(path: Path, export_s: float) -> Artifact:
    raw = path.read_bytes()
    return Artifact(export_s, len(raw), len(gzip.compress(raw, compresslevel=6)))


def reference_outputs(model: torch.nn.Module, xs: torch.Tensor) -> list[np.ndarray]:
    """Per-sample (batch 1, like every runtime) outputs, stacked: list over model outputs."""
    outs = []
    with torch.inference_mode():
        for x in xs:
            y = model(x)
            outs.append([t.numpy() for t in (y if isinstance(y, tuple | list) else (y,))])
    return [np.stack([o[i] for o in outs]) for i in range(len(outs[0]))]


def batch_outputs(output: np.ndarray) -> torch.Tensor:
    """Per-sample outputs stacked (N, 1, ...) as the model would return them for a batch of N."""
    out = torch.from_numpy(np.asarray(output))
    return out.flatten(0, 1) if out.dim() >= 2 and out.shape[1] == 1 else out


class ModelRun:
    """State shared by the variants of one model: FP32 weights, eval data, FP32 reference and
    FP32's score. Every runtime's own outputs are scored by the same metric on the same data
    (the model's data; without, agreement with FP32's arg-max on seeded inputs)."""

    def __init__(self, spec: ModelSpec, base: torch.nn.Module | None = None) -> None:
        self.spec = spec
        self.base = base if base is not None else spec.build()
        self.xs, labels = spec.eval_data()
        data = spec.dataset()
        self.metric: Metric = data.metric if data is not None else AGREEMENT
        self.labels = labels.numpy() if labels is not None else None
        self.fp32_ref = reference_outputs(self.base, self.xs)
        fp32 = batch_outputs(self.fp32_ref[0])
        self.metric_labels = (labels if self.metric.needs_labels
                              else fp32.reshape(len(fp32), -1).argmax(1))
        self.metric_fp32 = self.metric.score(fp32, self.metric_labels)
        self.eval_warning = verify.degenerate(self.fp32_ref[0])

    def score_pytorch(self, variant: Variant, transformed: Transformed) -> tuple[float, float]:
        """(metric, drop vs FP32) of the variant's PyTorch model, nothing compiled: what
        `edgebench optimize` screens on. An integer variant is scored on its integer reference,
        which TVM's int8 build matches bit for bit."""
        model = (transformed.quantized.reference
                 if lowers_to_int8(variant, transformed, "tvm") else transformed.model)
        value = self.metric.score(batch_outputs(reference_outputs(model, self.xs)[0]),
                                  self.metric_labels)
        return value, self.metric.drop(value, self.metric_fp32)


def _score(run: ModelRun, outputs: list[np.ndarray]) -> Scores:
    out = batch_outputs(outputs[0])
    value = run.metric.score(out, run.metric_labels)
    extras = run.metric.extras(out, run.metric_labels) if run.metric.extras is not None else {}
    return Scores(metric=run.metric.name, metric_value=value, metric_fp32=run.metric_fp32,
                  metric_drop=run.metric.drop(value, run.metric_fp32),
                  evaluation=run.spec.evaluation, eval_warning=run.eval_warning,
                  accuracy=(verify.accuracy(outputs[0], run.labels)
                            if run.labels is not None and run.metric.name == "top1" else None),
                  top1_agreement=verify.top1_agreement(outputs[0], run.fp32_ref[0]),
                  max_abs_err=verify.max_abs_err(outputs[0], run.fp32_ref[0]), **extras)


@dataclass
class TvmModule:
    """What TVM compiles for one variant: the Relax module, the passes to run on it, and what
    the built code must then be checked for (run and profile build it the same way)."""

    mod: object
    passes: list = field(default_factory=list)
    lowering: Lowering | None = None  # integer variants: what each layer became
    chooser: object | None = None  # +sparse: SparsifyWeights (FP32) or Int8Sparse (int8 BSR)
    fp16: bool = False
    lsb: list[float | None] = field(default_factory=list)  # int8: tolerance per output
    task_trials: Callable[[object, int], int] | None = None  # per-task tuning budget
    fp32: Fp32Kernels | None = None  # FP32 on our kernels (passes/fp32.py)
    facts: BuildFacts = field(default_factory=BuildFacts)  # the row's build part

    @property
    def keep_asm(self) -> bool:
        return self.lowering is not None or self.fp16 or self.fp32 is not None

    def check(self, result: CompileResult, target: Target) -> None:
        """Fill the build facts' per-layer fields from the built code; raise CompileError if a
        kernel lacks the instructions its row would claim (int8 dot product, FP16 math)."""
        facts = self.facts
        if self.fp16:
            check = check_fp16_asm(result.module, result.asm, target.arch)
            facts.fp16_kernels = Fp16Kernels.of((k.name, k.fact()) for k in check.kernels)
            if check.missing:
                raise CompileError(check.error())
        if self.lowering is not None:
            missing = self.lowering.check_asm(result.asm)
            facts.int8_layers = self.lowering.layer_facts()
            if missing:
                raise CompileError("int8 kernels built without their dot-product instruction: "
                                   + ", ".join(f"{la.node} (no {la.instruction})"
                                               for la in missing))
        if self.fp32 is not None:
            missing = self.fp32.record.check_asm(result.asm)
            facts.fp32_layers = self.fp32.record.layer_facts()
            if missing:
                raise CompileError("FP32 kernels built without their FMA: " + ", ".join(
                    f"{k.node} ({k.symbol}: no {k.instruction} on {k.register})"
                    for k in missing))
        if self.chooser is not None:
            layers = [*self.chooser.layers, *(self.fp32.record.sparse if self.fp32 else [])]
            facts.sparse_layers = SparseLayers.of((la.label, la.fact()) for la in layers)
            if any(la.converted for la in layers):
                facts.prune_kind = "sparse-kernel"


def tvm_module(variant: Variant, model: torch.nn.Module, example: torch.Tensor,
               cfg: RunConfig, quantized: QuantResult | None = None) -> TvmModule:
    """The Relax module of a variant: with `quantized` (an integer variant) the integer
    lowering of the quantizer's description, not the fake-quant graph; FP16 variants as the
    FP32 graph made float16 in Relax; everything else the variant's PyTorch model."""
    name = variant.model.name
    if quantized is not None:
        int8_sparse = _int8_sparse(variant)
        lowering = lower_int8(export_program(quantized.float_model, example, name),
                              quantized.description, variant.target, sparse=int8_sparse)
        # the float glue between the integer layers (layer norm, softmax, GELU, attention's
        # batched matmuls, transposes, quantizes) on our FP32 kernels: the same lowering as
        # an FP32 build, our int8 kernels' calls opaque to it; what it leaves is TVM's
        ours = Fp32Kernels(variant.target) if vector_lanes(variant.target) else None
        return TvmModule(lowering.mod, lowering=lowering, chooser=int8_sparse,
                         lsb=_int8_tolerance(quantized, lowering.output_lsb),
                         passes=[*([ours] if ours else []), fast_gelu()],
                         task_trials=glue_trials, fp32=ours,
                         facts=BuildFacts(quant_kind="int8",
                                          int8_layers=lowering.layer_facts()))
    if is_fp16(variant):
        refusal = fp16_refusal(variant.target)
        if refusal:
            raise CompileError(refusal)
        # the FP32 (BN-folded) graph: its layers on our kernels in float16 where the registry
        # has them (passes/fp32.py), the rest made float16 in Relax (passes/fp16.py)
        mod = to_relax(export_program(quantized_float_model(variant, model), example, name),
                       name)
        ours = Fp32Kernels(variant.target, dtype="float16") \
            if vector_lanes(variant.target, "float16") else None
        return TvmModule(mod, passes=[*([ours] if ours else []), *fp16_passes()], fp16=True,
                         fp32=ours, facts=BuildFacts(quant_kind="fp16"))
    mod = to_relax(export_program(model, example, name), name)
    ours = bool(vector_lanes(variant.target)) and not variant.spec.metaschedule
    # a +sparse variant's convs: where our FP32 lowering runs and has its NHWC sparse conv
    # (x86), that conv, chosen per layer inside the lowering; elsewhere (aarch64, or
    # +metaschedule) the sparse kernels of passes/sparse_weights.py, as the Linear layers
    nhwc_sparse = ours and fp32_sparse_conv.target_reason(variant.target) is None
    sparse = _sparse_pass(variant, cfg, ("dense",) if nhwc_sparse else ("dense", "conv2d"))
    if variant.spec.winograd and (variant.target.arch != "x86_64"
                                  or not vector_lanes(variant.target)):
        raise CompileError(f"fp32+winograd: our Winograd kernels are x86 (AVX2/AVX-512) only, "
                           f"not {variant.target.arch}")
    if not ours:
        # TVM's own ops tuned by MetaSchedule: asked for (the record), or no FP32 kernels of
        # ours for this target yet (aarch64); a +sparse variant's sparse layers on ours
        return TvmModule(mod, passes=[sparse] if sparse else [], chooser=sparse)
    # FP32 (also pruned-but-dense models, and the layers a +sparse variant keeps dense): our
    # kernels where the registry has one
    fp32 = Fp32Kernels(variant.target, variant.spec.kernel_options,
                       select=getattr(sparse.select, "nhwc", None) if sparse else None)
    return TvmModule(mod, passes=[sparse, fp32] if sparse else [fp32], fp32=fp32,
                     chooser=sparse)


def _export(runtime: str, variant: Variant, model: torch.nn.Module, example: torch.Tensor,
            out_dir: Path, cfg: RunConfig, row: ResultRow,
            quantized: QuantResult | None = None) -> tuple[Path, list[float | None]]:
    """The deployable artifact for one runtime (the row's artifact part; TVM compiles and
    tunes here: its build part). Also returned: for an integer variant on TVM, per output,
    the integer LSB its verification allows (see _int8_tolerance)."""
    lsb: list[float | None] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cfg.log("export")
    if runtime == "tvm":
        built, result = build_tvm(variant, model, example, out_dir / "model.so", cfg, quantized)
        row.build = built.facts
        lsb = built.lsb
        path = result.path
    elif runtime in INT8_PEERS:  # the peer's own int8 build, calibrated as quant=static is
        path = runtime_module(runtime).export(model, example, out_dir,
                                              default_calibration(variant.model))
        row.build = BuildFacts(quant_kind="int8-peer")
    else:
        path = runtime_module(runtime).export(model, example, out_dir)
    row.artifact = _artifact(path, time.perf_counter() - start)
    return path, lsb


def build_tvm(variant: Variant, model: torch.nn.Module, example: torch.Tensor, out_path: Path,
              cfg: RunConfig, quantized: QuantResult | None = None
              ) -> tuple[TvmModule, CompileResult]:
    """Compile (and tune) a variant's TVM library to out_path and check its code: what `run`
    measures and `edgebench export` ships (`built.facts`: the row's build part)."""
    built = tvm_module(variant, model, example, cfg, quantized)
    result = compile_module(built.mod, variant.target, out_path, cfg.trials,
                            extra_passes=[*cfg.extra_passes, *built.passes],
                            progress=cfg.log, keep_asm=built.keep_asm, budget=cfg.tune_budget,
                            task_trials=built.task_trials)
    built.check(result, variant.target)
    tuning = result.tuning
    built.facts = dataclasses.replace(
        built.facts, tuned_trials=tuning.trials_per_task, tasks=tuning.tasks,
        tasks_tuned_now=tuning.tuned_now if cfg.trials else 0, tuning_s=tuning.seconds,
        compile_s=result.compile_s, kernels_ms=tuning.estimated_ms or None,
        tuning_cut="; ".join(tuning.cut) or None)
    return built, result


def _sparse_pass(variant: Variant, cfg: RunConfig, ops: tuple[str, ...]):
    """The sparse-kernel rewrite of `ops` layers for a `+sparse` variant: per layer by
    measured break-even (`sparse`) or every layer above the threshold (`sparse=all`)."""
    if not variant.spec.sparse:
        return None
    select = (None if variant.spec.sparse == "all"
              else MeasuredChoice(variant.target, cfg.trials, progress=cfg.log))
    return SparsifyWeights(select=select, ops=ops)


def _int8_sparse(variant: Variant) -> Int8Sparse | None:
    """The int8 BSR choice for an integer `+sparse` variant: measured per layer against the
    dense int8 kernel (`sparse`) or every candidate (`sparse=all`)."""
    if not variant.spec.sparse:
        return None
    return Int8Sparse(None if variant.spec.sparse == "all"
                      else Int8MeasuredChoice(variant.target))


def artifact_dir(variant: Variant, runtime: str) -> Path:
    """Where a row's artifact is built (and stays, for inspection or re-measuring)."""
    return (cache_dir() / "artifacts" / variant.target.name
            / variant.model.name.replace("/", "_") / variant.name / runtime)


def _measure_one(variant: Variant, runtime: str, run: ModelRun, model: torch.nn.Module,
                 reference: list[np.ndarray], cfg: RunConfig, row: ResultRow,
                 user_modules: list[str], quantized: QuantResult | None = None,
                 farm: Farm | None = None, done: Callable[[str | None], None] | None = None
                 ) -> bool:
    """Export, run, verify, time one runtime. With `quantized` (TVM on an integer variant)
    the outputs are checked against the integer reference executor instead: within one
    output LSB (bit exact expected) where the integer path is exact. With a `farm` the
    compiled row is handed to it (measured on a free board, finished by `done`): returns
    True then, False when the row was measured here."""
    target = variant.target
    path, lsb = _export(runtime, variant, model, run.xs[0], artifact_dir(variant, runtime), cfg,
                        row, quantized)

    def finish(result: WorkerResult, board: Board | None = None) -> None:
        if board is not None:
            row.where.board, row.where.emulated = board.name, board.emulated
        cfg.log("verify")
        _verify_score(result, row, run, reference, variant, quantized, lsb)

    if farm is not None and done is not None:
        farm.submit(Job(f"{variant.model.name} {variant.name} {runtime}", path, run.xs.numpy(),
                        finish, done))
        return True
    if target.is_local:
        cfg.log(f"measure (outputs, then timing) on cores {' '.join(map(str, target.cores))}")
        finish(run_worker(runtime, path, run.xs.numpy(), target.threads, target.cores,
                          cfg.measure, user_modules, log=cfg.log))
    else:  # a board over RPC: same result shape, so verification and the row are shared
        cfg.log("measure (outputs, then timing) on the board")
        finish(*run_remote(path, run.xs.numpy(), target, cfg.measure, cfg.log))
    return False


def _verify_score(result: WorkerResult, row: ResultRow, run: ModelRun,
                  reference: list[np.ndarray], variant: Variant, quantized: QuantResult | None,
                  lsb: list[float | None]) -> None:
    """Verify a runtime's outputs (VerificationError if they differ), then fill the row's
    timing and scores."""
    if quantized is not None:
        check = verify.compare_lsb(result.outputs, reference, lsb)
    else:
        check = verify.compare(result.outputs, reference,
                               "int8-peer" if row.runtime in INT8_PEERS else variant.spec.dtype)
    row.verify_err = check.max_abs_err
    if not check.ok:
        raise VerificationError(check.message)
    row.timing = Timing.from_stats(result.stats)
    row.scores = _score(run, result.outputs)


def is_fp16(variant: Variant) -> bool:
    return bool(variant.spec.quant) and parse_quant(variant.spec.quant).method == "fp16"


def quantized_float_model(variant: Variant, model: torch.nn.Module) -> torch.nn.Module:
    """The FP32 model an FP16 variant was made from (`FP16Model.net` is its float16 copy)."""
    if not isinstance(model, FP16Model):
        raise CompileError(f"variant '{variant.name}': expected the FP16 PyTorch model, got "
                           f"{type(model).__name__}")
    return copy.deepcopy(model.net).float()


def fp16_refusal(target: Target) -> str | None:
    """Why a TVM FP16 row is not built (None: it is): never an FP32 build reported as FP16.
    Without FP16 arithmetic (x86 without avx512fp16, Arm without +fullfp16) FP16 is storage
    only. (FP16 with +sparse is refused by parse_variant: the sparse kernels are FP32.)"""
    if not target.fp16_arith:
        return (f"target '{target.name}' has no FP16 arithmetic (no {target.fp16_feature}): "
                "FP16 there is storage only, computed in FP32, so no FP16 row is reported "
                "for TVM")
    return None


def lowers_to_int8(variant: Variant, transformed: Transformed, runtime: str) -> bool:
    """TVM runs an integer variant as integer code (static, dynamic, QAT, ternary, binary
    weights); fp16 is compiled as float16 instead (see _export)."""
    q = transformed.quantized
    return runtime == "tvm" and q is not None and q.config.method != "fp16"


def _int8_tolerance(quantized: QuantResult, output_lsb: list[float | None]
                    ) -> list[float | None]:
    """Per output, the tolerance against the integer oracle: one LSB of the output's integer
    scale; None (the int8 relative tolerance) where FP32 ops feed int8 ones, since float
    rounding in TVM and PyTorch may differ by an ulp there and flip a quantization."""
    exact = not any(la.kept_fp32 for la in quantized.description.layers)
    return [s if exact else None for s in output_lsb]


class VerificationError(RuntimeError):
    """A runtime's outputs disagree with the PyTorch reference: the row fails, untimed."""


def _row_config(cfg: RunConfig, rows: progress.Bar, prefix: str) -> RunConfig:
    """The run's config whose log says which row a line is about (the stage: export, tune n/N
    tasks, compile, measure, verify) and shows the stage on the rows bar."""
    def log(message: str) -> None:
        cfg.log(f"{prefix}: {message}")
        rows.update(description=f"{prefix}: {message.split(',')[0]}")

    return dataclasses.replace(cfg, log=log)


def run(cfg: RunConfig | None = None, target_override: Target | None = None, **kwargs):
    """Run every (model, variant, runtime) on the target; return the rows as a DataFrame."""
    from edgebench.report import load_results

    cfg = cfg or RunConfig(**kwargs)
    specs = [with_data(get_model(m, cfg.input_shape, cfg.input_dtype, cfg.input_high)
                       if ":" in m else get_model(m), cfg.data)
             for m in cfg.models]  # --input-shape is for user models
    variant_specs = [parse_variant(v) for v in cfg.variants]
    for r in cfg.runtimes:
        runtime_module(r)  # raises UnknownRuntime naming the known ones
    target = target_override or find_target(cfg.target, cfg.threads)
    target.check_runnable_here()
    cache_dir()  # CacheError (one line naming it) before anything is built
    if target.rpc is not None:  # an unreachable board fails now, not after tuning for it
        from edgebench.execute.rpc import probe_board

        probe_board(target)
    env = host_environment()
    writer = ResultsWriter(cfg.output, env, log=cfg.log)
    # Every variant is checked against every model before the first row is measured.
    bases = {spec.name: spec.build() for spec in specs}
    for spec in specs:
        for vspec in variant_specs:
            vspec.check(bases[spec.name], spec)
    runtimes = list(cfg.runtimes)
    for r in list(runtimes):
        reason = unavailable_reason(r) or (
            None if target.is_local or r == "tvm" else
            f"only the TVM runtime runs on a board (target '{target.name}' is over RPC)")
        if reason:
            cfg.log(f"skipping runtime {r}: {reason}")
            runtimes.remove(r)
    user_modules = [m.split(":")[0] for m in cfg.models if m.split(":")[0].endswith(".py")]
    # the user's data is scored on FP32 now, so a metric that fails stops the run before
    # anything compiles
    model_runs = ({s.name: ModelRun(s, bases[s.name]) for s in specs} if cfg.data.data
                  else {})
    farm = for_target(target, cfg.measure, cfg.log, cfg.board_retries)
    try:
        with progress.bar("rows", len(specs) * len(variant_specs) * len(runtimes)) as rows:
            try:
                for spec in specs:
                    done = writer.finished(spec.data_id) if cfg.resume else set()
                    run_model(spec, variant_specs, runtimes, target, cfg, writer, done, env,
                              user_modules, rows, bases.pop(spec.name), farm,
                              model_runs.pop(spec.name, None))
            except BaseException:
                if farm is not None:
                    farm.close(cancel=True)  # rows on a board finish; queued ones resume later
                raise
            if farm is not None:
                farm.close()  # every handed-out row measured and written
                cfg.log(f"farm: measuring phase {farm.span_s():.1f} s, boards busy "
                        f"{farm.busy_s():.1f} s, on {len({i[1] for i in farm.intervals})} "
                        "board(s)")
    finally:
        write_markdown(writer.path)
    return load_results([writer.path])


def run_model(spec: ModelSpec, variant_specs: list[VariantSpec], runtimes: list[str],
              target: Target, cfg: RunConfig, writer: ResultsWriter, done: set, env: dict,
              user_modules: list[str], rows: progress.Bar | None = None,
              base: torch.nn.Module | None = None, farm: Farm | None = None,
              model_run: ModelRun | None = None) -> None:
    """Every variant x runtime of one model, each row written as measured; with a `farm`
    (a tracker target) rows are compiled here and measured on its boards concurrently."""
    rows = rows or progress.Bar()
    for vspec in variant_specs:
        variant = Variant(spec, vspec, target)
        transformed = reference = int8_reference = None
        failure = None  # the variant's PyTorch model could not be made: every row fails
        for runtime in runtimes:
            key = (spec.name, variant.name, runtime, target.name, str(target.threads))
            if key in done:
                cfg.log(f"{spec.name} {variant.name} {runtime}: already measured, skipped")
                rows.advance()
                continue
            if runtime in INT8_PEERS and vspec.quant:
                cfg.log(f"{spec.name} {variant.name} {runtime}: skipped (an int8 peer quantizes "
                        "the float model itself: its row is on the unquantized variant)")
                rows.advance()
                continue
            row = ResultRow(spec.name, variant.name, runtime, Where(
                target.name, target.threads, cores=" ".join(map(str, target.cores)),
                machine=env["machine"], emulated=target.emulated, data=spec.data_id or None,
                timestamp=datetime.now(UTC).isoformat(timespec="seconds")))
            if model_run is None:
                model_run = ModelRun(spec, base)
                if model_run.eval_warning:
                    cfg.log(f"warning: {spec.name}: {model_run.eval_warning}")
            if transformed is None and failure is None:
                cfg.log(f"{spec.name} {variant.name}: transform")
                try:
                    transformed = vspec.apply(model_run.base, spec)
                    if transformed.training:
                        cfg.log(f"{spec.name} {variant.name}: fine-tuned: {transformed.training}")
                    reference = (model_run.fp32_ref if transformed.model is model_run.base
                                 else reference_outputs(transformed.model, model_run.xs))
                except Exception as e:  # known only now (e.g. channel pruning): failed rows
                    if interrupted():
                        raise KeyboardInterrupt from None
                    failure = f"variant '{variant.name}' failed: {error_line(e)}"
            if failure is not None:
                row.error = failure
                cfg.log(f"{spec.name} {variant.name} {runtime}: FAILED {failure}")
                writer.append(row)
                rows.advance()
                continue
            model = transformed.model
            row.model_facts = transformed.facts(*_count(model))
            quantized = None
            if lowers_to_int8(variant, transformed, runtime):
                quantized = transformed.quantized
                if int8_reference is None:
                    int8_reference = reference_outputs(quantized.reference, model_run.xs)
            row_name = f"{spec.name} {variant.name} {runtime}"

            def record(error: str | None, row: ResultRow = row, what: str = row_name) -> None:
                """Write the row as measured (here, or by a farm's board thread)."""
                if error is None:
                    row.status = "ok"
                    cfg.log(f"{what}: p50 {row.timing.p50_ms:.4f} ms"
                            + (f" on {row.where.board}" if farm is not None else ""))
                else:
                    row.status, row.error = "failed", error
                    cfg.log(f"{what}: FAILED {error}")
                writer.append(row)
                rows.advance()

            try:
                if _measure_one(variant, runtime, model_run, model,
                                int8_reference if quantized else reference,
                                _row_config(cfg, rows, row_name), row, user_modules, quantized,
                                farm, record):
                    continue  # the farm measures and writes it
                error = None
            except Exception as e:  # the row records why; the run goes on
                if interrupted():  # a Ctrl-C that TVM handed back as a RuntimeError
                    raise KeyboardInterrupt from None
                error = error_line(e)
            record(error)
