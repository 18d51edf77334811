"""The errors a user can cause: the CLI prints them as one line and exits 2."""

from __future__ import annotations


class UsageError(ValueError):
    """A command-line argument names something unusable (missing file, unwritable output)."""


USER_ERRORS = frozenset({
    "edgebench.models.ModelError", "edgebench.prune.config.PruneError",
    "edgebench.quantize.config.QuantError", "edgebench.report.results.OutputError",
    "edgebench.execute.board.BoardSetupError", "edgebench.runtimes.UnknownRuntime",
    "edgebench.targets.TargetError", "edgebench.variant.VariantError",
    "edgebench.errors.UsageError", "edgebench.paths.CacheError", "edgebench.execute.rpc.BoardError",
    "edgebench.bundle.ExportError", "edgebench.compile.toolchain.ToolchainError",
    "edgebench.data.DataError",
})


def is_user_error(e: BaseException) -> bool:
    """By class name, so the CLI's error path imports nothing (no torch, TVM or pandas):
    a typo is answered in well under a second."""
    return any(f"{c.__module__}.{c.__qualname__}" in USER_ERRORS for c in type(e).__mro__)


def user_errors() -> tuple[type[Exception], ...]:
    """The classes themselves (imports torch and TVM: for tests and the pytest plugin)."""
    from edgebench.bundle import ExportError
    from edgebench.data import DataError
    from edgebench.execute.board import BoardSetupError
    from edgebench.execute.rpc import BoardError
    from edgebench.models import ModelError
    from edgebench.paths import CacheError
    from edgebench.prune import PruneError
    from edgebench.quantize import QuantError
    from edgebench.report import OutputError
    from edgebench.runtimes import UnknownRuntime
    from edgebench.targets import TargetError
    from edgebench.variant import VariantError

    return (ModelError, TargetError, VariantError, OutputError, UnknownRuntime, PruneError,
            QuantError, BoardSetupError, CacheError, BoardError, ExportError, UsageError,
            DataError)


_interrupted = False


def on_interrupt(signum: int, _frame) -> None:
    """SIGINT/SIGTERM handler: remember it, then raise KeyboardInterrupt. TVM turns an
    exception raised inside one of its Python callbacks (tuning) into a RuntimeError, so the
    pipeline asks `interrupted()` before recording such an error as a failed row."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def interrupted() -> bool:
    return _interrupted


def error_line(e: BaseException) -> str:
    """The first line of an error, for a failed row's `error` column."""
    lines = str(e).strip().splitlines()
    return lines[0][:500] if lines else type(e).__name__
