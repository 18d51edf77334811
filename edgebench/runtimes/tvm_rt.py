"""edgebench's own runtime: the tuned TVM library run in the Relax VM.

The worker loads only libtvm_runtime (TVM_USE_RUNTIME_LIB=1), as a deployment would: the
compiler library is 250 MB and has no business in the memory figure.
"""

from __future__ import annotations

import numpy as np

LIBS = ("tvm.runtime", "tvm.runtime.vm")  # imported by the worker before its memory baseline
ENV = {"TVM_USE_RUNTIME_LIB": "1"}  # set in the worker's environment before it starts


def before_import() -> None:
    """In the worker, before LIBS: hide torch. tvm_ffi imports torch when it can (DLPack
    helpers): 2 s of CPU per row and torch's memory in the figure, for a library that needs
    neither (`import torch` raises ImportError from here on, which tvm_ffi expects)."""
    import sys

    sys.modules.setdefault("torch", None)


class TVMSession:
    def __init__(self, path: str, threads: int) -> None:
        import tvm
        from tvm.runtime.vm import VirtualMachine

        self._tvm = tvm
        self.dev = tvm.cpu()
        self.vm = VirtualMachine(tvm.runtime.load_module(path), self.dev)
        self.main = self.vm["main"]

    def prepare(self, x: np.ndarray) -> object:
        return self._tvm.runtime.tensor(np.ascontiguousarray(x), self.dev)

    def call(self, prepared: object) -> object:
        return self.main(prepared)

    def outputs(self, result: object) -> list[np.ndarray]:
        items = result if not hasattr(result, "numpy") else [result]
        return [np.asarray(r.numpy()) for r in items]


def open_session(path: str, threads: int) -> TVMSession:
    return TVMSession(path, threads)
