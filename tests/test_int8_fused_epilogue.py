"""The int8 conv's quantize epilogue (kernels/int8_conv.py QUANTIZE): conv -> float output ->
ReLU -> BatchNorm -> (P x 1) max pool -> pad -> the next layer's input quantize in one
kernel, bit for bit against the oracle's ops (reference.py rule 4's float output, then the
FP32 ops as PyTorch runs them, then rule 1), and its use on CREPE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tvm

from edgebench.compile.asm import functions_using
from edgebench.kernels.int8_conv import QUANTIZE, X86_VNNI, ConvShape, conv_dot_kernel
from edgebench.kernels.layer import Epilogue
from edgebench.passes.int8 import bn_affine
from edgebench.quantize.arith import inv_scale, quantize
from edgebench.targets import find_target
from tests.helpers import conv_ref

TARGET = find_target("x86-native")
pytestmark = pytest.mark.skipif(not TARGET.vnni, reason="this host has no AVX512-VNNI")


# (padded h, w, real c, real k, kernel, stride, pool, borders (top, bottom, left, right), bn)
CASES = [
    (70, 1, 16, 16, (7, 1), (1, 1), 2, (3, 4, 0, 0), True),  # CREPE's block, asymmetric pad
    (75, 1, 5, 20, (4, 1), (2, 1), 2, (0, 0, 0, 0), True),  # odd channels, stride, no pad
    (40, 1, 3, 16, (9, 1), (1, 1), 1, (2, 1, 0, 0), True),  # no pool
    (40, 1, 8, 33, (5, 1), (1, 1), 2, (1, 2, 0, 0), False),  # no BN, odd K
    (12, 9, 7, 16, (3, 3), (1, 1), 1, (1, 1, 2, 1), True),  # a 2-D image (row blocks)
]


def _case(h, w, c, k, kernel, stride, pool, borders, bn, isa=X86_VNNI):
    """(kernel PrimFunc, its arguments, the oracle's output [..., :k]) of one case."""
    rng = np.random.default_rng(h * 31 + c * 7 + k)
    cp, kp = -(-c // 4) * 4, -(-k // isa.lanes) * isa.lanes
    s = ConvShape(1, h, w, cp, kp, *kernel, stride)
    x = np.zeros((1, h, w, cp), np.uint8)
    x[..., :c] = rng.integers(0, 256, (1, h, w, c))
    wq = rng.integers(-127, 128, (k, c, *kernel)).astype(np.int8)
    bias = rng.integers(-20000, 20000, k)
    out_scale = (rng.uniform(0.5, 2.0, k) * 1e-4).astype(np.float32)
    gamma, beta = rng.uniform(-2, 2, k).astype(np.float32), rng.uniform(-1, 1, k).astype(np.float32)
    mean, var = rng.uniform(-1, 1, k).astype(np.float32), rng.uniform(0.05, 3, k).astype(np.float32)
    eps = 0.0010000000474974513
    s_next, z_next = np.float32(0.021), 37

    # the oracle: rule 4's float output, PyTorch's ReLU / BatchNorm / max pool / pad, rule 1
    acc = conv_ref(x[..., :c], wq, s) + bias
    f = torch.from_numpy(acc.astype(np.float32) * out_scale).permute(0, 3, 1, 2)
    f = F.relu(f)
    if bn:
        f = F.batch_norm(f, torch.from_numpy(mean), torch.from_numpy(var),
                         torch.from_numpy(gamma), torch.from_numpy(beta), False, 0.0, eps)
    if pool > 1:
        f = F.max_pool2d(f, (pool, 1), (pool, 1))
    t, b, left, r = borders
    f = F.pad(f, (left, r, t, b))
    want = quantize(f, float(s_next), z_next, 0, 255).permute(0, 2, 3, 1).numpy()

    ep = Epilogue("relu", pad=(t, left), pad_end=(b, r), affine=bn, pool=pool)
    func = conv_dot_kernel(isa, s, "uint8", z_next, 0, 255, requant=QUANTIZE, ep=ep,
                           inv_scale=float(inv_scale(float(s_next))))
    consts = [np.ones(kp, np.float32)]
    consts[0][:k] = out_scale
    if bn:
        a, sh = bn_affine(gamma, beta, mean, var, eps)
        consts += [np.ones(kp, np.float32), np.zeros(kp, np.float32)]
        consts[1][:k], consts[2][:k] = a, sh
    bias_p = np.zeros(kp, np.int32)
    bias_p[:k] = bias + isa.bias_shift(wq)
    args = [x, isa.pack_weights(wq, cp, kp), bias_p, np.concatenate(consts),
            np.zeros((1, want.shape[1], want.shape[2], kp), np.uint8)]
    return func, args, want


@pytest.mark.parametrize("h,w,c,k,kernel,stride,pool,borders,bn", CASES)
def test_quantize_epilogue_matches_oracle_bit_for_bit(h, w, c, k, kernel, stride, pool,
                                                      borders, bn) -> None:
    func, args, want = _case(h, w, c, k, kernel, stride, pool, borders, bn)
    lib = tvm.compile(tvm.IRModule({"main": func}), target=TARGET.tvm_target())
    y = tvm.runtime.tensor(args[-1])
    lib["main"](*[tvm.runtime.tensor(a) for a in args[:-1]], y)
    got = y.numpy()[..., :k]
    assert (got != want).sum() == 0, f"{(got != want).sum()} of {want.size} differ"
    assert len(np.unique(want)) > 20  # the data exercises the range, not one clamp value
    assert functions_using(lib.mod.inspect_source("asm"), "vpdpbusd") == {"conv_dot_f"}


@pytest.mark.arm
def test_quantize_epilogue_on_sdot_bit_exact_on_the_board(tmp_path) -> None:
    """The same epilogue on aarch64's sdot (activations x - 128, 128 * sum(w) in the bias),
    cross-compiled and run on the emulated board: bit for bit, sdot in its code."""
    from tvm.support import cc

    from edgebench.kernels.int8_conv_arm import SDOT
    from tests.helpers import ARM_DOTPROD, call_on_board, need_board

    target = need_board(find_target(ARM_DOTPROD))
    cases = [_case(*case, isa=SDOT) for case in CASES]
    funcs = {f"q{i}": f.with_attr("global_symbol", f"q{i}") for i, (f, _, _) in enumerate(cases)}
    lib = tvm.compile(tvm.IRModule(funcs), target=target.tvm_target()).mod
    assert functions_using(lib.inspect_source("asm"), "sdot") == set(funcs)
    path = tmp_path / "quantize_epilogue.so"
    lib.export_library(str(path), fcompile=cc.cross_compiler(target.cross_compiler))
    got = call_on_board(target, path, [(f"q{i}", args[:-1], args[-1].shape, args[-1].dtype)
                                       for i, (_, args, _) in enumerate(cases)])
    for i, (g, (_, _, want)) in enumerate(zip(got, cases, strict=True)):
        k = want.shape[-1]
        np.testing.assert_array_equal(g[..., :k], want, err_msg=f"case {i}")


def test_bn_affine_is_torch_batch_norm_bit_for_bit() -> None:
    """fma(x, scale, shift) with bn_affine's terms is PyTorch's eval BatchNorm exactly (the FP32
    op the oracle runs), odd channel count, None weight/bias too."""
    rng = np.random.default_rng(5)
    k = 37
    x = torch.from_numpy(np.maximum(rng.normal(0, 3, (1, k, 513, 1)), 0).astype(np.float32))
    mean, var = rng.uniform(-1, 1, k).astype(np.float32), rng.uniform(0.01, 4, k).astype(np.float32)
    gamma, beta = rng.uniform(-2, 2, k).astype(np.float32), rng.uniform(-1, 1, k).astype(np.float32)
    for g, b in ((gamma, beta), (None, None)):
        want = F.batch_norm(x, torch.from_numpy(mean), torch.from_numpy(var),
                            None if g is None else torch.from_numpy(g),
                            None if b is None else torch.from_numpy(b), False, 0.0, 1e-3).numpy()
        scale, shift = bn_affine(g, b, mean, var, 1e-3)
        xs = x.numpy().astype(np.float64)
        got = (xs * scale.reshape(1, k, 1, 1) + shift.reshape(1, k, 1, 1)).astype(np.float32)
        assert (got != want).sum() == 0


class _MiniCrepe(torch.nn.Module):
    """CREPE's blocks in small: pad -> conv -> ReLU -> BN -> (2 x 1) max pool, one block
    without the pool, odd widths (20 output channels: padded to 32 by the kernel), the first
    conv one channel at stride 4 (4 rows as 4 channels), then permute/flatten -> linear
    (float out: no FP32 op after it, so bit exact end to end)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        widths, kernels = [20, 12, 16], [16, 5, 4]
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(cin, cout, (k, 1), stride=(4, 1) if i == 0 else (1, 1))
            for i, (cin, cout, k) in enumerate(zip([1, 20, 12], widths, kernels, strict=True)))
        self.bns = torch.nn.ModuleList(torch.nn.BatchNorm2d(c, eps=1e-3) for c in widths)
        for bn in self.bns:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.2, 2)
            bn.weight.data.uniform_(0.5, 2)
            bn.bias.data.uniform_(-0.5, 0.5)
        self.fc = torch.nn.Linear(16 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None, :, None]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            x = F.pad(x, (0, 0, 6, 6) if i == 0 else (0, 0, 2, 3 - i))
            x = bn(F.relu(conv(x)))
            if i != 1:
                x = F.max_pool2d(x, (2, 1), (2, 1))
        return self.fc(x.permute(0, 2, 1, 3).flatten(1))


def _mini_crepe(target):
    """(quantized result, lowering for `target`) of _MiniCrepe, the chains checked fused."""
    from edgebench.models import ModelSpec
    from edgebench.passes.int8 import export_float, lower_int8
    from edgebench.quantize import parse_quant, quantize

    spec = ModelSpec(name="mini-crepe", description="test net", input_shape=(1, 64),
                     evaluation="fidelity", fidelity_samples=8, build=lambda: _MiniCrepe().eval())
    result = quantize(spec.build(), parse_quant("static"), spec)
    low = lower_int8(export_float(result.float_model, spec.example_input()),
                     result.description, target)
    label = "vnni" if target.vnni else "sdot"
    facts = dict(la.describe().split("=", 1) for la in low.layers if la.kind != "int8-move")
    assert [facts[n] for n in ("conv2d", "conv2d_1", "conv2d_2")] == [f"int8/{label}"] * 3
    chain = [n for n in facts if n.startswith(("batch_norm", "max_pool2d", "pad_", "permute",
                                               "flatten"))]
    assert len(chain) == 3 + 2 + 2 + 2 and all(facts[n] == "fused" for n in chain)
    # the first conv reads its 76 quantized samples as 19 rows of 4 channels
    assert 'R.Tensor((1, 19, 1, 4), dtype="uint8")' in low.mod.script()
    return result, low


def test_crepe_like_chain_fused_and_bit_exact() -> None:
    from tests.helpers import build_vm, oracle, run_vm

    result, low = _mini_crepe(TARGET)
    xs = torch.randn(16, 1, 64) * 2
    np.testing.assert_array_equal(run_vm(build_vm(low.mod, low), xs), oracle(result, xs))


@pytest.mark.arm
def test_crepe_like_chain_on_sdot_bit_exact_on_the_board(tmp_path) -> None:
    from tests.helpers import ARM_DOTPROD, build_lowering_arm, need_board, oracle, run_on_board

    target = need_board(find_target(ARM_DOTPROD))
    result, low = _mini_crepe(target)
    xs = torch.randn(8, 1, 64) * 2
    got = run_on_board(target, build_lowering_arm(low, tmp_path), xs)
    np.testing.assert_array_equal(got, oracle(result, xs))


@pytest.mark.slow
def test_crepe_tiny_int8_fused_layers_match_oracle() -> None:
    """crepe-tiny int8: every conv on vpdpbusd writing the next conv's input, no FP32
    batch_norm / max_pool2d / pad left; outputs equal to the oracle's up to the last op (TVM's
    vs PyTorch's sigmoid, an ulp or two)."""
    from edgebench.models import get_model
    from edgebench.models.crepe import CrepeError, weights_path
    from edgebench.passes.int8 import export_float, lower_int8
    from edgebench.quantize import parse_quant, quantize
    from tests.helpers import build_vm, oracle, run_vm

    try:
        weights_path("tiny")
    except CrepeError as e:
        pytest.skip(str(e))
    spec = get_model("crepe-tiny")
    result = quantize(spec.build(), parse_quant("static"), spec)
    low = lower_int8(export_float(result.float_model, spec.example_input()),
                     result.description, TARGET)
    summary = low.summary()
    vm = build_vm(low.mod, low)
    assert "batch_norm=fp32" not in summary and "max_pool2d=fp32" not in summary
    facts = low.layer_facts().text()
    assert facts.count("=int8/vnni(vpdpbusd)") == 6 and "linear=float-out/vnni(vpdpbusd)" in facts
    xs = spec.eval_data()[0][:16]
    got, want = run_vm(vm, xs), oracle(result, xs)
    assert np.abs(got - want).max() <= 3e-7
