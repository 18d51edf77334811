"""Importing user model factories from `package.module` names or `path/to/file.py` files.

File modules get a deterministic name registered in sys.modules, so objects pickled from
them (e.g. a torch.save'd nn.Module) can be unpickled by another process that first calls
import_user_module on the same path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import operator
import os
import re
import sys
from collections.abc import Callable
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


def load_callable(ref: str, kind: str, error: type[Exception]) -> Callable[..., object]:
    """The callable `attr` of `file.py:attr` or `package.module:attr`; `error` (one line
    naming `kind` and `ref`) if the module or attribute cannot be had."""
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise error(f"{kind} '{ref}': expected package.module:name or file.py:name")
    try:
        module = import_user_module(target) if is_file_target(target) else (
            import_dotted_module(target))
    except FileNotFoundError as e:
        raise error(f"{kind} '{ref}': file not found: {target}") from e
    except ModuleNotFoundError as e:
        raise error(f"{kind} '{ref}': cannot import module '{target}': {e}") from e
    except Exception as e:
        raise error(f"{kind} '{ref}': importing '{target}' failed: "
                    f"{type(e).__name__}: {e}") from e
    try:
        fn = operator.attrgetter(attr)(module)
    except AttributeError as e:
        raise error(f"{kind} '{ref}': '{target}' has no attribute '{attr}'") from e
    if not callable(fn):
        raise error(f"{kind} '{ref}': '{attr}' in '{target}' is not callable")
    return fn
