"""Runtimes: edgebench's TVM build and the peers measured beside it in the same run.

Each runtime is one module with two halves. `export` runs in the main process and writes the
artifact a deployment would ship (.so, .onnx, .pte, pickled module). `open_session` runs in the
measuring worker process, which imports only that runtime, so its peak memory is its own.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

# The int8 peers build their own int8 artifact from the variant's float model, calibrated on
# quant=static's samples (rows with quant_kind `int8-peer`): opt-in, `--runtimes ...`.
INT8_PEERS = ("onnxruntime-int8", "executorch-int8")
RUNTIMES = ("tvm", "pytorch", "onnxruntime", "executorch", *INT8_PEERS)
PEERS = ("pytorch", "onnxruntime", "executorch", *INT8_PEERS)
DEFAULT_RUNTIMES = ("tvm", "pytorch", "onnxruntime", "executorch")


class Session(Protocol):
    """A loaded artifact: `prepare` converts an input once, `call` runs it (what we time)."""

    def prepare(self, x: np.ndarray) -> object: ...

    def call(self, prepared: object) -> object: ...

    def outputs(self, result: object) -> list[np.ndarray]: ...


class UnknownRuntime(ValueError):
    """A runtime name edgebench does not know."""


def runtime_module(name: str):
    if name not in RUNTIMES:
        raise UnknownRuntime(f"unknown runtime '{name}'; known runtimes: {', '.join(RUNTIMES)}")
    return importlib.import_module(f"edgebench.runtimes.{name.replace('-', '_')}_rt")


def unavailable_reason(name: str) -> str | None:
    """Why a runtime cannot run here (None if it can): checked before a run starts."""
    mod = runtime_module(name)
    return mod.unavailable_reason() if hasattr(mod, "unavailable_reason") else None
