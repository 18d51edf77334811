"""Filesystem locations shared by edgebench (one cache root so tests can redirect it)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Cache root: $EDGEBENCH_CACHE if set, else ~/.cache/edgebench; created on demand."""
    env = os.environ.get("EDGEBENCH_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "edgebench"
    path.mkdir(parents=True, exist_ok=True)
    return path
