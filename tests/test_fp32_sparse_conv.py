"""The NHWC sparse conv (kernels/fp32_sparse_conv.py) against PyTorch, its FMAs in the built
assembly, the registry's choice of it, and the FP32 lowering running `+sparse` convs on it
with no layout copy between them and our dense kernels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compile.asm import function_bodies, mnemonic
from edgebench.kernels import fp32_conv, registry
from edgebench.kernels import fp32_sparse_conv as sparse
from edgebench.kernels.layer import Epilogue, Layer
from edgebench.targets import find_target
from tests.helpers import lowered_fp32

X86 = find_target("x86-native")
AVX2 = dataclasses.replace(X86, name="x86-avx2", tvm={"kind": "llvm", "mcpu": "haswell"})
needs_avx512 = pytest.mark.skipif(not X86.avx512, reason="needs an AVX-512 host")


def _pruned(k: int, c: int, ks: int, sparsity: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(k, c, ks, ks, generator=g) * 0.2
    return w * (torch.rand(w.shape, generator=g) >= sparsity)


def _nhwc(t: torch.Tensor, channels: int) -> np.ndarray:
    a = t.permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(np.pad(a, [(0, 0)] * 3 + [(0, channels - a.shape[3])]))


def _run(layer: Layer, target, x: np.ndarray, w: np.ndarray, b: np.ndarray,
         res: np.ndarray | None = None) -> np.ndarray:
    """The family's kernel built for target, called on the padded NHWC x (+ residual)."""
    import tvm

    s = sparse.shape(layer, target)
    ph, pw = layer.epilogue.pad
    lib = tvm.compile(tvm.IRModule({"main": sparse.emit(layer, target)}),
                      target=target.tvm_target())
    args = [x, *sparse.pack(layer, target, w, b), *([] if res is None else [res])]
    y = tvm.runtime.tensor(np.zeros((s.n, s.oh + 2 * ph, s.ow + 2 * pw, s.k), np.float32))
    lib["main"](*(tvm.runtime.tensor(a) for a in args), y)
    return y.numpy()


@pytest.mark.parametrize("c,k,hw,ks,stride,pad,dil,sp,act,res,out_pad", [
    (3, 5, 9, 3, 1, 1, 1, 0.5, "relu", False, 0),       # odd channels, K < one vector
    (16, 24, 10, 3, 1, 1, 1, 0.8, "relu", True, 0),     # residual fused
    (17, 40, 11, 3, 2, 1, 1, 0.9, None, False, 1),      # stride 2, odd width, padded output
    (32, 64, 14, 1, 1, 0, 1, 0.95, "relu6", True, 0),   # 1x1, 95%
    (64, 32, 13, 1, 2, 0, 1, 0.7, None, False, 0),      # 1x1 stride 2 (downsample)
    (24, 48, 7, 3, 1, 1, 1, 0.8, "relu", True, 1),      # a 7x7 map: one tile, padded out
    (7, 33, 12, 5, 2, 2, 2, 0.6, "relu", False, 0),     # 5x5, stride 2, dilation 2
    (64, 64, 29, 3, 1, 1, 1, 0.8, "relu", True, 1),     # several tiles, rows across tiles
])
def test_sparse_conv_matches_torch(c, k, hw, ks, stride, pad, dil, sp, act, res, out_pad):
    torch.manual_seed(c * 7 + k)
    x, w, b = torch.randn(1, c, hw, hw), _pruned(k, c, ks, sp, c + k), torch.randn(k)
    ref = F.conv2d(x, w, b, stride, pad, dil)
    r = torch.randn_like(ref)
    ref = ref + r if res else ref
    ref = {None: ref, "relu": ref.relu(), "relu6": ref.clamp(0, 6)}[act]
    layer = Layer("conv2d", c, k, hw, hw, 1, (ks, ks), (stride, stride), (pad, pad),
                  (dil, dil), epilogue=Epilogue(act, res, (out_pad, out_pad)),
                  sparsity=float((w == 0).float().mean()))
    assert sparse.fits(layer, X86) is None
    kp = sparse.shape(layer, X86).k
    y = _run(layer, X86, _nhwc(F.pad(x, (pad,) * 4), c), w.numpy(), b.numpy(),
             _nhwc(r, kp) if res else None)
    inner = y[:, out_pad:y.shape[1] - out_pad, out_pad:y.shape[2] - out_pad]
    np.testing.assert_allclose(inner[..., :k], _nhwc(ref, k), rtol=1e-4, atol=1e-4)
    assert not inner[..., k:].any()  # padded output channels hold 0, like fp32_conv's
    if out_pad:  # the zero border the next conv reads as its padding
        border = y.copy()
        border[:, out_pad:-out_pad, out_pad:-out_pad] = 0
        assert not border.any()


def test_sparse_conv_reads_the_real_channels_only_and_handles_an_empty_weight():
    """An input carrying 24 real channels in 32: NaN in the padded ones changes nothing; a
    weight with no non-zero at all gives act(bias)."""
    torch.manual_seed(4)
    x, w, b = torch.randn(1, 24, 8, 8), _pruned(48, 24, 3, 0.8, 1), torch.randn(48)
    ref = F.conv2d(x, w, b, padding=1).relu()
    xp = _nhwc(F.pad(x, (1,) * 4), 32)
    xp[..., 24:] = np.nan
    layer = Layer("conv2d", 24, 48, 8, 8, 1, (3, 3), padding=(1, 1), cp=32,
                  epilogue=Epilogue("relu"), sparsity=0.8)
    y = _run(layer, X86, xp, w.numpy(), b.numpy())
    np.testing.assert_allclose(y, _nhwc(ref, 48), rtol=1e-4, atol=1e-4)
    y0 = _run(layer, X86, xp, np.zeros_like(w.numpy()), b.numpy())
    np.testing.assert_allclose(y0, np.broadcast_to(np.maximum(b.numpy(), 0), y0.shape))


def test_csr_keeps_only_the_nonzeros_in_tap_order():
    w = _pruned(20, 9, 3, 0.85, 3).numpy()
    layer = Layer("conv2d", 9, 20, 12, 12, 1, (3, 3), (2, 2), (1, 1), sparsity=0.85)
    s = sparse.shape(layer, X86)
    data, offsets, indptr = sparse.pack_csr(w, s)
    assert len(data) == np.count_nonzero(w) and indptr[-1] == len(data)
    assert len(indptr) == s.channel_blocks * s.k + 1
    for row in range(len(indptr) - 1):  # (channel block, output channel): taps in order
        assert (np.diff(offsets[indptr[row]:indptr[row + 1]]) > 0).all()
    for cb in range(s.channel_blocks):  # padded output channels 20..31 hold nothing
        assert indptr[cb * s.k + 20] == indptr[(cb + 1) * s.k]
    assert offsets.max() + s.tiles * s.blocking() * s.lanes <= s.scratch


@needs_avx512
def test_avx2_build_matches_torch():
    """The 8-lane (ymm) build, run on this host (every AVX-512 host has AVX2)."""
    torch.manual_seed(1)
    x, w, b = torch.randn(1, 5, 9, 9), _pruned(20, 5, 3, 0.7, 5), torch.randn(20)
    ref = F.conv2d(x, w, b, padding=1).relu()
    layer = Layer("conv2d", 5, 20, 9, 9, 1, (3, 3), padding=(1, 1),
                  epilogue=Epilogue("relu"), sparsity=0.7)
    assert sparse.shape(layer, AVX2).lanes == 8
    y = _run(layer, AVX2, _nhwc(F.pad(x, (1,) * 4), 5), w.numpy(), b.numpy())
    np.testing.assert_allclose(y[..., :20], _nhwc(ref, 20), rtol=1e-4, atol=1e-4)


@needs_avx512
def test_sparse_conv_computes_with_zmm_fmas_on_memory_operands():
    """The inner loop: a broadcast weight times pixel vectors read straight from the scratch
    (vfmadd231ps zmm with a memory operand), as the row's fp32_layers check expects."""
    import tvm

    layer = Layer("conv2d", 64, 64, 14, 14, 1, (3, 3), padding=(1, 1), sparsity=0.8)
    lib = tvm.compile(tvm.IRModule({"main": sparse.emit(layer, X86).with_attr(
        "global_symbol", "k")}), target=X86.tvm_target())
    asm = "\n".join(m.inspect_source("asm") for m in lib.mod.imports
                    if getattr(m, "kind", "") == "llvm") or lib.mod.inspect_source("asm")
    fmas = [ln for ln in function_bodies(asm)["k"]
            if mnemonic(ln).startswith("vfmadd") and "zmm" in ln]
    assert sum("(%" in ln for ln in fmas) >= sparse.shape(layer, X86).blocking()


def test_registry_takes_the_sparse_conv_only_under_its_option_and_threshold():
    conv = Layer("conv2d", 64, 64, 56, 56, kernel=(3, 3), padding=(1, 1), sparsity=0.8)
    assert registry.choose(conv, X86).NAME == "fp32_conv"  # never without +sparse
    assert registry.choose(conv, X86, {"sparse"}).NAME == "fp32_sparse_conv"
    dense = dataclasses.replace(conv, sparsity=0.1)
    assert registry.choose(dense, X86, {"sparse"}).NAME == "fp32_conv"
    assert "below" in registry.reasons(dense, X86, {"sparse"})["fp32_sparse_conv"]
    dw = Layer("conv2d", 32, 32, 28, 28, kernel=(3, 3), padding=(1, 1), groups=32,
               sparsity=0.8)
    assert registry.choose(dw, X86, {"sparse"}).NAME == "fp32_depthwise"
    arm = find_target("arm-dotprod")  # NEON: our dense conv; +sparse convs stay NCHW there
    assert registry.choose(conv, arm, {"sparse"}).NAME == "fp32_conv"
    assert "x86 only" in registry.reasons(conv, arm, {"sparse"})["fp32_sparse_conv"]
    # the same tensors in and out as the dense conv: a drop-in
    s, d = sparse.shape(conv, X86), fp32_conv.shape(conv, X86)
    assert (s.h, s.w, s.k, s.oh, s.ow) == (d.h, d.w, d.k, d.oh, d.ow)


class Block(nn.Module):
    """A ResNet basic block between a dense stem and a dense head: sparse convs next to
    dense ones, a residual add, a padded producer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU())
        self.c1 = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32))
        self.down = nn.Conv2d(32, 48, 3, stride=2, padding=1)
        self.head = nn.Linear(48, 10)
        for conv in (self.c1[0], self.c2[0], self.down):
            conv.weight.data = _pruned(*conv.weight.shape[:2], 3, 0.8, conv.out_channels)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)

    def forward(self, x):
        h = self.stem(x)
        h = torch.relu(self.c2(self.c1(h)) + h)
        return self.head(torch.relu(self.down(h)).mean((2, 3)))


def _lowered(select, tmp_path):
    torch.manual_seed(0)
    record, result = lowered_fp32(Block().eval(), torch.randn(1, 3, 12, 12), tmp_path,
                                  {"sparse"}, select)
    assert record.check_asm(result.asm) == []  # every kernel has its FMA
    return record


@needs_avx512
def test_lowering_runs_sparse_convs_beside_dense_ones_with_no_layout_copy(tmp_path):
    record = _lowered(None, tmp_path)
    # to_nhwc, stem, pad (the stem's output is also the residual), c1 (writes c2's padded
    # input), c2 (+ residual, ReLU, writes down's padded input), down, global mean, head,
    # crop: the glue of the dense build, no NCHW <-> NHWC copy around the sparse layers
    assert [k.family for k in record.kernels] == [
        "glue", "fp32_conv", "glue", "fp32_sparse_conv", "fp32_sparse_conv",
        "fp32_sparse_conv", "glue", "fp32_dense", "glue"]
    assert [(la.label, la.converted) for la in record.sparse] == [
        ("conv2d#0[32x32x3x3]", True), ("conv2d#1[32x32x3x3]", True),
        ("conv2d#2[48x32x3x3]", True)]


@needs_avx512
def test_lowering_keeps_a_candidate_dense_when_select_says_so(tmp_path):
    seen = []

    def select(rec, layer, sparse_family, dense_family, weight, bias):
        seen.append((layer.epilogue, sparse_family.NAME, dense_family.NAME))
        rec.dense_us, rec.sparse_us = 1.0, 2.0
        return rec.index != 1

    record = _lowered(select, tmp_path)
    assert [k.family for k in record.kernels if k.family != "glue"] == [
        "fp32_conv", "fp32_sparse_conv", "fp32_conv", "fp32_sparse_conv", "fp32_dense"]
    # each candidate judged with its final epilogue: c1 writes c2's padded input, c2 adds
    # the residual, clamps and writes down's padded input
    assert seen[0] == (Epilogue("relu", False, (1, 1)), "fp32_sparse_conv", "fp32_conv")
    assert seen[1][0] == Epilogue("relu", True, (1, 1))
    assert "dense measured faster" in record.sparse[1].fact()


@needs_avx512
def test_measured_choice_times_both_kernels_on_equal_tensors():
    from edgebench.compile.sparse_choice import MeasuredChoice
    from edgebench.passes.sparse_weights import SparseLayer

    conv = Layer("conv2d", 64, 64, 14, 14, 1, (3, 3), padding=(1, 1), sparsity=0.9,
                 epilogue=Epilogue("relu", True))
    w = _pruned(64, 64, 3, 0.9, 9).numpy()
    rec = SparseLayer(0, "conv2d", w.shape, 0.9)
    chose = MeasuredChoice(X86, 0).nhwc(rec, conv, sparse, fp32_conv, w,
                                        np.zeros(64, np.float32))
    assert rec.sparse_us > 0 and rec.dense_us > 0
    assert chose == (rec.sparse_us < rec.dense_us)
