"""Shared pytest setup."""

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def edgebench_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point EDGEBENCH_CACHE at a fresh temp dir so tests never touch the user's cache."""
    path = tmp_path_factory.mktemp("edgebench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEBENCH_CACHE", str(path))
        yield path
