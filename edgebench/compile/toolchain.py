"""The cross compiler a board target names, found on this machine or supplied by pip.

A target file says `cross_compiler = "aarch64-linux-gnu-g++"` (Debian's package). Where that
is not installed, the `ziglang` wheel from PyPI serves instead: `zig c++ -target
aarch64-linux-gnu` links TVM's objects against zig's bundled glibc stubs (an old glibc, so the
library loads on any newer board) and needs nothing outside the Python environment. TVM calls
the compiler as one executable, so zig is reached through a small generated wrapper script.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

INSTALL_HINT = {
    "aarch64-linux-gnu": "apt-get install g++-aarch64-linux-gnu",
    "arm-linux-gnueabihf": "apt-get install g++-arm-linux-gnueabihf",
}


class ToolchainError(RuntimeError):
    """No compiler for a board target: names what to install."""


def _triple(compiler: str) -> str | None:
    """`aarch64-linux-gnu` from `aarch64-linux-gnu-g++` / `-gcc` (None: not a GNU cross name)."""
    for suffix in ("-g++", "-gcc", "-c++", "-cc"):
        if compiler.endswith(suffix):
            return compiler[: -len(suffix)]
    return None


def zig_available() -> bool:
    return importlib.util.find_spec("ziglang") is not None


def _zig_wrapper(triple: str) -> Path:
    """An executable that runs `python -m ziglang c++ -target TRIPLE "$@"` (written once per
    interpreter, under the cache; a temp dir where the cache is read-only)."""
    from edgebench.paths import cache_dir

    script = (f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ziglang cc "
              f"-target {triple} \"$@\"\n")
    for root in (lambda: cache_dir() / "toolchain", lambda: Path(tempfile.gettempdir())
                 / f"edgebench-toolchain-{os.getuid()}"):
        try:
            path = root() / f"zig-{triple}-cc"
            if not path.exists() or path.read_text() != script:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(script)
                tmp.chmod(0o755)
                tmp.replace(path)
            return path
        except OSError:
            continue
    raise ToolchainError(f"cannot write the zig wrapper for {triple} (cache and temp dir "
                         "not writable; set EDGEBENCH_CACHE)")


def resolve(compiler: str) -> str:
    """The command to compile with: `compiler` itself if it is on PATH (or a path), else a
    zig c++ wrapper for its triple if `ziglang` is installed; ToolchainError otherwise."""
    if os.sep in compiler or shutil.which(compiler):
        return compiler
    triple = _triple(compiler)
    if triple in INSTALL_HINT and zig_available():  # a triple zig is known to serve here
        return str(_zig_wrapper(triple))
    apt = INSTALL_HINT.get(triple or "", "your distribution's cross compiler package")
    raise ToolchainError(f"cross compiler '{compiler}' not found: `{apt}`, or `pip install "
                         "ziglang` (edgebench then cross-compiles with zig c++)")


def available(compiler: str) -> str | None:
    """None if `compiler` resolves, else the one line saying what to install."""
    try:
        resolve(compiler)
    except ToolchainError as e:
        return str(e)
    return None
