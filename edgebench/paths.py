"""Filesystem locations shared by edgebench (one cache root so tests can redirect it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_WRITABLE: set[Path] = set()


class CacheError(OSError):
    """The cache root cannot be written (the CLI prints one line and exits 2)."""


def cache_dir() -> Path:
    """Cache root: $EDGEBENCH_CACHE if set, else ~/.cache/edgebench; created on demand and
    checked once per process to be writable, so a read-only cache is one line naming it,
    not an OSError deep inside a row."""
    env = os.environ.get("EDGEBENCH_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "edgebench"
    if path not in _WRITABLE:
        try:
            path.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=path).close()
        except OSError as e:
            raise CacheError(f"cache directory {path} cannot be written ({e.strerror or e}); "
                             "point EDGEBENCH_CACHE at a writable directory, e.g. "
                             "EDGEBENCH_CACHE=/tmp/edgebench-cache") from None
        _WRITABLE.add(path)
    return path
