"""edgebench: prune and quantize PyTorch models, compile them with TVM, and prove the gain.

Imports are lazy so that `edgebench models` and the measuring workers stay light. The API
verbs `edgebench.run(...)` and `edgebench.export(...)` are plain functions (pipeline.run,
bundle.export); the stages doing the work are the subpackages `execute` and `bundle`, so no
subpackage shadows a verb.
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

if _os.environ.get("EDGEBENCH_QUIET") == "1":  # set by the CLI; workers inherit it
    from edgebench import quiet as _quiet

    _quiet.apply()

__all__ = ["ExportConfig", "RunConfig", "export", "find_target", "get_model", "list_models", "run"]


def __getattr__(name: str):
    if name in ("run", "RunConfig"):
        from edgebench import pipeline

        return getattr(pipeline, name)
    if name in ("list_models", "get_model"):
        from edgebench import models

        return getattr(models, name)
    if name in ("export", "ExportConfig"):
        from edgebench import bundle

        return getattr(bundle, name)
    if name == "find_target":
        from edgebench.targets import find_target

        return find_target
    raise AttributeError(name)
