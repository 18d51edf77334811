"""Models users bring (issue 18): a GRU whose `[:, -1]` TVM's importer turned into an
out-of-bounds read. Its compiled code must match PyTorch on every repeated run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgebench.compile import compile_module
from edgebench.frontend import import_model
from edgebench.passes.fp32 import Fp32Kernels
from edgebench.targets import find_target
from tests.helpers import build_vm

X86 = find_target("x86-native")


class GRUNet(nn.Module):
    """The user's model from the fault battery: last step of a GRU, then a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.fc = nn.Linear(32, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gru(x)[0][:, -1])


class Picks(nn.Module):
    """Negative selects on two axes, and a take over a flattened tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0
        return y[:, -1] + y[-1, :] + y.flatten()[-3]


def _repeated(run, x: torch.Tensor, ref: np.ndarray, runs: int = 5) -> None:
    """Every run gives the reference (uninitialized reads differ from run to run)."""
    for _ in range(runs):
        np.testing.assert_allclose(run(x), ref, rtol=1e-4, atol=1e-5)


def _take_indices(mod) -> list[int]:
    """Every constant index of every relax.take in the module's main."""
    import tvm
    from tvm import relax

    found: list[int] = []

    def visit(expr):
        if isinstance(expr, relax.Call) and expr.op == tvm.ir.Op.get("relax.take") and \
                isinstance(expr.args[1], tvm.ir.expr.Constant):
            found.extend(int(i) for i in expr.args[1].value.numpy().ravel())

    relax.analysis.post_order_visit(mod["main"], visit)
    return found


def test_imported_takes_have_no_negative_index():
    torch.manual_seed(0)
    x = torch.randn(5, 5)
    indices = _take_indices(import_model(Picks().eval(), x))
    assert len(indices) == 3 and min(indices) >= 0, indices


def test_negative_selects_match_pytorch_on_plain_tvm():
    torch.manual_seed(0)
    x = torch.randn(5, 5)
    model = Picks().eval()
    vm = build_vm(import_model(model, x))
    _repeated(lambda v: vm["main"](_tensor(v))[0].numpy(), x, model(x).numpy())


@pytest.mark.parametrize("steps", [1, 8])
def test_gru_user_model_matches_pytorch_on_every_run(steps, tmp_path):
    import tvm
    from tvm import relax

    torch.manual_seed(0)
    model = GRUNet().eval()
    x = torch.randn(1, steps, 16)
    with torch.no_grad():
        ref = model(x).numpy()
    result = compile_module(import_model(model, x), X86, tmp_path / "gru.so", 0,
                            extra_passes=[Fp32Kernels(X86)])
    vm = relax.VirtualMachine(result.executable, tvm.cpu())
    _repeated(lambda v: vm["main"](_tensor(v))[0].numpy(), x, ref)


def _tensor(x: torch.Tensor):
    import tvm

    return tvm.runtime.tensor(x.numpy())
