"""FP16 on TVM: float16 compute where the target has FP16 arithmetic (aarch64 +fullfp16,
x86 avx512fp16), proven per kernel from the built assembly; a failed row naming the missing
feature elsewhere. Board tests run on the emulated Cortex-A76 (`arm-dotprod`: qemu-user's CPU
model `max` has FEAT_FP16); without a board they skip, except under CI=true."""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tvm import relax

from edgebench.compile import compile_module
from edgebench.execute.rpc import board_hwcaps, connect_board
from edgebench.frontend import import_model
from edgebench.models import get_model
from edgebench.passes.fp16 import (
    FP16Check,
    FP16Kernel,
    check_fp16_asm,
    fp16_passes,
    half_instructions,
)
from edgebench.pipeline import fp16_refusal, reference_outputs
from edgebench.quantize import parse_quant, quantize
from edgebench.targets import cpu_flags, find_target
from edgebench.variant import VariantError, parse_variant
from edgebench.verify import TOLERANCE, accuracy
from tests.helpers import need_board, run_pipeline


def _build(model, target, out: Path, passes=None, example=None):
    """Cross-compile (untuned) a model's FP16 variant as the pipeline does; no board. `model`
    is a built-in name or a torch module; passes replace fp16_passes() ([] = FP32)."""
    if isinstance(model, str):
        spec = get_model(model)
        model = quantize(spec.build(), parse_quant("fp16"), spec).float_model
        example = spec.example_input()
    mod = import_model(model, example)
    result = compile_module(mod, target, out, 0,
                            extra_passes=fp16_passes() if passes is None else passes,
                            keep_asm=True)
    return result, check_fp16_asm(result.module, result.asm, target.arch)


def test_half_instructions_are_read_per_form() -> None:
    arm = ["fmla\tv0.8h, v1.8h, v2.h[3]", "fmadd\th0, h1, h2, h3", "fadd\tv1.4h, v2.4h, v3.4h",
           "fmla\tv0.4s, v1.4s, v2.4s", "fcvt\ts0, h0", "fmul\ts0, s1, s2", "ldr\th0, [x1]"]
    assert half_instructions(arm, "aarch64") == {"fmla.8h", "fmadd h", "fadd.4h"}
    x86 = ["vfmadd231ph\t%zmm1, %zmm2, %zmm0", "vfmadd231ps\t%zmm1, %zmm2, %zmm0",
           "vcvtph2ps\t%ymm0, %zmm0", "vmaxsh\t%xmm1, %xmm2, %xmm0"]
    assert half_instructions(x86, "x86_64") == {"vfmadd231ph", "vmaxsh"}


def test_check_fails_conv_without_fp16_but_not_a_cast() -> None:
    check = FP16Check([FP16Kernel("fused_conv2d_add", True, True, {"fmla.8h"}),
                       FP16Kernel("fused_matmul_add", True, True, set()),
                       FP16Kernel("fused_conv2d1", True, False, {"fmla.8h"}),
                       FP16Kernel("cast", False, True, set()),
                       FP16Kernel("mean", False, False)])
    assert [k.name for k in check.missing] == ["fused_matmul_add", "fused_conv2d1"]
    assert check.summary() == ("fused_conv2d_add=fp16(fmla.8h);fused_matmul_add=fp16(NO fp16 "
                               "multiply-add);fused_conv2d1=fp32;cast=fp16(no fp16 arithmetic);"
                               "mean=fp32")
    assert "fused_matmul_add=fp16(NO fp16 multiply-add)" in check.error()
    # FP32 multiply-adds with a float16 bias add and ReLU after them: storage, not compute
    epilogue = FP16Kernel("fused_conv2d_add_relu", True, True, {"fadd.8h", "fmaxnm.8h"})
    assert not epilogue.ok and "NO fp16 multiply-add: fadd.8h fmaxnm.8h" in epilogue.describe()


@pytest.mark.slow
@pytest.mark.cross
def test_fullfp16_build_computes_in_fp16_and_a72_build_would_not(tmp_path) -> None:
    """digits-cnn for Cortex-A76 +fullfp16: every conv/matmul kernel has FP16 arithmetic in
    its own assembly, weights are float16 (the library is smaller than FP32's). The same
    float16 module built for Cortex-A72 (no fullfp16) computes in FP32 between conversions,
    and the check says so for every conv/matmul kernel."""
    a76 = find_target("arm-dotprod")
    assert a76.fp16_arith and find_target("rpi5").fp16_arith
    fp16, check = _build("digits-cnn", a76, tmp_path / "fp16.so")
    assert check.missing == []
    required = [k for k in check.kernels if k.required]
    assert len(required) == 4, check.summary()  # 3 conv2d + the linear
    assert all(any(i.endswith(("8h", "4h", " h")) for i in k.instructions) for k in required)
    assert any("fmla.8h" in k.instructions for k in required), check.summary()
    fp32, _ = _build("digits-cnn", a76, tmp_path / "fp32.so", passes=[])
    weights = 4 * sum(p.numel() for p in get_model("digits-cnn").build().parameters())
    saved = fp32.path.stat().st_size - fp16.path.stat().st_size
    assert saved > 0.3 * weights, (saved, weights)  # ~half of the weight bytes

    a72 = find_target("arm")
    assert not a72.fp16_arith
    _, check72 = _build("digits-cnn", a72, tmp_path / "a72.so")
    assert {k.name for k in check72.missing} == {k.name for k in required}

    # float16 tensors but conv/matmul accumulating in float32: the float16 bias adds and
    # ReLUs after them do not pass it for an FP16 build
    acc32 = [relax.transform.ToMixedPrecision(out_dtype="float32"),
             relax.transform.FoldConstant()]
    _, check32 = _build("digits-cnn", a76, tmp_path / "acc32.so", passes=acc32)
    assert check32.missing == [k for k in check32.kernels if k.required]
    assert len(check32.missing) == 4
    assert "NO fp16 multiply-add: fadd.8h fmaxnm.8h" in check32.summary()


@pytest.mark.cross
def test_relu6_clip_builds_in_fp16(tmp_path) -> None:
    """ReLU6 (MobileNetV2) imports as clip with scalar bounds, which TVM's ToMixedPrecision
    rejects; rewritten to maximum/minimum it computes in float16 with the conv."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU6(), torch.nn.Flatten(),
                              torch.nn.Linear(16 * 6 * 6, 10)).eval()
    _, check = _build(net, find_target("arm-dotprod"), tmp_path / "relu6.so",
                      example=torch.randn(1, 3, 8, 8))
    assert check.missing == []
    conv = next(k for k in check.kernels if "conv2d" in k.name)
    assert "maximum" in conv.name and "minimum" in conv.name, check.summary()
    assert {"fcmgt.8h", "fmadd h"} <= conv.instructions, check.summary()  # clip: fcmgt + bsl


def test_avx512fp16_build_computes_in_fp16(tmp_path) -> None:
    """x86 with AVX512-FP16 (Sapphire Rapids and later): vfmadd...ph/sh in every kernel; built
    only, so it runs on any x86 host."""
    spr = replace(find_target("x86-avx512"), name="x86-spr",
                  tvm={"kind": "llvm", "mcpu": "sapphirerapids"})
    assert spr.fp16_arith
    _, check = _build("digits-mlp", spr, tmp_path / "spr.so")
    assert check.missing == [] and len([k for k in check.kernels if k.required]) == 3
    assert all(any(i.startswith("vfmadd") for i in k.instructions)
               for k in check.kernels if k.required), check.summary()


@pytest.mark.slow
def test_rows_refused_without_fp16_arithmetic(tmp_path) -> None:
    """znver4 (no avx512fp16) and Cortex-A72 (no fullfp16): a failed TVM row naming the
    feature, never an FP32 build labelled FP16; the PyTorch FP16 row beside it still runs.
    (The A72 row fails before any board is contacted.)"""
    df = run_pipeline(tmp_path, models=("digits-cnn",), runtimes=("tvm", "pytorch"),
              variants=("quant=fp16",), target="x86-avx512").set_index("runtime")
    assert df.loc["tvm", "status"] == "failed"
    assert "has no FP16 arithmetic (no avx512fp16)" in df.loc["tvm", "error"]
    assert df.loc["pytorch", "status"] == "ok"
    arm = run_pipeline(tmp_path, models=("digits-cnn",), variants=("quant=fp16",), target="arm",
               name="arm.csv").iloc[0]
    assert arm["status"] == "failed"
    assert "target 'arm' has no FP16 arithmetic (no fullfp16)" in arm["error"]
    assert fp16_refusal(find_target("rpi5")) is None
    with pytest.raises(VariantError, match="sparse kernels run FP32 or int8 weights, not fp16"):
        parse_variant("prune=unstructured:0.5+quant=fp16+sparse")


def _check_fp16_row(df) -> None:
    """The digits-cnn FP16 row: ok (within the float16 tolerance of PyTorch's FP16 model),
    every conv/matmul kernel with FP16 arithmetic, accuracy within half a point of FP32's."""
    row = df.set_index("variant").loc["quant=fp16"]
    assert row["status"] == "ok", row["error"]
    assert row["quant_kind"] == "fp16"
    kernels = row["fp16_kernels"]  # our kernels' fmla.8h / vfmadd231ph (TVM's: fmadd h)
    assert "NO fp16" not in kernels and ("fmla.8h" in kernels or "fmadd" in kernels), kernels
    assert 0 < row["verify_err"] < 5 * TOLERANCE["float16"]  # ok: < 2% of max |logit|
    assert row["top1_agreement"] >= 0.99
    spec = get_model("digits-cnn")
    xs, labels = spec.eval_data()
    fp32 = accuracy(reference_outputs(spec.build(), xs)[0], labels.numpy())
    assert row["accuracy"] >= fp32 - 0.005


@pytest.mark.skipif("avx512_fp16" not in cpu_flags(), reason="host has no AVX512-FP16")
def test_digits_cnn_fp16_on_this_host(tmp_path) -> None:
    """x86 hosts with AVX512-FP16 run the FP16 build natively, verified against PyTorch."""
    _check_fp16_row(run_pipeline(tmp_path, models=("digits-cnn",), variants=("quant=fp16",),
                         target="x86-native"))


@pytest.mark.arm
def test_digits_cnn_fp16_on_the_a76_board(tmp_path) -> None:
    """On the (emulated) Cortex-A76: the board grants FP16 arithmetic (HWCAP fphp, asimdhp:
    qemu's CPU model max has FEAT_FP16), and FP16 outputs match PyTorch's FP16 model with the
    accuracy kept."""
    target = need_board(find_target("arm-dotprod"))
    board = connect_board(target)
    try:
        assert {"fphp", "asimdhp"} <= board_hwcaps(board.session, target)
    finally:
        del board
        gc.collect()  # the board serves one session at a time
    _check_fp16_row(run_pipeline(tmp_path, models=("digits-cnn",), variants=("quant=fp16",),
                         target="arm-dotprod"))
