"""Shared pytest setup."""

import os
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Board tests run under qemu (minutes): they are `slow` too, so `pytest -m "not slow"` is
    the fast subset."""
    for item in items:
        if item.get_closest_marker("arm") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests that link code for aarch64 (`arm`, `cross` markers) need a cross compiler: the
    apt one or zig from the `ziglang` wheel (the dev extra installs it). Without either they
    skip with one line naming what to install; under CI=true that is a failure."""
    if not any(item.iter_markers(m) for m in ("arm", "cross")):
        return
    from edgebench.compile.toolchain import available

    missing = available("aarch64-linux-gnu-g++")
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must install a cross compiler: {missing}", pytrace=False)
        pytest.skip(missing)
