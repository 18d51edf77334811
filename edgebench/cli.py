"""Command line: `edgebench run | models | targets | report | compare | profile | prune | board`.

Exit codes: 0 all rows ok, 1 some rows failed (their errors are in the CSV and printed),
2 bad input (unknown model or target, bad variant, unwritable output) before anything ran.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebench.measure import QUICK, MeasureConfig


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
    p = argparse.ArgumentParser(prog="edgebench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="compile, run, verify and measure variants; write a CSV")
    r.add_argument("models", nargs="*", default=["digits-mlp", "digits-cnn"],
                   help="built-in names (see `edgebench models`) or module:factory / "
                        "file.py:factory (default: digits-mlp digits-cnn)")
    r.add_argument("--target", default="x86-native", help="target name or .toml path")
    r.add_argument("--variants", nargs="+", default=["fp32"],
                   help="fp32 and/or recipes such as prune=unstructured:0.9 "
                   "prune=block:8x1:0.9 prune=nm:2:4 prune=channel:0.5 prune=gradual:0.9")
    r.add_argument("--runtimes", nargs="+", default=None,
                   help="subset of tvm pytorch onnxruntime executorch (default: all available)")
    r.add_argument("--no-peers", action="store_true", help="TVM only")
    r.add_argument("--trials", type=int, default=32,
                   help="MetaSchedule trials per task (every task gets this many; 0 = untuned)")
    r.add_argument("--threads", type=int, default=None, help="override the target's threads")
    r.add_argument("--output", "-o", default="results/latest.csv", help="results CSV (appended)")
    r.add_argument("--no-resume", action="store_true", help="re-measure rows already in the CSV")
    r.add_argument("--quick", action="store_true",
                   help=f"short timing ({QUICK.min_runs} runs, {QUICK.min_time_s} s) for "
                        "smoke tests")
    r.add_argument("--min-runs", type=int, default=MeasureConfig.min_runs)
    r.add_argument("--min-time", type=float, default=MeasureConfig.min_time_s)
    r.add_argument("--input-shape", type=_shape, default=None, help="user models: e.g. 1,3,224,224")
    r.add_argument("--input-dtype", default="float32")
    r.add_argument("--input-high", type=int, default=None, help="int inputs: exclusive upper bound")
    _add_data_args(r)
    pr = sub.add_parser("prune", help="prune a model in PyTorch and show what it did, layer by "
                        "layer (no compiling)")
    pr.add_argument("model", help="built-in name or module:factory / file.py:factory")
    pr.add_argument("recipe", help="e.g. unstructured:0.9, block:8x1:0.9, nm:2:4, channel:0.5, "
                    "gradual:0.9, channel:0.5:ft30")
    pr.add_argument("--save", default=None, help="torch.save the pruned model here")
    pr.add_argument("--input-shape", type=_shape, default=None)
    _add_data_args(pr)
    sub.add_parser("models", help="list built-in models")
    sub.add_parser("targets", help="list target files")
    rep = sub.add_parser("report", help="markdown report + PNG plots from results CSVs")
    rep.add_argument("results", nargs="+", help="results CSVs (other CSVs are skipped, listed)")
    rep.add_argument("--out", default=None,
                     help="directory for README.md and plots/ (default: report/ beside the "
                          "first CSV)")
    cmp = sub.add_parser("compare", help="the same variants across two runs: change in p50 "
                         "and whether it is beyond run-to-run noise")
    cmp.add_argument("a", help="results CSV of the first run (A)")
    cmp.add_argument("b", help="results CSV of the second run (B)")
    cmp.add_argument("--out", default=None, help="also write the markdown here")
    pf = sub.add_parser("profile", help="per-layer profile of a compiled variant: each kernel "
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
    _add_data_args(pf)
    pf.add_argument("--output", "-o", default=None,
                    help="write the per-kernel CSV here (and the markdown beside it)")
    b = sub.add_parser("board", help="the emulated aarch64 board (qemu-user chroot running TVM's "
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

    from edgebench.run import board

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
    from edgebench.report.document import write_report

    first = Path(args.results[0])
    out = Path(args.out) if args.out else first.parent / "report"
    print(write_report(args.results, out))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from edgebench.report.compare import compare, markdown

    text = markdown(compare([args.a], [args.b]), args.a, args.b)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
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
                             if v is not None})
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


def _cmd_run(args: argparse.Namespace) -> int:
    from edgebench.pipeline import RunConfig, run
    from edgebench.runtimes import RUNTIMES

    runtimes = ["tvm"] if args.no_peers else (args.runtimes or list(RUNTIMES))
    measure = QUICK if args.quick else MeasureConfig(min_runs=args.min_runs,
                                                     min_time_s=args.min_time)
    cfg = RunConfig(models=args.models, target=args.target, variants=args.variants,
                    runtimes=runtimes, trials=args.trials, threads=args.threads,
                    output=args.output, measure=measure, input_shape=args.input_shape,
                    input_dtype=args.input_dtype, input_high=args.input_high,
                    resume=not args.no_resume, data=_data_options(args))
    df = run(cfg)
    out = Path(args.output)
    print(f"results: {out} and {out.with_suffix('.md')}")
    failed = df[df["status"] != "ok"]
    for _, r in failed.iterrows():
        print(f"FAILED {r['model']} {r['variant']} {r['runtime']}: {r['error']}", file=sys.stderr)
    return 1 if len(failed) else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from edgebench.errors import user_errors

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
        return _cmd_run(args)
    except user_errors() as e:
        print(f"edgebench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
