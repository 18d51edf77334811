"""ONNX Runtime, CPU execution provider, all graph optimizations on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

LIBS = ("onnxruntime",)  # imported by the worker before its memory baseline


def unavailable_reason() -> str | None:
    return None if importlib.util.find_spec("onnxruntime") else "onnxruntime is not installed"


def export(model, example, out_dir: Path) -> Path:
    """Export through torch.export (dynamo) and save as one self-contained .onnx file."""
    import contextlib
    import io
    import logging

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision not installed" noise
    path = out_dir / "model.onnx"
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True, external_data=False)
        program.save(str(path))
    return path


class ORTSession:
    def __init__(self, path: str, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name

    def prepare(self, x: np.ndarray) -> object:
        return {self.input: np.ascontiguousarray(x)}

    def call(self, prepared: object) -> object:
        return self.sess.run(None, prepared)

    def outputs(self, result: object) -> list[np.ndarray]:
        return [np.asarray(r) for r in result]


def open_session(path: str, threads: int) -> ORTSession:
    return ORTSession(path, threads)
