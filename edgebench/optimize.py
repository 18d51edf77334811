"""`edgebench optimize`: the fastest (or smallest) variant within an accuracy budget, on the target.

Cheap first. Every candidate of the search space (variant strings in the usual grammar) is made
in PyTorch and scored on the model's data (integer variants through the integer reference, which
TVM's build matches bit for bit); those losing more than `max_drop` are rejected without
compiling. The survivors are compiled, verified and timed on the target through the pipeline
(every measured variant is a normal results row; resume works) by successive halving: a short
timing of each (rung 0, `<output>-screen.csv`), then the full timing of the best third (rung 1,
the output CSV). The wall-clock budget bounds both phases: a compile is started only if the
time left covers the running estimate of one. The chosen variant is the best ok TVM row whose
own outputs stay within the drop (a failed or collapsed row never is); every other candidate
says why it lost.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgebench.errors import UsageError, error_line

Log = Callable[[str], None]
OBJECTIVES = ("latency", "size", "both")
# A search must afford one compile + short timing; first estimates (seconds) of one variant
# through the pipeline, replaced by the running mean of what was observed.
VARIANT_S = {"local": 20.0, "board": 60.0}
SPARSE_FACTOR = 5.0  # a +sparse build measures each layer's kernels: ~5x a plain one
TRAIN_FACTOR = 20.0  # first guess of a training candidate: 20 untrained ones (then measured)
ETA = 3  # successive halving: rung 1 fully times the best 1/ETA of rung 0 (at least 2)


@dataclass(frozen=True)
class Candidate:
    """One point of the search space: a variant string, its family (what a rejection is
    reported under) and the simpler variant it has to beat to be worth its complexity."""

    variant: str
    family: str
    simpler: str | None = "fp32"


def _family(variant: str) -> str:
    from edgebench.variant import parse_variant

    spec = parse_variant(variant)
    parts = []
    if spec.prune:
        method = spec.prune.split(":")[0]
        parts.append(f"prune={method}" + ("+ft" if ":ft" in spec.prune else ""))
    if spec.quant:
        parts.append(f"quant={spec.quant.split(':')[0]}")
    if spec.sparse:
        parts.append("sparse")
    return "+".join(parts) or "fp32"


def _simpler(variant: str) -> str | None:
    """What the variant adds a step to: X+sparse -> X, prune+quant -> the quant alone,
    anything else -> fp32 (fp32 itself: none)."""
    from edgebench.variant import VariantSpec, parse_variant

    spec = parse_variant(variant)
    if spec.sparse:
        return replace(spec, sparse=None).name
    if spec.prune and spec.quant:
        return VariantSpec(quant=spec.quant).name
    return None if spec.name == "fp32" else "fp32"


def candidate(variant: str) -> Candidate:
    from edgebench.variant import parse_variant

    name = parse_variant(variant).name
    return Candidate(name, _family(name), _simpler(name))


def default_space(ft: int = 10) -> list[Candidate]:
    """Pruning (unstructured, block, N:M, channel; 50-95%, one-shot and fine-tuned), every
    quantization (static with each observer, dynamic, QAT, FP16, ternary, binary), our sparse
    kernels, and the combinations that make sense (pruned zeros survive int8 only)."""
    f = f":ft{ft}"
    variants = [
        "fp32",
        "quant=static", "quant=static:percentile", "quant=static:entropy", "quant=dynamic",
        "quant=fp16", "quant=ternary", "quant=binary",
        "prune=unstructured:0.5", "prune=nm:2:4", "prune=channel:0.5",
        f"prune=unstructured:0.5{f}", f"prune=unstructured:0.7{f}",
        f"prune=unstructured:0.9{f}", f"prune=unstructured:0.95{f}",
        f"prune=block:4x1:0.9{f}", f"prune=nm:2:4{f}",
        f"prune=channel:0.5{f}", f"prune=channel:0.75{f}",
        f"prune=unstructured:0.9{f}+sparse", f"prune=unstructured:0.95{f}+sparse",
        f"prune=block:4x1:0.9{f}+sparse",
        "quant=qat",
        f"prune=channel:0.5{f}+quant=static", f"prune=channel:0.75{f}+quant=static",
        f"prune=nm:2:4{f}+quant=static",
        f"prune=unstructured:0.9{f}+quant=static+sparse",
        f"prune=block:4x1:0.9{f}+quant=static+sparse",
    ]
    return [candidate(v) for v in variants]


@dataclass
class OptimizeConfig:
    """What `edgebench optimize` needs; the CLI and the Python API both build one."""

    model: str
    target: str | Path = "x86-native"
    max_drop: float = 1.0
    budget_s: float = 1800.0
    objective: str = "latency"
    output: str | Path = "results/optimize.csv"
    export: str | Path | None = None
    space: Sequence[Candidate] | None = None  # None: default_space()
    trials: int = 0  # our FP32 and int8 kernels need no tuning; >0 tunes glue and +sparse
    threads: int | None = None
    data: object | None = None  # DataOptions (--data, --metric, ...)
    peers: bool = False  # also measure the peers (fp32, quant=static) after the search
    log: Log = print


@dataclass
class Outcome:
    """One candidate's fate: its PyTorch score, the rung it reached, its measured row, why it
    lost (empty for the chosen one)."""

    cand: Candidate
    drop_pt: float | None = None  # PyTorch (phase 1)
    metric: float | None = None
    rung: int = -1  # -1 not compiled, 0 short timing, 1 full timing
    row: dict | None = None  # the last measured results row (as read back)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.row is not None and self.row.get("status") == "ok"

    def value(self, key: str) -> float:
        v = (self.row or {}).get(key)
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan


@dataclass
class Result:
    chosen: Outcome | None
    outcomes: list[Outcome]
    front: list[Outcome]
    fp32: Outcome | None
    elapsed_s: float
    budget_s: float
    table: str = ""
    plot: Path | None = None
    bundle: object | None = None
    files: list[Path] = field(default_factory=list)


class NoVariantError(RuntimeError):
    """No candidate is within the drop (the CLI prints it and exits 1)."""


def parse_budget(text: str) -> float:
    """`30m`, `90s`, `1h`, `45` (seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise UsageError(f"--budget {text!r}: give a duration like 30m, 90s or 1h") from None
    if not value > 0:
        raise UsageError(f"--budget {text!r}: must be positive")
    return value


def check(cfg: OptimizeConfig) -> float:
    """Every input checked before anything is built (UsageError and friends: one line, exit 2).
    Returns the first estimate of one variant's compile + timing."""
    from edgebench.models import check_model_ref
    from edgebench.targets import find_target
    from edgebench.variant import parse_variant

    if not cfg.max_drop >= 0:
        raise UsageError(f"--max-drop {cfg.max_drop:g}: must be >= 0 (points of the metric a "
                         "variant may lose)")
    if cfg.objective not in OBJECTIVES:
        raise UsageError(f"--objective {cfg.objective!r}: one of {', '.join(OBJECTIVES)}")
    check_model_ref(cfg.model)
    target = find_target(cfg.target, cfg.threads)
    for c in cfg.space or ():
        parse_variant(c.variant)
    estimate = VARIANT_S["local" if target.is_local else "board"]
    if cfg.budget_s < 2 * estimate:
        raise UsageError(f"--budget {cfg.budget_s:g} s is too small to compile anything on "
                         f"'{target.name}': the accuracy pass and one compile + timing take "
                         f"about {2 * estimate:g} s; give at least --budget {2 * estimate:g}s")
    return estimate


def _trains(variant: str) -> bool:
    """Whether making the variant trains (fine-tuning, gradual pruning, QAT-like quant)."""
    from edgebench.quantize import parse_quant
    from edgebench.variant import parse_variant

    spec = parse_variant(variant)
    return bool(spec.prune and (":ft" in spec.prune or spec.prune.startswith("gradual"))) or \
        bool(spec.quant and parse_quant(spec.quant).trained)


def score_worker(fd: int) -> None:
    """The phase-1 worker process (`_Scorer` starts it): reads (model, data, target, threads)
    from the connection on `fd`, builds the model's FP32 state once, then scores each variant it
    is sent (None ends it). Its own process so the search can kill a candidate that trains past
    the deadline."""
    from multiprocessing.connection import Connection

    from edgebench import pipeline
    from edgebench.models import get_model, with_data
    from edgebench.targets import find_target
    from edgebench.variant import Variant, VariantError, parse_variant

    conn = Connection(fd)
    model, data, target, threads = conn.recv()
    spec = with_data(get_model(model), data)
    tgt = find_target(target, threads)
    run = pipeline.ModelRun(spec)
    conn.send(("ready", run.metric.name))
    made: dict[str, object] = {}  # the variant without +sparse -> its Transformed
    while (variant := conn.recv()) is not None:
        vspec = parse_variant(variant)
        base_name = replace(vspec, sparse=None).name
        try:
            vspec.check(run.base, spec)
            if base_name not in made:
                made[base_name] = vspec.apply(run.base, spec)
            value, drop = run.score_pytorch(Variant(spec, vspec, tgt), made[base_name])
        except Exception as e:  # VariantError, or e.g. channel pruning removing a whole layer
            text = str(e).split(": ", 1)[-1] if isinstance(e, VariantError) else error_line(e)
            conn.send(("not applicable", text))
            continue
        conn.send(("scored", value, drop))


class _Scorer:
    """The phase-1 worker seen from the search: `score(variant, deadline)` returns its reply,
    or None after killing the worker (its process group) when the deadline passes first; the
    next call starts a fresh one. The worker dies with the search (PR_SET_PDEATHSIG)."""

    def __init__(self, cfg: OptimizeConfig) -> None:
        self.cfg, self.proc, self.conn, self.metric = cfg, None, None, ""

    def start(self, deadline: float) -> tuple | None:
        """Start the worker; its ("ready", metric name), a ("crashed", why), or None if the
        deadline passed first."""
        from multiprocessing import Pipe

        from edgebench.execute.local import die_with_parent

        self.conn, child = Pipe()
        parent, root = os.getpid(), str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from edgebench.optimize import score_worker; "
             "score_worker(int(sys.argv[1]))", str(child.fileno())],
            pass_fds=[child.fileno()], env=env, start_new_session=True,
            preexec_fn=lambda: die_with_parent(parent))
        child.close()
        self.conn.send((self.cfg.model, self.cfg.data, self.cfg.target, self.cfg.threads))
        reply = self._wait(deadline)
        if reply is not None and reply[0] == "ready":
            self.metric = reply[1]
        return reply

    def _wait(self, deadline: float) -> tuple | None:
        if self.conn.poll(max(deadline - time.monotonic(), 0.0)):
            try:
                return self.conn.recv()
            except EOFError:  # the worker died (e.g. out of memory, or the model failed)
                code = self.proc.wait()
                self.close()
                return ("crashed", f"the scoring worker died (exit {code})")
        self.close()
        return None

    def score(self, variant: str, deadline: float) -> tuple | None:
        """("scored", metric, drop), ("not applicable", why), ("crashed", why), or None: the
        deadline passed first and the worker was killed."""
        if self.proc is None:
            reply = self.start(deadline)
            if reply is None or reply[0] != "ready":
                return reply
        self.conn.send(variant)
        return self._wait(deadline)

    def close(self, kill: bool = True) -> None:
        """End the worker: ask it to stop, or kill its process group (a candidate still
        training is cut)."""
        if self.proc is not None:
            if not kill:
                with contextlib.suppress(OSError):
                    self.conn.send(None)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(2)
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def score_candidates(cfg: OptimizeConfig, spec, outcomes: list[Outcome], deadline: float,
                     log: Log) -> None:
    """Phase 1: each candidate's metric from its PyTorch model (integer variants: the integer
    reference TVM matches), no compiling, in a worker process killed at `deadline`: the
    candidate it was making is cut for time (said in its reason), the rest are not scored.
    Sets drop_pt or a rejection reason."""
    from edgebench import pipeline
    from edgebench.targets import find_target
    from edgebench.variant import Variant, parse_variant

    target = find_target(cfg.target, cfg.threads)
    scorer = _Scorer(cfg)
    took: dict[bool, list[float]] = {False: [], True: []}  # seconds per candidate, by training
    t0 = time.monotonic()
    ready = scorer.start(deadline)  # imports, the FP32 model and its reference: not a candidate's
    log("optimize: accuracy worker " + (f"ready in {time.monotonic() - t0:.0f} s" if ready
                                         and ready[0] == "ready" else f"failed: {ready}"))
    try:
        order = _family_rank(outcomes)  # cheap ones first, one of each family before seconds
        made: set[str] = set()  # variants (without +sparse) the worker has made: cached there
        for o in sorted(outcomes, key=lambda o: (_trains(o.cand.variant), order[id(o)])):
            vspec = parse_variant(o.cand.variant)
            base = replace(vspec, sparse=None).name
            trains, t0 = _trains(o.cand.variant) and base not in made, time.monotonic()
            if pipeline.is_fp16(Variant(spec, vspec, target)):
                refusal = pipeline.fp16_refusal(target)
                if refusal:
                    o.reason = f"not applicable: {refusal.split(':')[0]}"
                    log(f"optimize: {o.cand.variant}: REJECTED {o.reason}")
                    continue
            seen = took[trains] or ([TRAIN_FACTOR * x for x in took[False]] if trains else [])
            if t0 >= deadline or t0 + (sum(seen) / len(seen) if seen else 0.0) > deadline:
                o.reason = ("not scored: the accuracy phase's share of the budget was spent"
                            if t0 >= deadline else "not scored: its estimated "
                            f"{sum(seen) / len(seen):.0f} s exceed the accuracy phase's "
                            "share of the budget")
                log(f"optimize: {o.cand.variant}: {o.reason}")
                continue
            reply = scorer.score(o.cand.variant, deadline)
            if reply is None:
                o.reason = (f"cut for time: killed at the accuracy phase's deadline after "
                            f"{time.monotonic() - t0:.0f} s of "
                            + ("training" if trains else "scoring"))
                log(f"optimize: {o.cand.variant}: {o.reason}")
                continue
            if reply[0] != "scored":
                o.reason = (f"not applicable: {reply[1]}" if reply[0] == "not applicable"
                            else f"failed in PyTorch: {reply[1]}")
                log(f"optimize: {o.cand.variant}: REJECTED {o.reason}")
                continue
            o.metric, o.drop_pt = reply[1], reply[2]
            made.add(base)
            took[trains].append(time.monotonic() - t0)
            if o.drop_pt > cfg.max_drop + 1e-9:
                o.reason = f"accuracy -{o.drop_pt:.2f} pt (PyTorch; allowed {cfg.max_drop:g})"
            log(f"optimize: {o.cand.variant}: {scorer.metric} {o.metric:.4g} "
                f"(drop {o.drop_pt:+.2f}, {time.monotonic() - t0:.1f} s)"
                + (f" REJECTED {o.reason}" if o.reason else ""))
    finally:
        scorer.close(kill=False)
    cut = [o.cand.variant for o in outcomes if o.reason.startswith(("cut for time", "not scored"))]
    if cut:
        log(f"optimize: cut for time in the accuracy phase: {', '.join(cut)}")


def _family_rank(outcomes: list[Outcome]) -> dict[int, int]:
    """Each outcome's rank within its family (0 for the first member), so a short budget
    sees one member of every family before a second one of any."""
    seen: dict[str, int] = {}
    rank = {}
    for o in outcomes:
        rank[id(o)] = seen.get(o.cand.family, 0)
        seen[o.cand.family] = rank[id(o)] + 1
    return rank


def _run_args(cfg: OptimizeConfig, variant: str, output: Path, quick: bool,
              tune_s: float) -> list[str]:
    """`edgebench run` for one variant, TVM only: the pipeline's normal row (resumed if the CSV
    already has it)."""
    args = ["run", cfg.model, "--target", str(cfg.target), "--variants", variant,
            "--runtimes", "tvm", "--trials", str(cfg.trials), "-o", str(output),
            "--tune-budget", f"{max(tune_s, 1.0):.0f}",
            "--task-budget", f"{max(min(tune_s, 300.0), 1.0):.0f}"]
    if quick:
        args.append("--quick")
    if cfg.threads is not None:
        args += ["--threads", str(cfg.threads)]
    data = cfg.data
    for flag, attr in (("--data", "data"), ("--metric", "metric"), ("--loss", "loss"),
                       ("--calib-samples", "calib_samples"), ("--eval-samples", "eval_samples")):
        value = getattr(data, attr, None) if data is not None else None
        if value is not None:
            args += [flag, str(value)]
    return args


def edgebench_process(cfg: OptimizeConfig, args: list[str], log: Log,
                      timeout: float | None = None) -> tuple[int | None, list[str]]:
    """`edgebench ARGS` in its own process group (the search can kill it at the deadline:
    returns None then; rows written so far stay), its lines forwarded to the log. The search
    may be pinned off the timing core (taskset -c 0): the child may also use the target's
    cores, where its measuring worker pins itself."""
    from edgebench.targets import find_target

    target = find_target(cfg.target, cfg.threads)
    cores = set(os.sched_getaffinity(0)) | set(target.cores if target.is_local else ())
    proc = subprocess.Popen([sys.executable, "-m", "edgebench.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, cores))
    tail: list[str] = []

    def forward() -> None:
        for line in proc.stdout:
            tail[:] = [*tail[-4:], line.rstrip()]
            log(f"  {line.rstrip()}")

    reader = threading.Thread(target=forward, daemon=True)
    reader.start()
    code: int | None
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, nothing else
        proc.wait()
        code = None
    reader.join(timeout=5)
    return code, tail


def _measure(cfg: OptimizeConfig, outcome: Outcome, output: Path, quick: bool, deadline: float,
             rung: int, log: Log) -> None:
    """One variant through the pipeline (`edgebench run`, TVM only), stopped at the deadline."""
    from edgebench.report.results import read_rows
    from edgebench.targets import find_target

    target = find_target(cfg.target, cfg.threads)
    left = max(deadline - time.monotonic(), 0.0)
    code, tail = edgebench_process(
        cfg, _run_args(cfg, outcome.cand.variant, output, quick, left / 3), log, left)
    if code is None:
        outcome.reason = "not measured: the budget ran out while it was being built or timed"
    key = (cfg.model, outcome.cand.variant, "tvm", target.name, str(target.threads))
    rows = [r for r in (read_rows(output) if output.is_file() else []) if r.key == key]
    if rows:  # written before a kill at the deadline (e.g. while writing its summary): kept
        outcome.row, outcome.rung, outcome.reason = rows[-1], rung, ""
    elif not outcome.reason:
        outcome.reason = f"not measured: edgebench run exited {code}: " + (
            tail[-1] if tail else "")


def _within(o: Outcome, max_drop: float) -> bool:
    """The TVM row's own outputs stay within the drop (a collapsed build is never chosen)."""
    drop = o.value("metric_drop")
    return o.ok and not math.isnan(drop) and drop <= max_drop + 1e-9


def _cost(o: Outcome, objective: str, fp32: Outcome | None) -> float:
    p50, size = o.value("p50_ms"), o.value("artifact_bytes")
    if objective == "latency":
        return p50
    if objective == "size":
        return size
    ref = fp32 if fp32 is not None and fp32.ok else o
    return (p50 / ref.value("p50_ms")) * (size / ref.value("artifact_bytes"))


def pareto(outcomes: list[Outcome]) -> list[Outcome]:
    """Measured ok rows no other beats on all of latency, size and metric (drop)."""
    pts = [(o, o.value("p50_ms"), o.value("artifact_bytes"), o.value("metric_drop"))
           for o in outcomes if o.ok]
    front = []
    for o, p, s, d in pts:
        if any(p2 <= p and s2 <= s and d2 <= d and (p2, s2, d2) != (p, s, d)
               for _, p2, s2, d2 in pts):
            continue
        front.append(o)
    return sorted(front, key=lambda o: o.value("p50_ms"))


def optimize(cfg: OptimizeConfig | None = None, **kwargs) -> Result:
    """Search, measure, choose (and export); see the module docstring. NoVariantError if no
    candidate is within the drop."""
    from edgebench.models import get_model, with_data

    cfg = cfg or OptimizeConfig(**kwargs)
    start = time.monotonic()
    estimate = check(cfg)
    log = cfg.log
    deadline = start + cfg.budget_s
    output = Path(cfg.output)
    screen = output.with_name(f"{output.stem}-screen{output.suffix or '.csv'}")
    spec = with_data(get_model(cfg.model), cfg.data)
    space = list(cfg.space) if cfg.space is not None else default_space()
    outcomes = [Outcome(c) for c in space]
    log(f"optimize: {spec.name} on '{cfg.target}', {len(space)} candidates, max drop "
        f"{cfg.max_drop:g}, budget {cfg.budget_s:.0f} s, objective {cfg.objective}")

    # phase 1: accuracy in PyTorch, at most half the budget
    score_candidates(cfg, spec, outcomes, start + cfg.budget_s / 2, log)
    survivors = [o for o in outcomes if not o.reason]
    log(f"optimize: {len(survivors)} of {len(outcomes)} within {cfg.max_drop:g} pt in PyTorch "
        f"({time.monotonic() - start:.0f} s)")

    # phase 2, rung 0: short timing of every survivor, while the budget covers one more
    # (the cheapest kinds first, so a short budget measures many)
    # one member of each family before a second one of any, so a short budget sees the
    # families rather than three observers of one
    order = _family_rank(survivors)
    survivors.sort(key=lambda o: (o.cand.variant != "fp32", "sparse" in o.cand.variant,
                                  order[id(o)]))

    spent: dict[bool, list[float]] = {False: [], True: []}  # seconds per variant, by +sparse

    def guess(o: Outcome) -> float:
        """Running mean of this kind's variants (the sparse kernels' per-layer choice is
        measured while building: several times a plain build)."""
        sparse = "sparse" in o.cand.variant
        seen = spent[sparse] or ([SPARSE_FACTOR * x for x in spent[False]] if sparse else [])
        return sum(seen) / len(seen) if seen else estimate * (SPARSE_FACTOR if sparse else 1)

    def affordable(o: Outcome, reserve: float = 0.0) -> bool:
        return time.monotonic() + guess(o) + reserve <= deadline

    def measure(o: Outcome, out: Path, quick: bool, rung: int) -> None:
        t0 = time.monotonic()
        before = (o.row, o.rung)
        _measure(cfg, o, out, quick, deadline, rung, log)
        spent["sparse" in o.cand.variant].append(time.monotonic() - t0)
        if o.reason and rung > 0 and before[0] is not None:  # cut short: keep the short timing
            o.row, o.rung, o.reason = *before, ""
        if o.reason:
            return
        if o.row is not None and o.row.get("status") != "ok":
            o.reason = f"failed on the target: {o.row.get('error')}"
        elif o.ok and not _within(o, cfg.max_drop):
            o.reason = (f"accuracy -{o.value('metric_drop'):.2f} pt on the target "
                        f"(its own outputs; allowed {cfg.max_drop:g})")

    for o in survivors:
        # once two are screened, rung 0 leaves the full timing of two of the plain kind
        # (rung 1) its time; before that a comparison matters more than a full timing
        screened = sum(x.rung == 0 and x.ok for x in survivors)
        reserve = 2 * guess(Outcome(candidate("fp32"))) if screened >= 2 else 0.0
        if not affordable(o, reserve=reserve):
            o.reason = "not measured: budget spent"
            continue
        log(f"optimize: rung 0 (short timing): {o.cand.variant}")
        measure(o, screen, True, 0)
    rung0 = [o for o in survivors if o.rung == 0 and not o.reason]
    fp32 = next((o for o in outcomes if o.cand.variant == "fp32"), None)
    rung0.sort(key=lambda o: _cost(o, cfg.objective, fp32))
    keep = rung0[:max(2, math.ceil(len(rung0) / ETA))]
    if fp32 is not None and fp32 in rung0 and fp32 not in keep:
        keep.append(fp32)  # the full-timed baseline for the speedup
    for o in rung0:
        if o not in keep:
            o.reason = (f"screened out: {_describe(o, cfg.objective)} in the short timing, "
                        f"not in the best {len(keep)}")
    # rung 1: full timing of the best
    for o in keep:
        if not affordable(o):
            log(f"optimize: budget: {o.cand.variant} keeps its short timing")
            continue
        log(f"optimize: rung 1 (full timing): {o.cand.variant}")
        measure(o, output, False, 1)
    top = max((o.rung for o in keep if not o.reason), default=0)
    pool = [o for o in keep if not o.reason and o.rung == top]
    chosen = min(pool, key=lambda o: _cost(o, cfg.objective, fp32)) if pool else None
    _reasons(outcomes, chosen, cfg.objective, fp32)
    front = pareto([o for o in outcomes if o.rung == top and o.ok])
    result = Result(chosen, outcomes, front, fp32, time.monotonic() - start, cfg.budget_s)
    _write(cfg, result, output, spec.name)
    if chosen is None and not any(o.ok for o in outcomes) and any(
            o.reason.startswith("not measured") for o in outcomes):
        raise NoVariantError(f"the budget ({cfg.budget_s:.0f} s) ran out before any variant "
                             f"of {spec.name} was measured; give a larger --budget")
    if chosen is None:
        scored = [o for o in outcomes if o.drop_pt is not None]
        best = min(scored, key=lambda o: o.drop_pt, default=None)
        raise NoVariantError(
            f"no variant of {spec.name} within --max-drop {cfg.max_drop:g}"
            + (f": the best found is {best.cand.variant} at {best.drop_pt:.2f} pt"
               if best else "") + f" (table: {result.files[0]})")
    log(f"optimize: chosen {chosen.cand.variant}: {_describe(chosen, 'both')}, drop "
        f"{chosen.value('metric_drop'):.2f} pt ({result.elapsed_s:.0f} s of "
        f"{cfg.budget_s:.0f} s)")
    if cfg.peers:
        _peers(cfg, output, log)
        _write(cfg, result, output, spec.name)
    if cfg.export:
        from edgebench.bundle import ExportError

        args = ["export", cfg.model, "--variant", chosen.cand.variant, "--target",
                str(cfg.target), "-o", str(cfg.export), "--trials", str(cfg.trials),
                "--from-results", str(output if chosen.rung == 1 else screen)]
        args += ["--threads", str(cfg.threads)] if cfg.threads is not None else []
        code, tail = edgebench_process(cfg, args, log)
        if code != 0:
            raise ExportError(f"--export {cfg.export}: edgebench export failed: "
                              + (tail[-1] if tail else f"exit {code}"))
        result.bundle = Path(cfg.export)
    return result


def _describe(o: Outcome, objective: str) -> str:
    p50, size = o.value("p50_ms"), o.value("artifact_bytes")
    if objective == "latency":
        return f"p50 {p50:.4g} ms"
    if objective == "size":
        return f"{size / 1024:.1f} KiB"
    return f"p50 {p50:.4g} ms, {size / 1024:.1f} KiB"


def _reasons(outcomes: list[Outcome], chosen: Outcome | None, objective: str,
             fp32: Outcome | None) -> None:
    """Why each measured candidate that was not chosen lost: slower (or larger) than the
    simpler variant it extends, else than the chosen one."""
    by_name = {o.cand.variant: o for o in outcomes}
    for o in outcomes:
        if o is chosen or o.reason or not o.ok:
            continue
        simpler = by_name.get(o.cand.simpler or "")
        worse = "slower" if objective == "latency" else "larger" if objective == "size" \
            else "worse (latency x size)"
        if simpler is not None and simpler.ok and simpler.rung == o.rung and \
                _cost(simpler, objective, fp32) <= _cost(o, objective, fp32):
            o.reason = (f"{worse} than the simpler {simpler.cand.variant} "
                        f"({_describe(o, objective)} vs {_describe(simpler, objective)})")
        elif chosen is not None:
            o.reason = (f"{worse} than the chosen {chosen.cand.variant} "
                        f"({_describe(o, objective)} vs {_describe(chosen, objective)})")


def _peers(cfg: OptimizeConfig, output: Path, log: Log) -> None:
    """The peers (PyTorch, ONNX Runtime, ExecuTorch) on FP32 and static int8 (their fake-quant
    graph), and the peers' own int8 builds (ORT QDQ, ExecuTorch XNNPACK) of the FP32 model, same
    data and target, full timing, into the same CSV (outside the search's budget)."""
    from edgebench.runtimes import PEERS
    from edgebench.targets import find_target

    if not find_target(cfg.target, cfg.threads).is_local:
        log("optimize: peers skipped: only the TVM runtime runs on a board")
        return
    log("optimize: peers (outside the budget): fp32 and quant=static")
    args = _run_args(cfg, "fp32", output, False, 60.0)
    args[args.index("--variants") + 1:args.index("--runtimes") + 2] = [
        "fp32", "quant=static", "--runtimes", *PEERS]
    edgebench_process(cfg, args, log)


def _write(cfg: OptimizeConfig, result: Result, output: Path, model: str) -> None:
    """The table (markdown, beside the CSV) and the front plot."""
    stem = output.with_suffix("")
    md, png = Path(f"{stem}-optimize.md"), Path(f"{stem}-front.png")
    result.table = markdown(cfg, result, model)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(result.table)
    result.plot = plot(result, png, model, output)
    result.files = [md] + ([png] if result.plot else [])


def markdown(cfg: OptimizeConfig, result: Result, model: str) -> str:
    chosen = result.chosen
    lines = [f"# edgebench optimize: {model} on {cfg.target}", "",
             f"max drop {cfg.max_drop:g} pt, objective {cfg.objective}, budget "
             f"{result.budget_s:.0f} s, search took {result.elapsed_s:.0f} s; "
             f"{len(result.outcomes)} candidates.", ""]
    if chosen is not None:
        lines += [f"**Chosen: `{chosen.cand.variant}`**: {_describe(chosen, 'both')}, "
                  f"{chosen.row.get('metric')} {chosen.value('metric_value'):.4g} (drop "
                  f"{chosen.value('metric_drop'):.2f} pt)"
                  + (f", {result.fp32.value('p50_ms') / chosen.value('p50_ms'):.2f}x FP32's "
                     "p50" if result.fp32 is not None and result.fp32.ok
                     and result.fp32.rung == chosen.rung else "")
                  + ("" if chosen.rung == 1 else " (short timing only: the budget ran out)"),
                  ""]
    else:
        lines += ["**No variant within the drop.**", ""]
    cut = [o for o in result.outcomes
           if o.reason.startswith(("cut for time", "not scored", "not measured"))]
    if cut:
        lines += [f"Cut for time ({len(cut)} of {len(result.outcomes)}): " + "; ".join(
            f"`{o.cand.variant}` ({o.reason.split(':')[0]})" for o in cut), ""]
    lines += _beside_peers(Path(cfg.output), model, chosen)
    lines += ["## Pareto front (latency, size, metric)", "",
              "| variant | p50 ms | size KiB | metric | drop pt |", "|---|---|---|---|---|"]
    for o in result.front:
        lines.append(f"| {o.cand.variant}{' **(chosen)**' if o is chosen else ''} | "
                     f"{o.value('p50_ms'):.4g} | {o.value('artifact_bytes') / 1024:.1f} | "
                     f"{o.value('metric_value'):.4g} | {o.value('metric_drop'):.2f} |")
    lines += ["", "## Every candidate", "",
              "| variant | family | PyTorch drop pt | rung | p50 ms | size KiB | TVM drop pt "
              "| outcome |", "|---|---|---|---|---|---|---|---|"]
    for o in result.outcomes:
        rung = {-1: "-", 0: "short", 1: "full"}[o.rung]
        drop = "-" if o.drop_pt is None else f"{o.drop_pt:.2f}"
        lines.append(f"| {o.cand.variant} | {o.cand.family} | {drop} | {rung} | "
                     f"{_num(o, 'p50_ms')} | {_num(o, 'artifact_bytes', 1024)} | "
                     f"{_num(o, 'metric_drop')} | {'chosen' if o is chosen else o.reason} |")
    lines += ["", "## Why each family lost", ""]
    families: dict[str, list[Outcome]] = {}
    for o in result.outcomes:
        families.setdefault(o.cand.family, []).append(o)
    for fam, members in families.items():
        if chosen is not None and chosen in members:
            lines.append(f"- {fam}: chosen ({chosen.cand.variant})")
            continue
        best = min(members, key=lambda o: (o.rung * -1, 0 if o.ok else 1,
                                           o.drop_pt if o.drop_pt is not None else math.inf))
        lines.append(f"- {fam}: {best.cand.variant}: {best.reason}")
    return "\n".join(lines) + "\n"


def _beside_peers(output: Path, model: str, chosen: Outcome | None) -> list[str]:
    """The chosen row beside the fastest peer of each precision in the same CSV (`--peers`):
    FP32, and real int8 (the peers' own int8 builds; a fake-quant graph run in float is not)."""
    from edgebench.report.results import read_rows

    if chosen is None or not output.is_file():
        return []
    best: dict[str, object] = {}
    for r in read_rows(output):
        if r.model != model or r.runtime == "tvm" or r.status != "ok":
            continue
        kind = r.get("quant_kind")
        precision = "int8" if kind == "int8-peer" else "fp32" if r.variant == "fp32" else None
        if precision and (precision not in best
                          or r.get("p50_ms") < best[precision].get("p50_ms")):
            best[precision] = r
    if not best:
        return []
    p50 = chosen.value("p50_ms")
    lines = ["## Beside the fastest peers (same data, same core; peers fully timed)", "",
             "| precision | fastest peer | p50 ms | drop pt | chosen faster by |",
             "|---|---|---|---|---|"]
    for precision in ("fp32", "int8"):
        r = best.get(precision)
        if r is not None:
            drop = r.get("metric_drop")
            lines.append(f"| {precision} | {r.runtime} {r.variant} | {r.get('p50_ms'):.4g} | "
                         f"{'-' if drop is None else f'{drop:.2f}'} | "
                         f"{r.get('p50_ms') / p50:.2f}x |")
    return [*lines, ""]


def _num(o: Outcome, key: str, scale: float = 1.0) -> str:
    v = o.value(key)
    return "-" if math.isnan(v) else f"{v / scale:.4g}"


def plot(result: Result, path: Path, model: str, output: Path) -> Path | None:
    """p50 vs metric drop of every measured candidate (marker area ~ library size), the front
    joined, the chosen starred; the peers' rows from the same CSV beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgebench.report.results import read_rows

    measured = [o for o in result.outcomes if o.ok]
    if not measured:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    sizes = [max(o.value("artifact_bytes") / 1024, 1) for o in measured]
    ax.scatter([o.value("p50_ms") for o in measured],
               [o.value("metric_drop") for o in measured], s=[10 + s / 4 for s in sizes],
               c=["tab:blue" if o.rung == 1 else "lightsteelblue" for o in measured],
               alpha=0.8, label="TVM candidates (dark: full timing)")
    front = result.front
    ax.plot([o.value("p50_ms") for o in front], [o.value("metric_drop") for o in front],
            "k--", lw=0.8, label="Pareto front")
    for o in front:
        ax.annotate(o.cand.variant.replace("prune=", ""), (o.value("p50_ms"),
                    o.value("metric_drop")), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    if result.chosen is not None:
        c = result.chosen
        ax.scatter([c.value("p50_ms")], [c.value("metric_drop")], marker="*", s=250,
                   color="gold", edgecolors="black", zorder=5, label=f"chosen: {c.cand.variant}")
    if output.is_file():
        colors = {"pytorch": "tab:red", "onnxruntime": "tab:green", "executorch": "tab:purple",
                  "onnxruntime-int8": "darkgreen", "executorch-int8": "indigo"}
        for r in read_rows(output):
            if r.runtime in colors and r.status == "ok" and r.model == model:
                drop = r.get("metric_drop")
                ax.scatter([float(r.get("p50_ms"))], [float("nan") if drop is None else drop],
                           marker="v" if r.runtime.endswith("-int8") else "^",
                           color=colors[r.runtime], s=40,
                           label=f"{r.runtime} {r.variant}")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency (ms, log)")
    ax.set_ylabel("metric drop vs FP32 (pt, lower is better)")
    ax.set_title(f"edgebench optimize: {model}", fontsize=10)
    ax.legend(fontsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
