"""Progress bars for long runs (tuning, compiling, measuring): where it is and how long is left.

One shared rich display holds every bar, so a tuning bar can open inside the rows bar. Nothing
is drawn in CI (`CI=true`) or when stdout is not a terminal: logs stay plain lines there.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

_progress = None  # the live rich Progress while any bar is open
_open = 0
_lock = threading.Lock()


def enabled(stream=None) -> bool:
    """Bars only for a person at a terminal: not in CI, not into a file or pipe."""
    stream = stream or sys.stdout
    return os.environ.get("CI", "").lower() not in ("true", "1") and stream.isatty()


class Bar:
    """One bar; every method is a no-op when bars are off."""

    def __init__(self, progress=None, task=None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, completed: float | None = None, description: str | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, description=description)


@contextlib.contextmanager
def bar(description: str, total: float | None) -> Iterator[Bar]:
    """A bar with elapsed and remaining time; removed when the block ends."""
    global _progress, _open
    if not enabled():
        yield Bar()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with _lock:
        if _progress is None:
            _progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("elapsed,"), TimeRemainingColumn(),
                                 TextColumn("left"))
            _progress.start()
        _open += 1
        progress = _progress
        task = progress.add_task(description, total=total)
    try:
        yield Bar(progress, task)
    finally:
        with _lock:
            progress.remove_task(task)
            _open -= 1
            if _open == 0:
                progress.stop()
                _progress = None


@contextlib.contextmanager
def tuning_progress(clock, log: Callable[[str], None] | None = None,
                    every_s: float = 30.0) -> Iterator[None]:
    """Tuning progress from a TuningClock (compile/search.py), which counts every task's
    measured trials and the rest of each ended task as done, so the total is reached: a bar on
    a terminal; otherwise a plain line (tasks, trials, elapsed, ETA from measured trial
    times) at most every `every_s` seconds and when the last task ends."""
    last = [0.0]
    with bar(f"tune 0/{clock.tasks} tasks", clock.total) as b:
        def update(c) -> None:
            b.update(completed=c.done, description=f"tune {c.tasks_done}/{c.tasks} tasks")
            now = time.monotonic()
            if log is not None and not enabled() and (
                    now - last[0] >= every_s or c.tasks_done == c.tasks):
                last[0] = now
                log(c.line())

        clock.on_progress = update
        try:
            yield
        finally:
            clock.on_progress = None
