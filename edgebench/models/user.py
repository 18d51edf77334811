"""Importing user model factories from `package.module` names or `path/to/file.py` files.

File modules get a deterministic name registered in sys.modules, so objects pickled from
them (e.g. a torch.save'd nn.Module) can be unpickled by another process that first calls
import_user_module on the same path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType


def is_file_target(target: str) -> bool:
    """True if the part before ':factory' names a file rather than a dotted module."""
    return target.endswith(".py") or "/" in target or os.sep in target


def user_module_name(path: str | os.PathLike[str]) -> str:
    """Deterministic module name: edgebench_user_<stem>_<8-hex sha1 of the absolute path>."""
    abspath = Path(path).expanduser().resolve()
    stem = re.sub(r"\W", "_", abspath.stem)
    return f"edgebench_user_{stem}_{hashlib.sha1(str(abspath).encode()).hexdigest()[:8]}"


def import_user_module(path: str | os.PathLike[str]) -> ModuleType:
    """Import a .py file once under user_module_name(path); raises FileNotFoundError if absent."""
    abspath = Path(path).expanduser().resolve()
    name = user_module_name(abspath)
    if (module := sys.modules.get(name)) is not None:
        return module
    if not abspath.is_file():
        raise FileNotFoundError(f"no such file: {abspath}")
    spec = importlib.util.spec_from_file_location(name, abspath)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {abspath} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def import_dotted_module(name: str) -> ModuleType:
    """importlib.import_module, with the working directory importable (as `python -m` does)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    return importlib.import_module(name)
