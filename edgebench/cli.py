"""Command line: `edgebench run | models | targets | report | compare | profile | prune | export |
optimize | board`.

Exit codes: 0 all rows ok, 1 some rows failed (their errors are in the CSV and printed) or,
for `compare`, a row got slower beyond noise; 2 bad input (unknown model or target, bad
variant, unwritable output, missing file) before anything ran. Arguments are checked before
torch and TVM are imported, so a typo is answered at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from edgebench import __version__, quiet
from edgebench.compile.search import TuneBudget
from edgebench.measure import QUICK, MeasureConfig

# The main job: FP32, a pruned variant on our sparse kernels, structured pruning and static
# int8, beside the peers (each recipe keeps digits accuracy within a point of FP32).
DEFAULT_MODELS = ("digits-mlp", "digits-cnn")
DEFAULT_VARIANTS = ("fp32", "prune=unstructured:0.9:ft10+sparse", "prune=channel:0.5:ft10",
                    "quant=static")
DEFAULT_TRIALS = 32
MAX_DROP = 1.0  # = report.tables.MAX_DROP_PTS (not imported: it loads pandas)

VARIANT_HELP = """\
variants (--variants V...; `+` joins a prune, a quant and sparse):
  fp32                                 the model as given
  prune=unstructured:S[:global]        magnitude per layer (or global): prune=unstructured:0.9
  prune=threshold:T                    zero |w| < T:                    prune=threshold:0.05
  prune=block:RxC:S                    whole RxC blocks:                prune=block:8x1:0.9
  prune=nm:N:M                         N of every M kept:               prune=nm:2:4
  prune=channel:F                      a smaller dense network:         prune=channel:0.5
  prune=gradual:S                      pruned while fine-tuning:        prune=gradual:0.9
  prune=...:ftN                        fine-tune N epochs after:        prune=channel:0.5:ft30
  quant=dynamic                        int8 weights:                    quant=dynamic
  quant=static[:OBS][:per-tensor]      minmax|percentile|entropy:       quant=static:entropy
  quant=fp16|qat|ternary|binary        other precisions:                quant=ternary
  +sparse, +sparse=all                 on our sparse kernels:  prune=unstructured:0.9+sparse
  prune=...+quant=...                  prune, then quantize:   prune=nm:2:4+quant=static
  prune=...+quant=...+sparse   int8 sparse kernels:    prune=block:16x1:0.9+quant=static+sparse
"""


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, epilogs kept as written."""


class _Version(argparse.Action):
    """--version, with the versions looked up only when asked (metadata scans are slow)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(_versions())
        parser.exit()


def _versions() -> str:
    from importlib import metadata

    found = []
    for dist in ("torch", "apache-tvm", "onnxruntime", "executorch"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return f"edgebench {__version__} ({', '.join(found)})"


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"input shape must be like 1,3,224,224, got {text!r}") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    """--data and friends (run, prune, profile): the data calibration, fine-tuning and scoring
    use instead of the model's own (or, for user models, seeded noise and agreement)."""
    g = p.add_argument_group("data (calibration, fine-tuning, scoring)")
    g.add_argument("--data", default=None,
                   help="the model's data: file.npz (x_train, x_test, optional y_train, "
                        "y_test) or file.py:fn / module:fn returning (train, test), each a "
                        "torch Dataset of (input, label) or a pair (x, y); labels optional")
    g.add_argument("--metric", default=None,
                   help="top1 (default for integer labels), mse (default for float labels) "
                        "or file.py:fn(outputs, labels) -> float, higher is better unless fn "
                        "has higher_is_better = False")
    g.add_argument("--loss", default=None,
                   help="fine-tuning loss file.py:fn(outputs, labels) -> scalar tensor "
                        "(default: cross-entropy for class ids, MSE otherwise)")
    g.add_argument("--calib-samples", type=int, default=None,
                   help="calibration samples drawn from the train part (default 256)")
    g.add_argument("--eval-samples", type=int, default=None,
                   help="test samples every runtime is scored on (default: all, up to 1000)")


def _data_options(args: argparse.Namespace):
    from edgebench.data import DataOptions

    return DataOptions(args.data, args.metric, args.loss, args.calib_samples,
                       args.eval_samples)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgebench", description=__doc__.splitlines()[0],
                                formatter_class=_Help)
    p.add_argument("--version", action=_Version, nargs=0,
                   help="show edgebench's version and its runtimes' versions, then exit")
    common = argparse.ArgumentParser(add_help=False)
    noise = common.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true",
                       help="also show third-party warnings (torch, TVM, torchao, ...)")
    noise.add_argument("-q", "--quiet", action="store_true",
                       help="no progress lines (CI logs): errors, FAILED rows and the summary")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], formatter_class=_Help, **kw)

    r = add("run", help="compile, run, verify and measure variants; write a CSV",
            description="Compile, run, verify and measure each model x variant x runtime; "
            "rows are appended to the CSV as measured, then a summary table is printed.",
            epilog=VARIANT_HELP)
    r.add_argument("models", nargs="*", default=list(DEFAULT_MODELS),
                   help="built-in names (see `edgebench models`) or module:factory / "
                        "file.py:factory")
    r.add_argument("--target", default="x86-native",
                   help="target name (see `edgebench targets`) or .toml path")
    r.add_argument("--variants", nargs="+", default=None,
                   help="variant recipes, grammar below (default: with no models named, the "
                        f"main job's {' '.join(DEFAULT_VARIANTS)}; with models named, fp32)")
    r.add_argument("--runtimes", nargs="+", default=None,
                   help="any of tvm pytorch onnxruntime executorch (the default, those "
                        "available) and the int8 peers onnxruntime-int8 executorch-int8 (each "
                        "peer's own int8 build of the unquantized variants, calibrated on "
                        "quant=static's samples)")
    r.add_argument("--no-peers", action="store_true", help="TVM only")
    r.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                   help="MetaSchedule trials per task (every task gets this many; 0 = untuned)")
    r.add_argument("--tune-budget", type=float, default=TuneBudget.model_s, metavar="S",
                   help="wall-clock seconds of tuning per model; then every task keeps its "
                        "best")
    r.add_argument("--task-budget", type=float, default=TuneBudget.task_s, metavar="S",
                   help="wall-clock seconds of tuning per task; a task "
                        f"with no new candidate for {TuneBudget.stall_rounds} rounds or "
                        f"{TuneBudget.stall_s:g} s is done with its best")
    r.add_argument("--max-drop", type=float, default=MAX_DROP,
                   help="points of the metric (top-1 %%, agreement %%) a variant may lose "
                        "against FP32 and still be called best")
    r.add_argument("--json", action="store_true",
                   help="also write the rows and the environment as JSON beside the CSV")
    r.add_argument("--threads", type=int, default=None, help="override the target's threads")
    r.add_argument("--output", "-o", default="results/latest.csv",
                   help="results CSV (appended; a .md summary and .env.json beside it)")
    r.add_argument("--no-resume", action="store_true", help="re-measure rows already in the CSV")
    r.add_argument("--quick", action="store_true",
                   help=f"short timing ({QUICK.min_runs} runs, {QUICK.min_time_s} s) for "
                        "smoke tests")
    r.add_argument("--min-runs", type=int, default=MeasureConfig.min_runs,
                   help="timed calls at least")
    r.add_argument("--min-time", type=float, default=MeasureConfig.min_time_s,
                   help="seconds of timed calls at least")
    r.add_argument("--input-shape", type=_shape, default=None, help="user models: e.g. 1,3,224,224")
    r.add_argument("--input-dtype", default="float32", help="user models: input dtype")
    r.add_argument("--input-high", type=int, default=None, help="int inputs: exclusive upper bound")
    _add_data_args(r)
    pr = add("prune", help="prune a model in PyTorch and show what it did, layer by "
                        "layer (no compiling)")
    pr.add_argument("model", help="built-in name or module:factory / file.py:factory")
    pr.add_argument("recipe", help="e.g. unstructured:0.9, block:8x1:0.9, nm:2:4, channel:0.5, "
                    "gradual:0.9, channel:0.5:ft30")
    pr.add_argument("--save", default=None, help="torch.save the pruned model here")
    pr.add_argument("--input-shape", type=_shape, default=None)
    _add_data_args(pr)
    add("models", help="list built-in models")
    add("targets", help="list target files (shipped, and ./targets/*.toml)")
    rep = add("report", help="markdown report + PNG plots from results CSVs")
    rep.add_argument("results", nargs="+", help="results CSVs (other CSVs are skipped, listed)")
    rep.add_argument("--out", default=None,
                     help="directory for README.md and plots/ (default: report/ beside the "
                          "first CSV)")
    rep.add_argument("--max-drop", type=float, default=MAX_DROP,
                     help="points a variant may lose against FP32 and still be best")
    cmp = add("compare", help="the same variants across two runs: change in p50 and whether "
              "it is beyond run-to-run noise; exit 1 if a row got slower (a CI gate)")
    cmp.add_argument("a", help="results CSV of the first run (A)")
    cmp.add_argument("b", help="results CSV of the second run (B)")
    cmp.add_argument("--out", default=None, help="also write the markdown here")
    pf = add("profile", help="per-layer profile of a compiled variant: each kernel "
                        "timed alone (dense / sparse / int8) vs the whole, locally or on a board")
    pf.add_argument("model", help="built-in name")
    pf.add_argument("--variants", "--variant", nargs="+", default=["fp32"],
                    help="one or more, e.g. fp32 prune=unstructured:0.9+sparse (several: a "
                         "table of time per kernel kind side by side)")
    pf.add_argument("--target", default="x86-native", help="target name or .toml (boards: RPC)")
    pf.add_argument("--trials", type=int, default=32, help="MetaSchedule trials per task")
    pf.add_argument("--threads", type=int, default=None, help="override the target's threads")
    pf.add_argument("--rounds", type=int, default=None,
                    help="interleaved timing rounds, median kept (default 9)")
    pf.add_argument("--min-repeat-ms", type=int, default=None,
                    help="each timing runs a call for at least this long (default 10)")
    pf.add_argument("--cold", action="store_true",
                    help="time each kernel with its weights, bias and output flushed from the "
                         "caches before every call (its input activation stays warm): how it "
                         "runs in a model whose weights exceed the cache")
    _add_data_args(pf)
    pf.add_argument("--output", "-o", default=None,
                    help="write the per-kernel CSV here (and the markdown beside it)")
    ex = add("export", help="a deployable bundle: the compiled library, manifest.json "
                        "and run.py (TVM runtime + numpy only), verified on the target")
    ex.add_argument("model", help="built-in name")
    ex.add_argument("--variant", default="fp32", help="one variant, e.g. quant=static")
    ex.add_argument("--target", default="x86-native", help="target name or .toml (boards: "
                    "cross-compiled, verified over RPC)")
    ex.add_argument("--output", "-o", required=True, help="bundle directory (replaced if it "
                    "holds a bundle)")
    ex.add_argument("--trials", type=int, default=32, help="MetaSchedule trials per task")
    ex.add_argument("--threads", type=int, default=None, help="override the target's threads")
    ex.add_argument("--from-results", default=None, metavar="CSV",
                    help="take the measured p50 and metric from this results CSV (default: "
                         "results/latest.csv if it has the row)")
    _add_optimize(add)
    b = add("board", help="the emulated aarch64 board (qemu-user chroot running TVM's "
                       "rpc_server on 127.0.0.1): up, down, status, build")
    b.add_argument("action", choices=["up", "down", "status", "build"])
    b.add_argument("--servers", type=int, default=1, help="rpc servers (consecutive ports)")
    b.add_argument("--port", type=int, default=9091, help="first server port")
    b.add_argument("--tracker", action="store_true",
                   help="also start TVM's rpc_tracker and register the servers with it")
    b.add_argument("--tracker-port", type=int, default=9190)
    b.add_argument("--key", default="arm", help="device key the servers register under")
    b.add_argument("--threads", type=int, default=1, help="TVM_NUM_THREADS on the board")
    b.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    b.add_argument("--rebuild", action="store_true", help="build: rebuild the cached root fs")
    return p


def _cmd_board(args: argparse.Namespace) -> int:
    import time

    from edgebench.execute import board

    if args.action == "build":
        print(board.build(force=args.rebuild))
        return 0
    if args.action == "down":
        board.down()
        return 0
    if args.action == "status":
        rows = board.status()
        for p, state in rows:
            extra = f" key {p.key} via tracker {p.tracker}" if p.tracker else ""
            print(f"{p.kind:<8} {p.host}:{p.port:<6} pid {p.pid:<8} {state}{extra}")
        if not rows:
            print(f"no board processes (root fs: {board.rootfs()})")
        return 0 if rows and all(state == "serving" for _, state in rows) else 1
    start = time.perf_counter()
    procs = board.up(args.servers, args.port, args.tracker, args.tracker_port, args.key,
                     args.threads, args.host)
    for p in procs:
        print(f"{p.kind} serving on {p.host}:{p.port} (pid {p.pid}, log {p.log})")
    print(f"board up in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_models() -> int:
    from edgebench.models import list_models

    for s in list_models():
        shape = "x".join(map(str, s.input_shape))
        print(f"{s.name:<18} {shape:<14} {s.input_dtype:<8} {s.evaluation:<25} "
              f"{s.description}")
    return 0


def _cmd_targets() -> int:
    from edgebench.targets import list_targets

    for t in list_targets():
        where = f"rpc {t.rpc.address}" if t.rpc else "local"
        print(f"{t.name:<12} {t.arch:<8} threads={t.threads:<2} {where:<22} {t.description}")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    import torch

    from edgebench.models import get_model, with_data
    from edgebench.prune import prune

    spec = with_data(get_model(args.model, args.input_shape) if ":" in args.model
                     else get_model(args.model), _data_options(args))
    result = prune(spec.build(), args.recipe, spec.example_input(), spec)
    print(f"{spec.name} {result.config.text}: {result.kind}")
    print(f"{'layer':<32} {'type':<8} {'shape':<18} {'params':>9} {'nonzero':>9} sparsity")
    for la in result.layers:
        mark = "" if la.pruned else "  (dense)"
        print(f"{la.name:<32} {la.type:<8} {'x'.join(map(str, la.shape)):<18} {la.params:>9} "
              f"{la.nonzero:>9} {la.sparsity:8.3f}{mark}")
    for name, why in result.skipped:
        print(f"skipped {name}: {why}")
    print(f"params {result.params_before} -> {result.params}, non-zero {result.nonzero}, "
          f"weight sparsity {result.sparsity:.3f}, MACs {result.macs_before} -> {result.macs}")
    if result.metric_after is not None:
        print(f"test {result.metric} {result.metric_before:.4f} -> {result.metric_after:.4f}")
    if args.save:
        torch.save(result.model, args.save)
        print(f"saved {args.save}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    _check_inputs(args.results)
    from edgebench.report.document import write_report

    first = Path(args.results[0])
    out = Path(args.out) if args.out else first.parent / "report"
    print(write_report(args.results, out, max_drop=args.max_drop))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    _check_inputs([args.a, args.b])
    from edgebench.report.compare import compare, markdown
    from edgebench.report.compare import slower as compare_slower

    changes = compare([args.a], [args.b])
    text = markdown(changes, args.a, args.b)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    slower = compare_slower(changes)
    if slower:
        print(f"edgebench: {len(slower)} row(s) slower beyond noise: "
              + ", ".join(slower), file=sys.stderr)
        return 1
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    import pandas as pd

    from edgebench.profile import (
        COVERAGE_BAND,
        ProfileConfig,
        TimingConfig,
        by_kind_markdown,
        profile,
    )

    timing = TimingConfig(**{k: v for k, v in (("rounds", args.rounds),
                                                ("min_repeat_ms", args.min_repeat_ms))
                             if v is not None}, cold=args.cold)
    data = _data_options(args)
    profiles = [profile(ProfileConfig(args.model, v, args.target, args.trials, args.threads,
                                      timing, data=data)) for v in args.variants]
    text = "\n".join(p.markdown() for p in profiles)
    if len(profiles) > 1:
        text = by_kind_markdown(profiles) + "\n" + text
    print(text)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.concat([p.frame().assign(variant=p.variant) for p in profiles]).to_csv(
            out, index=False)
        out.with_suffix(".md").write_text(text)
        print(f"profile: {out} and {out.with_suffix('.md')}")
    for p in profiles:
        if not p.adds_up():
            print(f"edgebench: warning: {p.variant}: kernels sum to {p.coverage:.2f} of the "
                  f"whole, outside {COVERAGE_BAND}", file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from edgebench.models import check_model_ref
    from edgebench.targets import target_path
    from edgebench.variant import parse_variant

    check_model_ref(args.model)  # bad names answered before torch and TVM load
    target_path(args.target)
    parse_variant(args.variant)
    from edgebench.bundle import ExportConfig, export

    bundle = export(ExportConfig(args.model, args.variant, args.target, args.output, args.trials,
                                 args.threads, args.from_results))
    print(f"bundle: {bundle.path} (verified on {bundle.verified_on}); run it with "
          f"`python3 {bundle.path}/run.py --input x.npy --output y.npy`")
    return 0


def _add_optimize(add) -> None:
    o = add("optimize", help="search prune/quantize recipes: the fastest variant within "
            "--max-drop on the target (accuracy in PyTorch first, then compile and time the "
            "survivors by successive halving within --budget)")
    o.add_argument("model", help="built-in name or module:factory / file.py:factory")
    o.add_argument("--target", default="x86-native", help="target name or .toml (boards too)")
    o.add_argument("--max-drop", type=float, default=MAX_DROP,
                   help="points of the metric the chosen variant may lose against FP32")
    o.add_argument("--budget", default="30m", help="wall-clock budget of the search: 30m, "
                   "90s, 1h")
    o.add_argument("--objective", default="latency", choices=["latency", "size", "both"])
    o.add_argument("--export", default=None, metavar="DIR",
                   help="export the chosen variant as a verified bundle (edgebench export)")
    o.add_argument("--output", "-o", default="results/optimize.csv",
                   help="results CSV of the full timings (short ones: <stem>-screen.csv; "
                        "table <stem>-optimize.md, plot <stem>-front.png)")
    o.add_argument("--variants", nargs="+", default=None,
                   help="search only these variants (default: the built-in search space)")
    o.add_argument("--trials", type=int, default=0, help="MetaSchedule trials per task (0: "
                   "our FP32/int8 kernels need none; N tunes the glue and +sparse's dense "
                   "layers, within a third of the time left per variant)")
    o.add_argument("--threads", type=int, default=None, help="override the target's threads")
    o.add_argument("--peers", action="store_true", help="also time the peers on fp32 and "
                   "quant=static (outside the budget) for the plot")
    _add_data_args(o)


def _cmd_optimize(args: argparse.Namespace) -> int:
    from edgebench.optimize import OptimizeConfig, candidate, check, parse_budget

    cfg = OptimizeConfig(args.model, args.target, args.max_drop, parse_budget(args.budget),
                         args.objective, args.output, args.export,
                         [candidate(v) for v in args.variants] if args.variants else None,
                         args.trials, args.threads, log=(lambda _m: None) if args.quiet
                         else print)
    from edgebench.report.results import check_writable

    check(cfg)  # bad input answered before torch and TVM load
    check_writable(Path(args.output))
    cfg.data, cfg.peers = _data_options(args), args.peers
    from edgebench.optimize import NoVariantError, optimize

    try:
        result = optimize(cfg)
    except NoVariantError as e:
        print(f"edgebench: {e}", file=sys.stderr)
        return 1
    print(result.table)
    print("files: " + ", ".join(map(str, [args.output, *result.files]))
          + (f", bundle {result.bundle}" if result.bundle else ""))
    return 0


def _check_inputs(paths: list[str]) -> None:
    from edgebench.errors import UsageError

    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")


def _precheck_run(args: argparse.Namespace) -> None:
    """Every argument the run needs, checked without torch or TVM (one line, exit 2)."""
    from edgebench.models import check_model_ref
    from edgebench.report.results import check_writable
    from edgebench.runtimes import RUNTIMES, UnknownRuntime
    from edgebench.targets import target_path
    from edgebench.variant import parse_variant

    for m in args.models:
        check_model_ref(m, args.input_shape)
    target_path(args.target)
    for v in args.variants:
        parse_variant(v)
    for r in args.runtimes or ():
        if r not in RUNTIMES:
            raise UnknownRuntime(f"unknown runtime '{r}'; known runtimes: {', '.join(RUNTIMES)}")
    check_writable(Path(args.output))  # the writer's own check, before anything runs


def _cmd_run(args: argparse.Namespace) -> int:
    if args.variants is None:  # the demo recipes fine-tune on digits: the main job's models
        args.variants = (list(DEFAULT_VARIANTS) if args.models == list(DEFAULT_MODELS)
                         else ["fp32"])
    _precheck_run(args)
    from edgebench.pipeline import RunConfig, run
    from edgebench.runtimes import DEFAULT_RUNTIMES

    runtimes = ["tvm"] if args.no_peers else (args.runtimes or list(DEFAULT_RUNTIMES))
    measure = QUICK if args.quick else MeasureConfig(min_runs=args.min_runs,
                                                     min_time_s=args.min_time)
    cfg = RunConfig(models=args.models, target=args.target, variants=args.variants,
                    runtimes=runtimes, trials=args.trials, threads=args.threads,
                    output=args.output, measure=measure, input_shape=args.input_shape,
                    input_dtype=args.input_dtype, input_high=args.input_high,
                    resume=not args.no_resume, data=_data_options(args),
                    tune_budget=TuneBudget(model_s=args.tune_budget, task_s=args.task_budget),
                    log=(lambda _m: None) if args.quiet else print)
    from edgebench.errors import on_interrupt

    # while this run measures (restored after: `main` also runs inside tests and notebooks)
    previous = {sig: signal.signal(sig, on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        df = run(cfg)
    except KeyboardInterrupt:
        # The measuring worker was killed by subprocess.run on the way out; written rows stay.
        from edgebench.report import read_rows

        out = Path(args.output)
        kept = len(read_rows(out)) if out.exists() else 0
        print(f"edgebench: interrupted: {kept} rows kept in {out}; re-run the same command to "
              "resume", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out = Path(args.output)
    from edgebench.report.tables import load

    rows = load([out]).rows
    mine = rows[rows["model"].isin([str(m) for m in args.models])
                & rows["variant"].isin([parse_name(v) for v in args.variants])]
    from edgebench.report.console import print_summary
    from edgebench.report.export import write_json

    print_summary(mine, args.max_drop)
    written = [out, out.with_suffix(".md")]
    if args.json:
        written.append(write_json(out))
    print("results: " + ", ".join(map(str, written)))
    failed = df[df["status"] != "ok"]
    for _, r in failed.iterrows():
        print(f"FAILED {r['model']} {r['variant']} {r['runtime']}: {r['error']}", file=sys.stderr)
    return 1 if len(failed) else 0


def parse_name(variant: str) -> str:
    from edgebench.variant import parse_variant

    return parse_variant(variant).name


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet.set_for_children(not args.verbose)
    if args.quiet:
        os.environ.setdefault("CI", "true")  # plain log lines, no bars
    from edgebench.errors import is_user_error

    try:
        if args.command == "models":
            return _cmd_models()
        if args.command == "targets":
            return _cmd_targets()
        if args.command == "prune":
            return _cmd_prune(args)
        if args.command == "board":
            return _cmd_board(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "profile":
            return _cmd_profile(args)
        if args.command == "export":
            return _cmd_export(args)
        if args.command == "optimize":
            return _cmd_optimize(args)
        return _cmd_run(args)
    except Exception as e:
        if not is_user_error(e):
            raise
        print(f"edgebench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgebench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
