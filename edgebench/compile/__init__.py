"""Compile: Relax IRModule -> our passes -> tuned (MetaSchedule) -> shared library for a target.

Every figure edgebench reports for TVM comes from tuned code (untuned Relax is ~55x slower than
PyTorch); `trials=0` builds untuned and the row says so. Extra Relax passes (sparse and int8
rewrites, or a test's deliberately wrong one) run after BatchNorm folding and before lowering.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.compile.search import TuneBudget
from edgebench.compile.tuning import (
    Progress,
    TaskTrials,
    TuningReport,
    apply_database,
    board_sessions,
    database_dir,
    rpc_runner,
    tune,
)
from edgebench.targets import Target

__all__ = ["CompileError", "CompileResult", "TuneBudget", "compile_module"]


class CompileError(RuntimeError):
    """TVM could not lower or build the module for the target."""


@dataclass
class CompileResult:
    """The artifact plus what it cost: tuning (this run) and the final build."""

    path: Path
    trials_per_task: int
    tuning: TuningReport
    compile_s: float
    module: object = None  # the tuned, fused IRModule that was built (per-kernel profiling)
    executable: object = None  # its relax.VMExecutable (a board profile exports its kernels)
    asm: str = field(default="", repr=False)  # the host code's assembly (x86 builds only)

    @property
    def untuned(self) -> bool:
        return self.trials_per_task == 0


def _prepare(mod, target, extra_passes: Sequence, conv_layout: str = "NCHW"):
    """Fold BatchNorm into convs, convert the conv layout, run extra passes, then legalize
    and fuse (the fused functions are the tasks to tune)."""
    import tvm
    from tvm import relax

    layout = []
    if conv_layout == "NHWC":
        # Channels innermost: the vector axis is the (large) channel count, not a 7..56 width.
        layout = [relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "OHWI"]}),
                  relax.transform.FoldConstant()]
    seq = [
        relax.transform.FoldBatchnormToConv2D(),
        relax.transform.FoldConstant(),
        relax.transform.DecomposeOpsForInference(),
        relax.transform.CanonicalizeBindings(),
        *layout,
        *extra_passes,
        relax.get_pipeline("zero"),
    ]
    with target:
        return tvm.transform.Sequential(seq)(mod)


def _default_code(fused, task_trials: TaskTrials, trials: int):
    """The fused module with every not-yet-scheduled PrimFunc whose budget
    `task_trials(its module, trials)` is 0 marked scheduled: built on TVM's default code
    (plain loops LLVM vectorizes where it can), not a tuning task. Returns (module, names)."""
    import tvm
    from tvm import tirx

    from edgebench.compile.tuning import _is_scheduled_func

    names = []
    for gv, f in list(fused.functions_items()):
        if isinstance(f, tirx.PrimFunc) and not _is_scheduled_func(f) and \
                task_trials(tvm.IRModule({"main": f}), trials) == 0:
            fused.update_func(gv, f.with_attr("tirx.is_scheduled", True))
            names.append(gv.name_hint)
    return fused, names


def target_database_dir(target: Target) -> Path:
    """The tuning database of a target (an emulated board keeps its own: qemu timings must not
    choose a real board's schedules)."""
    return database_dir(str(target.tvm_target()) + (" emulated" if target.emulated else ""))


def compile_module(mod, target: Target, out_path: Path, trials_per_task: int,
                   extra_passes: Sequence = (), progress: Progress | None = None,
                   runner=None, keep_asm: bool = False,
                   budget: TuneBudget | None = None,
                   task_trials: TaskTrials | None = None) -> CompileResult:
    """Tune (unless trials_per_task == 0) and build `mod`; export it to out_path (.so).
    keep_asm: also return the host assembly (to check which instructions a kernel uses).
    budget: the tuning time limits (TuneBudget's defaults if None).
    task_trials: a per-task trial budget (tuning.tune), e.g. the int8 lowering's glue policy."""
    import tvm

    tvm_target = target.tvm_target()
    try:
        fused = _prepare(mod, tvm_target, extra_passes, target.conv_layout)
    except Exception as e:
        raise CompileError(f"lowering for target '{target.name}' failed: "
                           f"{str(e).strip().splitlines()[-1]}") from e
    report = TuningReport()
    default_code: list[str] = []
    if trials_per_task > 0 and task_trials is not None:
        fused, default_code = _default_code(fused, task_trials, trials_per_task)
        if default_code and progress:
            progress(f"{len(default_code)} small glue functions on TVM's default code "
                     "(not worth tuning): " + ", ".join(default_code))
    if trials_per_task > 0:
        # A board's tuning is timed on the board (emulated boards keep their own database);
        # through a tracker on every board of the key that is free now.
        work_dir = target_database_dir(target)
        sessions = None
        if runner is None and target.rpc is not None:
            sessions = work_dir / "logs" / f"board-sessions-{os.getpid()}-{time.time_ns()}.txt"
            sessions.parent.mkdir(parents=True, exist_ok=True)
            runner = rpc_runner(target.rpc, sessions_log=sessions)
        _database, report = tune(fused, tvm_target, work_dir, trials_per_task, target.threads,
                                 target.cores, progress, runner,
                                 target.cross_compiler if target.rpc is not None else None,
                                 budget, task_trials)
        if sessions is not None:
            report.boards = board_sessions(sessions)
            sessions.unlink(missing_ok=True)
            if report.boards and progress:
                progress(f"tuning timed {sum(report.boards.values())} candidates on "
                         f"{len(report.boards)} board(s): " + ", ".join(
                             f"{b} x {n}" for b, n in sorted(report.boards.items())))
        fused, report.untuned = apply_database(fused, tvm_target, work_dir, progress)
    report.default_code = default_code
    if report.task_times:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.with_suffix(".tasks.json").write_text(json.dumps(
            {"estimated_ms": report.estimated_ms, "tasks": report.task_times}, indent=1))
    if progress:
        progress("compile")
    start = time.perf_counter()
    try:
        ex = tvm.compile(fused, target=tvm_target)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if target.cross_compiler:
            from tvm.support import cc

            ex.export_library(str(out_path), fcompile=cc.cross_compiler(target.cross_compiler))
        else:
            ex.export_library(str(out_path))
    except Exception as e:
        raise CompileError(f"building for target '{target.name}' failed: "
                           f"{str(e).strip().splitlines()[-1]}") from e
    asm = ""
    if keep_asm:
        asm = "\n".join(m.inspect_source("asm") for m in ex.mod.imports
                        if getattr(m, "kind", "") == "llvm")
    return CompileResult(out_path, trials_per_task, report, time.perf_counter() - start,
                         fused, ex, asm)
