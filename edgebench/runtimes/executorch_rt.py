"""ExecuTorch with the XNNPACK backend (optional extra `edgebench[executorch]`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

LIBS = ("torch", "executorch.runtime")  # imported by the worker before its memory baseline


def before_import() -> None:
    """In the worker, before LIBS: the runtime's pybindings import one warning class from
    `executorch.exir`, whose package __init__ loads the whole ahead-of-time compiler (4 s of
    CPU per row, and its memory in the figure). The package is registered bare (its path,
    no __init__ run) so only that submodule loads; a deployment has no exir either."""
    import sys
    import types

    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations or "executorch.exir" in sys.modules:
        return
    exir = types.ModuleType("executorch.exir")
    exir.__path__ = [str(Path(spec.submodule_search_locations[0]) / "exir")]
    sys.modules["executorch.exir"] = exir


def unavailable_reason() -> str | None:
    if importlib.util.find_spec("executorch") is None:
        return "executorch is not installed (pip install 'edgebench[executorch]')"
    return None


def export(model, example, out_dir: Path) -> Path:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    path = out_dir / "model.pte"
    with torch.no_grad():
        ep = torch.export.export(model, (example,))
        program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        path.write_bytes(program.to_executorch().buffer)
    return path


class ETSession:
    def __init__(self, path: str, threads: int) -> None:
        import torch
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime

        # XNNPACK's pool ignores torch's thread setting: size it ourselves.
        _unsafe_reset_threadpool(threads)
        self.torch = torch
        self.method = Runtime.get().load_program(path).load_method("forward")

    def prepare(self, x: np.ndarray) -> object:
        return [self.torch.from_numpy(np.ascontiguousarray(x))]

    def call(self, prepared: object) -> object:
        return self.method.execute(prepared)

    def outputs(self, result: object) -> list[np.ndarray]:
        return [r.detach().numpy().copy() for r in result]


def open_session(path: str, threads: int) -> ETSession:
    return ETSession(path, threads)
