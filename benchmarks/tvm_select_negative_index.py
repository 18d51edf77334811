"""Minimal repro of a TVM 0.27 importer bug (issue 18's GRU): `x[:, -1]` reads out of bounds.

`ExportedProgramImporter._select` (tvm/relax/frontend/torch/exported_program_translator.py)
emits `R.take(x, R.const(-1), axis)` in take's default mode "fast", which never wraps a
negative index, so the built code reads the row before `x` and the output changes from run to
run. With edgebench's `frontend.wrap_negative_take_indices` the same module is exact.

    python benchmarks/tvm_select_negative_index.py
"""

from __future__ import annotations

import numpy as np
import torch
import tvm
from torch.export import export
from tvm import relax
from tvm.relax.frontend.torch import from_exported_program

from edgebench.frontend import wrap_negative_take_indices


class LastRow(torch.nn.Module):
    """The smallest model: the last row of (x + 1), as `self.fc(gru(x)[0][:, -1])` does."""

    def forward(self, x):
        return (x + 1.0)[:, -1]


def max_errors(mod: tvm.IRModule, x: np.ndarray, ref: np.ndarray, runs: int = 4) -> list[float]:
    ex = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return [float(np.abs(vm["main"](tvm.runtime.tensor(x))[0].numpy() - ref).max())
            for _ in range(runs)]


def main() -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 8)).astype(np.float32)
    model = LastRow().eval()
    ref = model(torch.from_numpy(x)).numpy()
    mod = from_exported_program(export(model, (torch.from_numpy(x),)))
    print("plain TVM import, max |error| per run:", max_errors(mod, x, ref))
    print("with wrap_negative_take_indices:",
          max_errors(wrap_negative_take_indices(mod), x, ref))


if __name__ == "__main__":
    main()
