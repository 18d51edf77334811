"""Progress bars for long runs (tuning, compiling, measuring): where it is and how long is left.

One shared rich display holds every bar, so a tuning bar can open inside the rows bar. Nothing
is drawn in CI (`CI=true`) or when stdout is not a terminal: logs stay plain lines there.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_progress = None  # the live rich Progress while any bar is open
_open = 0
_lock = threading.Lock()


def enabled(stream=None) -> bool:
    """Bars only for a person at a terminal: not in CI, not into a file or pipe."""
    stream = stream or sys.stdout
    return os.environ.get("CI", "").lower() not in ("true", "1") and stream.isatty()


class LineCounter:
    """Lines appended to a file since this counter was made (reads only the new bytes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = path.stat().st_size if path.exists() else 0
        self.lines = 0

    def count(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.pos)
                chunk = fh.read()
        except OSError:
            return self.lines
        self.pos += len(chunk)
        self.lines += chunk.count(b"\n")
        return self.lines


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
def lines_appended(path: Path, description: str, total: int,
                   every_s: float = 1.0) -> Iterator[None]:
    """A bar counting lines appended to `path` while the block runs: MetaSchedule appends
    one line per measured candidate to its tuning-record file, and offers no callback."""
    if not enabled():
        yield
        return
    counter = LineCounter(path)
    done = threading.Event()

    with bar(description, total) as b:
        def poll() -> None:
            while not done.wait(every_s):
                b.update(completed=min(counter.count(), total))

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            b.update(completed=min(counter.count(), total))
