"""MetaSchedule tuning with a persistent database per target and a per-task trial budget.

The database (MetaSchedule's JSON files) lives in the cache under a key derived from the TVM
target, so every model compiled for that target shares it. A ledger beside it records how many
trials each workload has had: a task is tuned only if it has had fewer than asked for, so the
second run of the same model re-tunes nothing, and every task gets the same share of trials
(a task left untuned dominates the model's time).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.compile.search import TuneBudget, TuningClock, budgeted_search
from edgebench.compile.workers import cross_export, register_cpu_intrinsics
from edgebench.paths import cache_dir
from edgebench.progress import tuning_progress

Progress = Callable[[str], None]
TaskTrials = Callable[[object, int], int]  # (task's PrimFunc module, trials asked) -> its trials


@dataclass
class TuningReport:
    """What tuning did for one module: tasks seen, tasks tuned now, seconds spent, and the
    best measured time of each task (weight = how often the model calls it)."""

    tasks: int = 0
    tuned_now: int = 0
    trials_per_task: int = 0
    seconds: float = 0.0
    work_dir: str = ""
    task_times: list[dict] = field(default_factory=list)
    untuned: list[str] = field(default_factory=list)  # kernels built without a tuned schedule
    default_code: list[str] = field(default_factory=list)  # budget 0: TVM's default code
    cut: list[str] = field(default_factory=list)  # "task: why" for tasks ended early
    boards: dict[str, int] = field(default_factory=dict)  # board -> candidates it timed (RPC)

    @property
    def estimated_ms(self) -> float:
        """Sum of weight x best time over tuned tasks: what the kernels alone should cost."""
        return sum(t["weight"] * t["best_us"] for t in self.task_times if t["best_us"]) / 1e3


def database_dir(target_json: str) -> Path:
    """The tuning database directory for one TVM target (keyed by its canonical JSON)."""
    key = hashlib.sha1(target_json.encode()).hexdigest()[:12]
    path = cache_dir() / "tuning" / key
    path.mkdir(parents=True, exist_ok=True)
    (path / "target.json").write_text(target_json)
    return path


_HELD: set[str] = set()  # databases this process holds the lock of (flock is not reentrant)


@contextlib.contextmanager
def _locked(work_dir: Path, progress: Progress | None = None) -> Iterator[None]:
    """One tuner per database at a time (two runs must not interleave writes); a run that
    has to wait says for whom. Reentrant within a process (flock is not)."""
    if str(work_dir) in _HELD:
        yield
        return
    with open(work_dir / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            (progress or print)(f"waiting for the tuning cache {work_dir} held by pid {holder}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        _HELD.add(str(work_dir))
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            _HELD.discard(str(work_dir))
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _quiet_metaschedule() -> None:
    """MetaSchedule logs every task table to the console; keep that in its log files only."""
    for name in ("tvm.s_tir.meta_schedule", "tvm.meta_schedule"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        # MetaSchedule's logging set-up re-lists its logger's handlers by name and fails
        # ('NoneType' object has no attribute 'format') on one attached without a name (seen
        # when a test harness attaches one): such a handler is not ours to keep there.
        for handler in [h for h in logger.handlers if h.get_name() is None]:
            logger.removeHandler(handler)


def rpc_runner(rpc, session_timeout: int | None = None, workers: int | None = None,
               sessions_log: Path | None = None):
    """MetaSchedule's RPCRunner for a board. Through a tracker: one runner worker per board of
    the key the tracker has free now (`workers` overrides), each candidate timed on whichever
    board the tracker hands out, so a farm of N boards times N candidates at once (TVM's
    default is one worker: one board busy, the others idle); `sessions_log` gets the board of
    every session. Or a direct host:port (one worker)."""
    import functools

    from tvm.s_tir import meta_schedule as ms

    from edgebench.compile.workers import alloc_host_random, direct_session, tracker_session

    timeout = session_timeout or rpc.session_timeout
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=0)
    if rpc.tracker:
        from dataclasses import replace

        from edgebench.execute.board import tracker_free

        host, _, port = rpc.tracker.rpartition(":")
        if workers is None:
            workers = max(1, tracker_free(rpc.tracker).get(rpc.key or "", 0))
        rpc = replace(rpc, session_timeout=timeout)
        return ms.runner.RPCRunner(
            ms.runner.RPCConfig(host, int(port), rpc.key, session_timeout_sec=timeout),
            evaluator, initializer=register_cpu_intrinsics, f_alloc_argument=alloc_host_random,
            max_workers=workers,
            f_create_session=functools.partial(tracker_session, rpc, str(sessions_log or "")))
    # a direct board: our session factory connects; the RPCConfig (which insists on a
    # tracker address) only names the board
    return ms.runner.RPCRunner(
        ms.runner.RPCConfig(rpc.host, int(rpc.port), rpc.key or "direct",
                            session_timeout_sec=timeout),
        evaluator_config=evaluator, initializer=register_cpu_intrinsics, max_workers=1,
        f_alloc_argument=alloc_host_random,
        f_create_session=functools.partial(direct_session, rpc.host, rpc.port, rpc.key or "",
                                           timeout))


def board_sessions(sessions_log: Path) -> dict[str, int]:
    """Candidates timed per board, from an rpc_runner's sessions_log."""
    if not sessions_log.is_file():
        return {}
    counts: dict[str, int] = {}
    for name in sessions_log.read_text().split():
        counts[name] = counts.get(name, 0) + 1
    return counts


def tune(mod, target, work_dir: Path, trials_per_task: int, threads: int,
         cores: tuple[int, ...], progress: Progress | None = None, runner=None,
         cross_compiler: str | None = None, budget: TuneBudget | None = None,
         task_trials: TaskTrials | None = None):
    """Tune the fused module's tasks that lack trials; return (database, TuningReport).
    With `cross_compiler` candidates are linked for the board and `runner` times them there.
    `budget` bounds the time (see TuneBudget); tasks it ended early are in report.cut.
    `task_trials(task's PrimFunc module, trials_per_task)`: a task's own budget (the int8
    lowering's integer glue gets 1 trial, its float glue the full budget)."""
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    _quiet_metaschedule()
    report = TuningReport(trials_per_task=trials_per_task, work_dir=str(work_dir))
    # Our hand-scheduled kernels (sparse, int8) are not MetaSchedule's to tune.
    tasks = [t for t in ms.relax_integration.extract_tasks(mod, target)
             if not _is_scheduled(t.dispatched[0])]
    if tasks:  # 3 s of CPU, needed only to search or replay schedules (none on our kernels)
        register_cpu_intrinsics()
    keys = [str(tvm_ffi.structural_hash(t.dispatched[0])) for t in tasks]
    want = {k: task_trials(t.dispatched[0], trials_per_task) if task_trials and trials_per_task
            else trials_per_task for t, k in zip(tasks, keys, strict=True)}
    ledger_path = work_dir / "trials.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    # Everything already tuned: read the database without waiting for another tuner's lock.
    fully_tuned = all(ledger.get(k, 0) >= want[k] for k in keys)
    with contextlib.nullcontext() if fully_tuned else _locked(work_dir, progress):
        database = open_database(work_dir,
                                 complete_since=_ledger_mtime(work_dir) if fully_tuned else None)
        report.tasks = len(tasks)
        ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
        todo = [(t, k) for t, k in zip(tasks, keys, strict=True) if ledger.get(k, 0) < want[k]]
        report.tuned_now = len(todo)
        if todo and trials_per_task > 0:
            todo = [(_on_stored_workload(t, database), k) for t, k in todo]
            budgets = sorted({want[k] for _, k in todo})
            if progress:
                each = "/".join(map(str, budgets))
                progress(f"tuning {len(todo)} of {len(tasks)} tasks, {each} trials each "
                         f"(database {work_dir})")
            start = time.perf_counter()
            clock = TuningClock(len(todo), trials_per_task, budget or TuneBudget(),
                                task_trials={t.task_name: want[k] for t, k in todo})
            builder = ms.builder.LocalBuilder(initializer=register_cpu_intrinsics,
                                              max_workers=max(1, min(2, os.cpu_count() or 1)),
                                              f_export=cross_export if cross_compiler else None)
            cores_env = ",".join(map(str, cores))
            with _env(TVM_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                      EDGEBENCH_TUNE_CORES=cores_env, EDGEBENCH_CROSS_CC=cross_compiler or ""), \
                    tuning_progress(clock, progress):
                runner = runner or ms.runner.LocalRunner(initializer=_pin_runner_initializer())
                for trials in budgets:  # one MetaSchedule run per per-task budget
                    group = [t for t, k in todo if want[k] == trials]
                    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                        group, str(work_dir / "logs"), strategy=budgeted_search(clock))
                    ms.tune_tasks(
                        tasks=contexts, task_weights=weights, work_dir=str(work_dir),
                        max_trials_global=trials * len(contexts), max_trials_per_task=trials,
                        num_trials_per_iter=min(64, trials),
                        builder=builder, runner=runner, database=database,
                    )
            report.seconds = time.perf_counter() - start
            report.cut = [f"{task}: {why}" for task, why in clock.cut.items()]
            if report.cut and progress:
                progress(f"tuning cut {len(report.cut)} of {len(todo)} tasks: "
                         + "; ".join(report.cut))
            _remember(work_dir, database)
            ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
            # A task the model's budget stopped is tuned again next run; one that ran out of
            # new candidates or its own budget is done with its best.
            unfinished = clock.stopped_by_model_budget()
            ledger.update({k: max(ledger.get(k, 0), want[k]) for t, k in todo
                           if t.task_name not in unfinished})
            tmp = ledger_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(ledger, indent=0, sort_keys=True))
            os.replace(tmp, ledger_path)
        # What the build really used: a task tuned earlier with more trials keeps those records.
        ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
        report.trials_per_task = min((ledger.get(k, 0) for k in keys), default=0)
        report.task_times = _task_times(database, tasks, target)
    return database, report


def _on_stored_workload(task, database):
    """The task, tuned on the database's own copy of its workload. Two structurally equal
    tasks whose blocks are named after different Relax variables (`lv247_red`, `lv271_red`)
    share one workload, the first one stored; a trace recorded on the other's blocks then
    fails to replay on it, and the JSON database refused to load (`ScheduleError: get-block`)."""
    from tvm.s_tir import meta_schedule as ms

    stored = database.commit_workload(task.dispatched[0]).mod
    return ms.ExtractedTask(task.task_name, task.mod, task.target, [stored], task.weight)


def _is_scheduled(mod) -> bool:
    return any(_is_scheduled_func(f) for f in mod.functions.values())


def _task_times(database, tasks, target) -> list[dict]:
    """Best measured time per task from the database, slowest (weighted) first."""
    rows = []
    for task in tasks:
        record = database.query_tuning_record(task.dispatched[0], target, task.task_name)
        secs = [float(s) for s in record.run_secs] if record is not None and record.run_secs else []
        best = sum(secs) / len(secs) * 1e6 if secs else None
        rows.append({"task": task.task_name, "weight": int(task.weight), "best_us": best})
    return sorted(rows, key=lambda r: -(r["weight"] * (r["best_us"] or float("inf"))))


def _pin_runner_initializer():
    from edgebench.compile.workers import pin_runner

    return pin_runner


_DATABASES: dict[str, tuple[tuple, float, object]] = {}


def _stamp(work_dir: Path) -> tuple:
    files = [work_dir / "database_workload.json", work_dir / "database_tuning_record.json"]
    return tuple((f.stat().st_size, f.stat().st_mtime_ns) if f.exists() else None for f in files)


def open_database(work_dir: Path, fresh: bool = False, complete_since: float | None = None):
    """The tuning database, parsed once per process (tens of MB of JSON: tens of seconds, and a
    model build opens it several times). A cached copy is reused while the files are unchanged,
    or, when `complete_since` is given, if it was loaded after that time (the ledger's mtime:
    every record the caller needs was on disk by then, whatever other tuners appended since)."""
    from tvm.s_tir import meta_schedule as ms

    key, stamp = str(work_dir), _stamp(work_dir)
    cached = _DATABASES.get(key)
    usable = cached is not None and not fresh and (
        cached[0] == stamp or (complete_since is not None and cached[1] >= complete_since))
    if not usable:
        try:
            database = ms.database.JSONDatabase(work_dir=key)
        except Exception:  # a record that does not replay on its workload: drop, load again
            with _locked(work_dir):
                drop_unreplayable_records(work_dir)
                database = ms.database.JSONDatabase(work_dir=key)
        _DATABASES[key] = (_stamp(work_dir), time.time(), database)
    return _DATABASES[key][2]


def drop_unreplayable_records(work_dir: Path) -> int:
    """Remove the tuning records whose trace fails on their workload (written before
    _on_stored_workload, or by another tool) so the database loads again; the old file is kept
    as `.bad`, and the ledger forgets those workloads so they are tuned again. Returns how many
    records went."""
    from tvm.s_tir import meta_schedule as ms

    records = work_dir / "database_tuning_record.json"
    workloads = [json.loads(line) for line in
                 (work_dir / "database_workload.json").read_text().splitlines() if line.strip()]
    parsed: dict[int, object] = {}
    keep, bad = [], set()
    for line in records.read_text().splitlines():
        if not line.strip():
            continue
        index, record = json.loads(line)
        try:
            if index not in parsed:
                parsed[index] = ms.database.Workload.from_json(workloads[index])
            ms.database.TuningRecord.from_json(record, parsed[index])
            keep.append(line)
        except Exception:
            bad.add(index)
    dropped = sum(1 for line in records.read_text().splitlines() if line.strip()) - len(keep)
    if dropped:
        logging.getLogger(__name__).warning(
            "tuning database %s: dropped %d records that do not replay on their workload",
            work_dir, dropped)
        os.replace(records, records.with_suffix(".json.bad"))
        tmp = records.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, records)
        ledger_path = work_dir / "trials.json"
        if ledger_path.exists():
            ledger = json.loads(ledger_path.read_text())
            for index in bad:
                ledger.pop(str(workloads[index][0]), None)
            ledger_path.write_text(json.dumps(ledger, indent=0, sort_keys=True))
    return dropped


def _ledger_mtime(work_dir: Path) -> float | None:
    ledger = work_dir / "trials.json"
    return ledger.stat().st_mtime if ledger.exists() else None


def _remember(work_dir: Path, database) -> None:
    """After tuning through `database`, its in-memory records match the files again."""
    _DATABASES[str(work_dir)] = (_stamp(work_dir), time.time(), database)


def apply_database(mod, target, work_dir: Path, progress: Progress | None = None):
    """Apply the tuned schedules; if some task finds no record (a database file caught
    mid-write by another tuner), reload the database once. Returns (module, untuned names)."""
    from tvm import relax, tirx

    def unscheduled(m) -> list[str]:
        return [gv.name_hint for gv, f in m.functions_items()
                if isinstance(f, tirx.PrimFunc) and not _is_scheduled_func(f)]

    if unscheduled(mod):  # a replayed trace may tensorize with the CPU intrinsics
        register_cpu_intrinsics()
    for attempt in range(2):
        database = open_database(work_dir, fresh=attempt > 0,
                                 complete_since=_ledger_mtime(work_dir))
        with target, database:
            out = relax.transform.MetaScheduleApplyDatabase()(mod)
        missing = unscheduled(out)
        if not missing:
            break
    if missing and progress:
        progress(f"warning: no tuning record for {', '.join(missing)} (built untuned)")
    return out, missing


def _is_scheduled_func(func) -> bool:
    return func.attrs is not None and bool(func.attrs.get("tirx.is_scheduled", False))
