"""Shared test helpers (not fixtures)."""

from __future__ import annotations

import os
import socket

import pytest

UNSUPPORTED_MODEL = '''
import torch

class Odd(torch.nn.Module):
    def forward(self, x):
        return torch.special.i0(x)

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)
        self.odd = Odd()

    def forward(self, x):
        return self.odd(self.proj(x))

def factory():
    return Net()

def broken():
    raise RuntimeError("no weights here")
'''


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_board(target):
    """The target if its board answers; else skip (fail under CI, where .ci/run starts it)."""
    from edgebench.run.rpc import BoardError, probe_board

    try:
        probe_board(target)
    except BoardError as e:
        if IN_CI:
            pytest.fail(f"CI must start the emulated board (.ci/run): {e}")
        pytest.skip(f"no board running: {e}")
    return target


def need_rootfs() -> None:
    """Skip (fail under CI) unless the emulated board's root fs is built: tests that start
    boards of their own need it."""
    from edgebench.run import board

    if not (board.rootfs() / ".edgebench-recipe").exists():
        if IN_CI:
            pytest.fail("the emulated board's root fs is not built")
        pytest.skip("emulated board root fs not built (`edgebench board build`)")
