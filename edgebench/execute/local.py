"""Local execution: one pinned worker process per (artifact, runtime)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.measure import MeasureConfig
from edgebench.paths import cache_dir

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a forked child: ask Linux to SIGKILL it when its parent dies; if the parent is
    already gone (it died between fork and here), exit now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker's own timeout still bounds it
        return
    if os.getppid() != parent:
        os._exit(1)


@contextlib.contextmanager
def core_lock(cores: tuple[int, ...], log: Callable[[str], None] = print) -> Iterator[None]:
    """Exclusive use of `cores` for measuring, across processes: one lock file per core under
    the cache (flock: released by the kernel if the holder dies). A second run measuring on
    the same cores waits, naming the pid that holds them."""
    lock_dir = cache_dir() / "locks"
    lock_dir.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        for core in sorted(set(cores)):
            fh = stack.enter_context(open(lock_dir / f"core-{core}.lock", "a+"))
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "?"
                log(f"waiting: cores {' '.join(map(str, cores))} are measuring for pid {holder}")
                fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        yield


class WorkerError(RuntimeError):
    """The measuring worker crashed, timed out or reported an error."""


@dataclass
class WorkerResult:
    stats: dict
    outputs: list[np.ndarray]


def thread_env(threads: int) -> dict[str, str]:
    """Thread-count variables every runtime reads at start-up (set before it imports)."""
    n = str(threads)
    return {"TVM_NUM_THREADS": n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n,
            "OPENBLAS_NUM_THREADS": n}


def run_worker(runtime: str, artifact: Path, inputs: np.ndarray, threads: int,
               cores: tuple[int, ...], measure: MeasureConfig, user_modules: list[str] = (),
               timeout_s: float = 1800.0, log: Callable[[str], None] = print) -> WorkerResult:
    """Run the worker pinned to `cores` with `threads` threads; return its stats and outputs.
    It holds the cores' measuring locks while it runs (another run waits, saying so), and
    dies with this process (SIGKILL of the parent leaves no orphan measuring on the cores)."""
    with tempfile.TemporaryDirectory(prefix="edgebench-worker-") as tmp:
        tmpdir = Path(tmp)
        np.savez(tmpdir / "inputs.npz", x=inputs)
        job = {
            "runtime": runtime, "artifact": str(artifact), "threads": threads,
            "inputs": str(tmpdir / "inputs.npz"), "outputs": str(tmpdir / "outputs.npz"),
            "result": str(tmpdir / "result.json"), "measure": measure.to_dict(),
            "user_modules": list(user_modules),
        }
        (tmpdir / "job.json").write_text(json.dumps(job))
        from edgebench.runtimes import runtime_module

        env = {**os.environ, **thread_env(threads), **getattr(runtime_module(runtime), "ENV", {})}
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        parent = os.getpid()

        def start() -> None:  # in the child, before exec
            os.sched_setaffinity(0, set(cores))
            die_with_parent(parent)

        try:
            with core_lock(cores, log):
                proc = subprocess.run(
                    [sys.executable, "-m", "edgebench.execute.worker", str(tmpdir / "job.json")],
                    env=env, capture_output=True, text=True, timeout=timeout_s,
                    preexec_fn=start,
                )
        except subprocess.TimeoutExpired:
            raise WorkerError(f"{runtime} worker timed out after {timeout_s:.0f} s") from None
        result_path = tmpdir / "result.json"
        if proc.returncode != 0 or not result_path.exists():
            code = proc.returncode
            why = (f"killed by {signal.Signals(-code).name}" if code < 0
                   else f"exit code {code}")
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
            raise WorkerError(f"{runtime} worker crashed ({why}) {tail[0]}".strip())
        stats = json.loads(result_path.read_text())
        if "error" in stats:
            raise WorkerError(f"{runtime}: {stats['error']}")
        with np.load(tmpdir / "outputs.npz") as data:
            outputs = [data[f"arr_{i}"] for i in range(len(data.files))]
        return WorkerResult(stats, outputs)
