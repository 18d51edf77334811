"""PyTorch eager: the variant's nn.Module itself, as a user would run it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LIBS = ("torch",)  # imported by the worker before its memory baseline
USER_MODULES = True  # unpickling a user model needs its module (the others load artifacts)


def export(model, example, out_dir: Path) -> Path:
    import torch

    path = out_dir / "model.pt"
    torch.save(model, path)
    return path


class TorchSession:
    def __init__(self, path: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        self.torch = torch
        self.model = torch.load(path, weights_only=False).eval()

    def prepare(self, x: np.ndarray) -> object:
        return self.torch.from_numpy(np.ascontiguousarray(x))

    def call(self, prepared: object) -> object:
        with self.torch.inference_mode():
            return self.model(prepared)

    def outputs(self, result: object) -> list[np.ndarray]:
        items = result if isinstance(result, tuple | list) else [result]
        return [r.detach().numpy() for r in items]


def open_session(path: str, threads: int) -> TorchSession:
    return TorchSession(path, threads)
