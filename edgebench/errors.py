"""The errors a user can cause: the CLI prints them as one line and exits 2."""

from __future__ import annotations


def user_errors() -> tuple[type[Exception], ...]:
    """Imported lazily so `edgebench models` does not pay for torch and TVM imports."""
    from edgebench.data import DataError
    from edgebench.models import ModelError
    from edgebench.prune import PruneError
    from edgebench.quantize import QuantError
    from edgebench.report import OutputError
    from edgebench.run.board import BoardSetupError
    from edgebench.runtimes import UnknownRuntime
    from edgebench.targets import TargetError
    from edgebench.variant import VariantError

    return (ModelError, TargetError, VariantError, OutputError, UnknownRuntime, PruneError,
            QuantError, BoardSetupError, DataError)
