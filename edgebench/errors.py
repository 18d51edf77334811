"""The errors a user can cause: the CLI prints them as one line and exits 2."""

from __future__ import annotations


def user_errors() -> tuple[type[Exception], ...]:
    """Imported lazily so `edgebench models` does not pay for torch and TVM imports."""
    from edgebench.export import ExportError
    from edgebench.models import ModelError
    from edgebench.paths import CacheError
    from edgebench.prune import PruneError
    from edgebench.quantize import QuantError
    from edgebench.report import OutputError
    from edgebench.run.board import BoardSetupError
    from edgebench.run.rpc import BoardError
    from edgebench.runtimes import UnknownRuntime
    from edgebench.targets import TargetError
    from edgebench.variant import VariantError

    return (ModelError, TargetError, VariantError, OutputError, UnknownRuntime, PruneError,
            QuantError, BoardSetupError, CacheError, BoardError, ExportError)


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
