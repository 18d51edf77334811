"""A farm of boards behind a TVM tracker: rows measured on every free board at once.

The pipeline compiles rows on the host one after another; for a tracker target each compiled
row is handed to a Farm, whose worker threads (one per board the tracker had free for the key
when the run started) each open their own session (run_remote asks the tracker for a free
board), measure, verify and write the row. So while N boards measure, the host is already
compiling the next rows (at most N rows wait compiled, so memory stays bounded). A board that
dies mid-row fails that row or, with `retries`, measures it once more on another board (the
log and the row's `board` say which); the other rows go on. Rows are appended as they finish
(ResultsWriter.append is thread-safe) so resume works as for a sequential run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebench.errors import error_line
from edgebench.execute.local import WorkerResult
from edgebench.execute.rpc import Board, BoardError, run_remote
from edgebench.measure import MeasureConfig
from edgebench.targets import Target

Log = Callable[[str], None]


@dataclass
class Job:
    """One compiled row waiting for a board: what to upload and how to finish the row."""

    label: str  # "model variant runtime", for the log
    artifact: Path
    inputs: np.ndarray
    finish: Callable[[WorkerResult, Board], None]  # verify + fill the row; raises to fail it
    done: Callable[[str | None], None]  # write the row: error (None: ok)


@dataclass
class Farm:
    """Worker threads measuring rows on the tracker's boards, `boards` at a time."""

    target: Target
    measure: MeasureConfig
    log: Log = print
    boards: int = 1
    retries: int = 1
    intervals: list[tuple[str, str, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.boards, thread_name_prefix="edgebench-board")
        self._slots = threading.Semaphore(2 * self.boards)  # running + compiled ahead
        self._lock = threading.Lock()

    def submit(self, job: Job) -> None:
        """Queue a compiled row; blocks while `boards` rows already wait for a board."""
        self._slots.acquire()
        self._pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        try:
            error = None
            try:
                result, board = self._measure(job)
                job.finish(result, board)
            except Exception as e:  # the row records why; the other rows go on
                error = error_line(e)
            job.done(error)
        except Exception as e:  # nothing to surface it to from this thread but the log
            self.log(f"{job.label}: row not written: {e}")
        finally:
            self._slots.release()

    def _measure(self, job: Job) -> tuple[WorkerResult, Board]:
        failed: list[str] = []
        while True:
            start = time.monotonic()
            try:
                result, board = run_remote(job.artifact, job.inputs, self.target, self.measure,
                                           self.log)
            except BoardError as e:
                mid_run = "failed mid-run" in str(e) or "dropped" in str(e)
                if not mid_run or len(failed) >= self.retries:
                    if failed:
                        raise BoardError(f"{e} (retried after {'; '.join(failed)})") from None
                    raise
                failed.append(str(e))
                self.log(f"{job.label}: {e}; retrying once on another board")
                continue
            with self._lock:
                self.intervals.append((job.label, board.name, start, time.monotonic()))
            if failed:
                self.log(f"{job.label}: measured on {board.name} after {failed[-1]}")
            return result, board

    def close(self, cancel: bool = False) -> None:
        """Wait for every submitted row (their errors are already in their rows); with
        `cancel` (the run was interrupted) only for the rows already on a board: the others
        stay unwritten, so a re-run measures them."""
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def busy_s(self) -> float:
        """Board time summed over rows (span x boards if every board was always busy)."""
        return sum(i[3] - i[2] for i in self.intervals)

    def span_s(self) -> float:
        """Wall time from the first board measurement's start to the last one's end."""
        if not self.intervals:
            return 0.0
        return max(i[3] for i in self.intervals) - min(i[2] for i in self.intervals)


def free_boards(target: Target) -> int:
    """Boards of the target's key the tracker has free now (at least 1: rows then wait for
    one, up to session_timeout)."""
    from edgebench.execute.board import tracker_free
    from edgebench.execute.rpc import probe_board

    probe_board(target)
    return max(1, tracker_free(target.rpc.tracker or "").get(target.rpc.key or "", 0))


def for_target(target: Target, measure: MeasureConfig, log: Log, retries: int = 1
               ) -> Farm | None:
    """A Farm for a tracker target (None otherwise, or when the tracker cannot be reached:
    the rows then fail one by one with the reason, as before)."""
    if target.rpc is None or not target.rpc.tracker:
        return None
    try:
        boards = free_boards(target)
    except BoardError as e:
        log(f"farm: {e}")
        return None
    log(f"farm: {boards} free board(s) of key '{target.rpc.key}' at {target.rpc.tracker}: "
        f"measuring up to {boards} rows at once")
    return Farm(target, measure, log, boards, retries)
