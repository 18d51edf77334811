"""edgebench: prune and quantize PyTorch models, compile them with TVM, and prove the gain.

Imports are lazy so that `edgebench models` and the measuring workers stay light.
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
        from edgebench import export as ship

        return getattr(ship, name)
    if name == "find_target":
        from edgebench.targets import find_target

        return find_target
    raise AttributeError(name)


def _callable_module(name: str, verb: str) -> None:
    """Make the subpackage `name` callable as the API verb `verb` ("module:function").

    `edgebench.run` and `edgebench.export` are both subpackages (the pipeline's run/ and
    export/ stages) and the Python API's verbs; once anything imports the subpackage, Python
    binds it to the package attribute, so `edgebench.run(...)` must work on the module too."""
    import importlib
    import sys
    import types

    module_name, _, func = verb.partition(":")

    class _Verb(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(importlib.import_module(module_name), func)(*args, **kwargs)

    sys.modules[name].__class__ = _Verb

