"""Per-layer profile of a compiled variant: each kernel timed alone, and which kind it is.

The Relax VM in TVM 0.27 has no profiler, so every `call_tir` of the built module's `main` is
timed on its own with TVM's time evaluator (its constants are the model's real weights, the
sparse kernels' BSR arrays included; activations are random of the right shape), and the whole
VM call is timed the same way. The kernels' sum against the whole says how much time goes
outside the kernels (VM dispatch, allocation, views) and checks that the parts add up. On a
board the same happens over RPC with the board's own clock.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from edgebench.targets import Target

if TYPE_CHECKING:
    from edgebench.data import DataOptions

KIND_ATTR = "edgebench.kernel"  # a prim func attr naming its kind ("sparse", "int8", ...)
# Without the attr, the kernel's name says what it is (our passes name their kernels so) ...
NAME_KINDS = ((re.compile(r"(^|_)sparse_"), "sparse"),
              (re.compile(r"^fp(32|16)_glue_"), "glue"),  # passes/fp32.py: our glue ...
              (re.compile(r"^fp32_"), "fp32"),  # ... and our FP32 conv/depthwise/dense
              (re.compile(r"^fp16_"), "fp16"),  # ... and their float16 form (quant=fp16)
              (re.compile(r"(^|_)(int8|qnn|qdense|qconv|quantized)_"), "int8"))
INT8_DTYPES = ("int8", "uint8")  # ... else integer 8-bit inputs make it an int8 kernel
# TVM's time evaluator preprocessing: clflush every argument but the first before each call
COLD_FLUSH = "cache_flush_cpu_non_first_arg"
COVERAGE_BAND = (0.5, 1.5)  # the kernels' sum vs the whole VM call, see Profile.adds_up


def kernel_kind(name: str, attrs, input_dtypes: list[str]) -> str:
    """dense / sparse / int8 (or whatever KIND_ATTR says) for one prim func, from data: the
    attr, the name, then the dtypes of its inputs; everything else is TVM's dense code."""
    if attrs is not None and attrs.get(KIND_ATTR) is not None:
        return str(attrs[KIND_ATTR])
    for pattern, kind in NAME_KINDS:
        if pattern.search(name):
            return kind
    if any(str(d) in INT8_DTYPES for d in input_dtypes):
        return "int8"
    return "dense"


@dataclass
class KernelCall:
    """One `call_tir` of main: the kernel, its argument specs and its output specs."""

    index: int
    name: str
    kind: str
    args: list  # np.ndarray (a constant) or (shape, dtype) (an activation)
    outputs: list[tuple[tuple[int, ...], str]]
    layer: str = ""

    @property
    def out_shape(self) -> str:
        return " ".join("x".join(map(str, s)) for s, _ in self.outputs)


def kernel_calls(mod, layer_names: dict[str, str] | None = None) -> list[KernelCall]:
    """The `call_tir`s of `mod["main"]` in execution order."""
    import tvm
    from tvm import relax

    found = []

    def visit(e) -> None:
        if (isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op)
                and e.op.name == "relax.call_tir"):
            found.append(e)

    relax.analysis.post_order_visit(mod["main"], visit)
    calls = []
    for i, c in enumerate(found):
        gv = c.args[0]
        args = []
        for a in c.args[1].fields:
            if isinstance(a, tvm.ir.expr.Constant):
                args.append(a.value.numpy())
            else:
                args.append((tuple(int(s) for s in a.ty.shape), str(a.ty.dtype)))
        outs = c.ty.fields if hasattr(c.ty, "fields") else [c.ty]
        dtypes = [str(a.dtype) if isinstance(a, np.ndarray) else a[1] for a in args]
        calls.append(KernelCall(
            i, gv.name_hint, kernel_kind(gv.name_hint, mod[gv].attrs, dtypes), args,
            [(tuple(int(s) for s in o.shape), str(o.dtype)) for o in outs],
            (layer_names or {}).get(gv.name_hint, "")))
    return calls


def _tensors(call: KernelCall, dev, rng: np.random.Generator) -> list:
    """Arguments on `dev`: the real constants; floats random; integers zero (they may be
    indices, and zero is always in range)."""
    import tvm

    out = []
    for a in call.args:
        if isinstance(a, np.ndarray):
            out.append(tvm.runtime.tensor(a, dev))
        else:
            shape, dtype = a
            v = (rng.standard_normal(shape).astype(dtype) if "float" in dtype
                 else np.zeros(shape, dtype))
            out.append(tvm.runtime.tensor(v, dev))
    out += [tvm.runtime.tensor(np.zeros(s, d), dev) for s, d in call.outputs]
    return out


@dataclass(frozen=True)
class TimingConfig:
    """Rounds of TVM time evaluator calls: in each round the whole and then every kernel run
    until min_repeat_ms has passed; the median over rounds is kept. Interleaving keeps a burst
    of load from another process out of one side of the sum-vs-whole check only."""

    rounds: int = 9
    min_repeat_ms: int = 10
    # cold: every kernel call starts with its arguments after the first (weights, bias,
    # residual, output) flushed from the caches, the activation its producer just wrote
    # still warm: how a kernel runs inside a whole call whose weights exceed the cache
    # (MobileNetV2's 14 MB, ResNet-18's 46 MB); each round is the median of cold_calls
    cold: bool = False
    cold_calls: int = 15


def time_interleaved(lib, dev, calls: list[KernelCall], whole, timing: TimingConfig,
                     seed: int = 0) -> tuple[list[float], float]:
    """Median ms per call of each kernel alone in `lib` (a library module, local or RPC) and
    of `whole` (a (timer, args) pair for the VM call), timed in interleaved rounds."""
    rng = np.random.default_rng(seed)
    timers = [whole]
    for call in calls:
        timer = (lib.time_evaluator(call.name, dev, number=1, repeat=timing.cold_calls,
                                    f_preproc=COLD_FLUSH) if timing.cold else
                 lib.time_evaluator(call.name, dev, number=1, repeat=1,
                                    min_repeat_ms=timing.min_repeat_ms))
        timers.append((timer, _tensors(call, dev, rng)))
    for timer, args in timers:
        timer(*args)  # warm-up (and the number calibration)
    samples = np.array([[timer(*args).median * 1e3 for timer, args in timers]
                        for _ in range(timing.rounds)])
    med = np.median(samples, axis=0)
    return [float(t) for t in med[1:]], float(med[0])


@dataclass
class Profile:
    """Per-kernel times of one compiled variant and the whole VM call, timed alike."""

    model: str
    variant: str
    target: str
    kernels: list[KernelCall]
    ms: list[float]
    whole_ms: float
    board: str = ""
    emulated: bool = False
    macs: dict[str, int] = field(default_factory=dict)  # per kernel name: MACs per call
    peak_gmacs: float | None = None  # the measured FP32 FMA peak of one core (kernels/peak)
    cold: bool = False  # kernels timed with their weights flushed (TimingConfig.cold)

    @property
    def sum_ms(self) -> float:
        return float(sum(self.ms))

    @property
    def coverage(self) -> float:
        """Sum of the kernels / the whole: below 1 the VM spends time outside kernels; above,
        a kernel is slower alone (cold inputs) than in the model."""
        return self.sum_ms / self.whole_ms

    @property
    def outside_us_per_call(self) -> float:
        """What the whole spends outside the kernels, per kernel call: the VM's dispatch and
        allocation (~1 us per call on this x86 host, so it dominates a model whose kernels
        take a few us, e.g. digits-mlp)."""
        return (self.whole_ms - self.sum_ms) * 1e3 / max(len(self.kernels), 1)

    def adds_up(self, band: tuple[float, float] = COVERAGE_BAND) -> bool:
        return band[0] <= self.coverage <= band[1]

    def frame(self) -> pd.DataFrame:
        total = self.sum_ms or 1.0
        f = pd.DataFrame([{
            "index": k.index, "kernel": k.name, "kind": k.kind, "layer": k.layer,
            "output": k.out_shape, "ms": t, "share": t / total,
        } for k, t in zip(self.kernels, self.ms, strict=True)])
        if self.macs:
            gmacs = [self.macs.get(k.name, 0) / (t * 1e6) if t else 0.0
                     for k, t in zip(self.kernels, self.ms, strict=True)]
            f["gmac_s"] = [g or None for g in gmacs]
            if self.peak_gmacs:
                f["of_peak"] = [g / self.peak_gmacs if g else None for g in gmacs]
        return f

    def by_kind(self) -> pd.DataFrame:
        f = self.frame()
        g = f.groupby("kind").agg(kernels=("kernel", "count"), ms=("ms", "sum"))
        g["share"] = g["ms"] / (self.sum_ms or 1.0)
        return g.sort_values("ms", ascending=False)

    def markdown(self) -> str:
        from edgebench.report.document import md_table

        where = self.target + (f" (board {self.board})" if self.board else "") + (
            ", EMULATED" if self.emulated else "")
        alone = ("alone, each call with its weights, bias and output flushed from the caches "
                 "(`--cold`)," if self.cold else "alone")
        lines = [f"# profile: {self.model} `{self.variant}` on {where}", "",
                 f"Kernels timed {alone} sum to {self.sum_ms:.4g} ms; the whole VM call takes "
                 f"{self.whole_ms:.4g} ms (sum / whole = {self.coverage:.2f}"
                 + ("" if self.adds_up() else
                    f", **outside {COVERAGE_BAND[0]}-{COVERAGE_BAND[1]}: the parts do not "
                    "add up**") + f"); outside the kernels: {self.outside_us_per_call:.2g} us "
                 f"per kernel call ({len(self.kernels)} calls: VM dispatch, allocation).", ""]
        if self.peak_gmacs:
            lines += [f"Measured FP32 FMA peak of one core (kernels/peak.py): "
                      f"{self.peak_gmacs:.1f} GMAC/s; `of peak` = a kernel's MACs per second "
                      "against it.", ""]
        kinds = self.by_kind()
        lines += [*md_table(["kind", "kernels", "ms", "share"], [
            [k, str(int(r["kernels"])), f"{r['ms']:.4g}", f"{r['share']:.0%}"]
            for k, r in kinds.iterrows()]), ""]
        frame = self.frame()
        eff = "of_peak" in frame

        def rate(r) -> list[str]:
            if not eff:
                return []
            return ["" if pd.isna(r["gmac_s"]) else f"{r['gmac_s']:.1f}",
                    "" if pd.isna(r["of_peak"]) else f"{r['of_peak']:.0%}"]

        lines += md_table(["#", "kernel", "kind", "layer", "output", "ms", "share",
                           *(["GMAC/s", "of peak"] if eff else [])], [
            [str(r["index"]), f"`{r['kernel']}`", r["kind"], r["layer"], r["output"],
             f"{r['ms']:.4g}", f"{r['share']:.1%}", *rate(r)] for _, r in frame.iterrows()])
        return "\n".join([*lines, ""])


def by_kind_markdown(profiles: list[Profile]) -> str:
    """Time per kernel kind of several variants side by side: where a speedup came from."""
    from edgebench.report.document import md_table

    tables = [p.by_kind() for p in profiles]
    kinds = sorted({k for t in tables for k in t.index})
    rows = [[kind, *(f"{t['ms'][kind]:.4g} ({int(t['kernels'][kind])})" if kind in t.index
                     else "-" for t in tables)] for kind in kinds]
    rows.append(["outside kernels", *(f"{p.whole_ms - p.sum_ms:.4g}" for p in profiles)])
    rows.append(["whole", *(f"{p.whole_ms:.4g}" for p in profiles)])
    base = profiles[0].whole_ms
    rows.append(["speedup vs first", *(f"{base / p.whole_ms:.2f}x" for p in profiles)])
    return "\n".join([f"# {profiles[0].model} on {profiles[0].target}: ms per kernel kind "
                      "(kernels)", "", *md_table(["kind", *(f"`{p.variant}`" for p in profiles)],
                                                 rows), ""])


@dataclass
class ProfileConfig:
    """What to profile: a model's variant compiled for a target, as `edgebench run` builds it."""

    model: str
    variant: str = "fp32"
    target: str | Path = "x86-native"
    trials: int = 32
    threads: int | None = None
    timing: TimingConfig = field(default_factory=TimingConfig)
    log: Callable[[str], None] = print
    data: DataOptions | None = None  # --data etc.: calibration/fine-tuning data


def _sparse_layer_names(sparse) -> dict[str, str]:
    """sparse_dense_3 / sparse_conv2d_3 -> the pass's label for layer 3."""
    if sparse is None:
        return {}
    names = {}
    for layer in sparse.layers:
        for op in ("sparse_dense", "sparse_conv2d"):
            names[f"{op}_{layer.index}"] = f"{layer.label} s={layer.sparsity:.2f} " \
                                           f"{layer.block[0]}x{layer.block[1]}"
    return names


def build(cfg: ProfileConfig, out_dir: Path):
    """Export, apply the variant, compile (tuning) exactly as `edgebench run` builds its TVM
    row (integer variants lowered to int8 code, FP16 ones to float16): (CompileResult,
    example input, layer names, target)."""
    from edgebench.compile import compile_module
    from edgebench.models import get_model, with_data
    from edgebench.passes import SparsifyWeights
    from edgebench.pipeline import RunConfig, lowers_to_int8, tvm_module
    from edgebench.targets import find_target
    from edgebench.variant import Variant, parse_variant

    spec = with_data(get_model(cfg.model), cfg.data)
    target = find_target(cfg.target, cfg.threads)
    variant = Variant(spec, parse_variant(cfg.variant), target)
    transformed = variant.spec.apply(spec.build(), spec)
    example = spec.example_input()
    quantized = transformed.quantized if lowers_to_int8(variant, transformed, "tvm") else None
    built = tvm_module(variant, transformed.model, example,
                       RunConfig(trials=cfg.trials, log=cfg.log), quantized)
    result = compile_module(built.mod, target, out_dir / "model.so", cfg.trials,
                            extra_passes=built.passes, progress=cfg.log,
                            keep_asm=built.keep_asm, task_trials=built.task_trials)
    built.check(result, target)
    names = _sparse_layer_names(built.chooser if isinstance(built.chooser, SparsifyWeights)
                                else None)
    macs: dict[str, int] = {}
    if built.fp32 is not None:  # our FP32 kernels by the Relax bindings they replaced
        for k in built.fp32.record.kernels:
            names[k.symbol] = ",".join(filter(None, [names.get(k.symbol), k.layer or k.node]))
            if k.macs:
                macs[k.symbol] = k.macs
    if built.lowering is not None:  # our int8 kernels by the torch.export nodes they compute
        for la in built.lowering.layers:
            if la.symbol:  # one kernel serves every layer of the same shape
                names[la.symbol] = ",".join(filter(None, [names.get(la.symbol), la.node]))
    return result, example.numpy(), names, target, spec.name, variant.name, macs


def _profile_local(result, x: np.ndarray, target: Target, calls, timing: TimingConfig):
    import tvm
    from tvm import relax

    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(target.cores) & old or old)
    try:
        dev = tvm.cpu()
        exe = tvm.runtime.load_module(str(result.path))  # the very artifact `run` measures
        vm = relax.VirtualMachine(exe, dev)
        whole = vm.time_evaluator("main", dev, number=1, repeat=1,
                                  min_repeat_ms=timing.min_repeat_ms)
        return time_interleaved(exe.imports[0], dev, calls,
                                (whole, [tvm.runtime.tensor(x, dev)]), timing)
    finally:
        os.sched_setaffinity(0, old)


def _profile_remote(result, x: np.ndarray, target: Target, calls, timing: TimingConfig, log):
    """On the board: the artifact in the VM for the whole; its kernels exported alone (a
    remote module hides its imports) for the parts, both on the board's clock."""
    import gc

    import tvm
    from tvm.runtime.vm import VirtualMachine
    from tvm.support import cc

    from edgebench.execute.rpc import check_artifact_arch, connect_board

    kernels = result.path.with_name("kernels.so")
    result.executable.mod.imports[0].export_library(
        str(kernels), fcompile=cc.cross_compiler(target.cross_compiler or "g++"))
    check_artifact_arch(result.path, target.arch)
    board = connect_board(target)
    try:
        sess = board.session
        for f in (result.path, kernels):
            sess.upload(str(f))
        log(f"uploaded {result.path.name} and {kernels.name} to {board.name}")
        dev = sess.cpu()
        vm = VirtualMachine(sess.load_module(result.path.name), dev)
        vm.set_input("main", tvm.runtime.tensor(x, dev))
        whole = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=1,
                                  min_repeat_ms=timing.min_repeat_ms)
        times, whole_ms = time_interleaved(sess.load_module(kernels.name), dev, calls,
                                           (whole, ["main"]), timing)
        return times, whole_ms, board
    finally:
        board.session = None
        gc.collect()  # frees the board for the next session


def _target_threads(name: str | Path) -> int:
    from edgebench.targets import find_target

    return find_target(name).threads


def profile(cfg: ProfileConfig, out_dir: Path | None = None) -> Profile:
    """Compile the variant and time each of its kernels and the whole, locally or on the
    target's board."""
    from edgebench.execute.local import thread_env
    from edgebench.paths import cache_dir

    # TVM sizes its thread pool from TVM_NUM_THREADS when a parallel kernel first runs in this
    # process, and ignores the affinity mask: two threads fighting over one pinned core made
    # a 1 us max_pool2d take 14 us here. Set it before anything runs.
    os.environ.update(thread_env(cfg.threads or _target_threads(cfg.target)))
    out_dir = out_dir or (cache_dir() / "profile" / Path(str(cfg.target)).stem / cfg.model
                          / re.sub(r"[^\w.=:+-]", "_", cfg.variant))
    result, x, names, target, model, variant, macs = build(cfg, out_dir)
    calls = kernel_calls(result.module, names)
    cfg.log(f"timing {len(calls)} kernels and the whole on "
            f"{'the board' if target.rpc else 'cores ' + str(target.cores)}")
    board, emulated = "", target.emulated
    peak = None
    if target.rpc is None:
        times, whole = _profile_local(result, x, target, calls, cfg.timing)
        if macs:
            peak = _local_peak(target)
    else:
        times, whole, b = _profile_remote(result, x, target, calls, cfg.timing, cfg.log)
        board, emulated = b.name, b.emulated
    return Profile(model, variant, target.name, calls, times, whole, board, emulated, macs,
                   peak, cfg.timing.cold)


def _local_peak(target: Target) -> float:
    """The FP32 FMA peak of one of the target's cores, measured pinned like the kernels."""
    from edgebench.kernels.layer import vector_lanes
    from edgebench.kernels.peak import measure_peak

    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(target.cores) & old or old)
    try:
        return measure_peak(target.tvm_target(), vector_lanes(target) or 16)
    finally:
        os.sched_setaffinity(0, old)
