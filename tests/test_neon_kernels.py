"""Our float kernels on aarch64 NEON (kernels/fp32_*.py built from `layer.vectors(target)`):
the registry's choice per target, each family against PyTorch on random data across shapes,
cross-compiled and run on the emulated board, with `fmla` on `.4s` vectors in every kernel's
own assembly; whole models built with zero tuning tasks and verified on the board. Without a
board the board tests skip, except under CI=true (.ci/run starts it)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgebench.compile.asm import function_bodies, mnemonic
from edgebench.kernels import registry
from edgebench.kernels.layer import Epilogue, Layer, vectors
from edgebench.targets import find_target
from tests.helpers import call_on_board, need_board, run_pipeline

A72 = find_target("arm")  # Cortex-A72, NEON, no fullfp16: the emulated board's default code
A76 = find_target("arm-dotprod")  # Cortex-A76 +dotprod +fullfp16 on the same board


def _act(y: torch.Tensor, act: str | None) -> torch.Tensor:
    return {None: y, "relu": y.relu(), "relu6": y.clamp(0, 6)}[act]


def _nhwc(t: torch.Tensor, channels: int) -> np.ndarray:
    a = t.permute(0, 2, 3, 1).numpy()
    return np.pad(a, [(0, 0)] * 3 + [(0, channels - a.shape[3])])


@dataclass
class Case:
    """One kernel call: the layer, its arguments (input, packed constants, [residual]) and
    the expected output (PyTorch's) in the kernel's layout, the real channels first."""

    layer: Layer
    args: list[np.ndarray]
    want: np.ndarray
    out_shape: tuple[int, ...]


def conv(c, k, hw, ks, stride=1, pad=0, dil=1, act=None, res=False, groups=1) -> Layer:
    return Layer("conv2d", c, k, hw, hw, kernel=(ks, ks), stride=(stride, stride),
                 padding=(pad, pad), dilation=(dil, dil), groups=groups,
                 epilogue=Epilogue(act, res))


def dense(m, c, k, act=None) -> Layer:
    return Layer("linear", c, k, 1, m, epilogue=Epilogue(act))


def bmm(b, m, k, n) -> Layer:
    return Layer("matmul", k, n, 1, m, b)


# odd channels, K not a multiple of the tile, residual, 5x5 stride 2 dilation 2, a 7x7 stem,
# 1x1 (plain and stride 2), row widths the 4- and 6-pixel tiles do not divide
CONVS = [conv(3, 5, 9, 3, pad=1, act="relu"), conv(16, 24, 10, 3, pad=1, act="relu", res=True),
         conv(7, 33, 11, 5, 2, 1, 2), conv(3, 16, 23, 7, 2, 3, act="relu"),
         conv(32, 64, 14, 1, act="relu6", res=True), conv(64, 36, 13, 1, 2)]
DEPTHWISE = [conv(18, 18, 9, 3, 2, 1, act="relu", groups=18),
             conv(16, 16, 7, 5, pad=2, res=True, groups=16),
             conv(32, 32, 12, 3, pad=1, act="relu6", groups=32)]
# a batch-1 GEMV (784 -> 200, the MLP's), a narrow one, and rows (a row tail)
DENSE = [dense(1, 784, 200, "relu"), dense(1, 64, 10), dense(13, 96, 40, "relu")]
BMMS = [bmm(2, 13, 7, 16), bmm(1, 9, 33, 24), bmm(4, 32, 16, 32)]
LAYERS = CONVS + DEPTHWISE + DENSE + BMMS


def make_case(layer: Layer, target, seed: int) -> Case:
    """Random data for the layer, the kernel's arguments as the lowering packs them (in the
    layer's dtype), and PyTorch's float32 result from the same (float16-rounded) data."""
    family = registry.choose(layer, target)
    assert family is not None, registry.reasons(layer, target)
    s = family.shape(layer, target)
    torch.manual_seed(seed)

    def rand(*shape, scale=1.0):  # data exactly representable in the layer's dtype
        t = torch.randn(*shape) * scale
        return t.half().float() if layer.dtype == "float16" else t

    def case(args, want, out_shape) -> Case:
        return Case(layer, [np.asarray(a, layer.dtype) for a in args], want, out_shape)

    ep = layer.epilogue
    if layer.kind == "matmul":
        a, w = rand(layer.n, layer.w, layer.c), rand(layer.n, layer.c, layer.k)
        return case([a.numpy(), w.numpy()], torch.bmm(a, w).numpy(),
                    (layer.n, layer.w, layer.k))
    if layer.kind == "linear":
        x, w, b = rand(layer.w, layer.c), rand(layer.k, layer.c, scale=0.1), rand(layer.k)
        want = _act(F.linear(x, w, b), ep.act).numpy()
        return case([x.numpy(), *family.pack(layer, target, w.numpy(), b.numpy())], want,
                    (layer.w, s.k))
    kh, kw = layer.kernel
    cin = 1 if layer.depthwise else layer.c
    x, w, b = (rand(1, layer.c, layer.h, layer.w), rand(layer.k, cin, kh, kw, scale=0.2),
               rand(layer.k))
    ref = F.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
    r = rand(*ref.shape)
    ref = _act(ref + r if ep.residual else ref, ep.act)
    kp = s.c if layer.depthwise else s.k
    cx = kp if layer.depthwise else layer.c  # depthwise reads whole channel vectors
    ph, pw = layer.padding
    args = [_nhwc(F.pad(x, (pw, pw, ph, ph)), cx),
            *family.pack(layer, target, w.numpy(), b.numpy())]
    if ep.residual:
        args.append(_nhwc(r, kp))
    return case(args, _nhwc(ref, kp), (1, s.oh, s.ow, kp))


def build(cases: list[Case], target, path: Path | None = None) -> str:
    """All cases' kernels (emitted by the registry's families) in one library `k0`, `k1`,
    ...; cross-compiled to `path` if given; returns its assembly."""
    import tvm
    from tvm.support import cc

    funcs = {f"k{i}": registry.choose(c.layer, target).emit(c.layer, target)
             .with_attr("global_symbol", f"k{i}") for i, c in enumerate(cases)}
    lib = tvm.compile(tvm.IRModule(funcs), target=target.tvm_target()).mod
    if path is not None:
        lib.export_library(str(path), fcompile=cc.cross_compiler(target.cross_compiler))
    return lib.inspect_source("asm")


def fma_kernels(asm: str, register: str) -> set[str]:
    """The functions whose body has `fmla` on `register` vectors (".4s", ".8h")."""
    return {name for name, lines in function_bodies(asm).items()
            if any(mnemonic(ln) == "fmla" and f"{register}," in ln for ln in lines)}


def run_cases(target, path: Path, cases: list[Case]) -> list[np.ndarray]:
    """Every case's kernel called on the board; the outputs as float32."""
    got = call_on_board(target, path, [(f"k{i}", c.args, c.out_shape, c.layer.dtype)
                                       for i, c in enumerate(cases)])
    return [g.astype(np.float32) for g in got]


# ------------------------------------------------------------------------------ registry


def test_registry_picks_neon_families_and_tiles_per_core():
    """aarch64 NEON: every FP32 family on 4-lane vectors; the register tile per the target
    file's core (XNNPACK's 4 x 8 on Cortex-A72, 6 x 8 on the two-pipe A76); FP16 layers only
    where the target has +fullfp16 (8 lanes), with a reason naming the feature elsewhere."""
    names = {la: getattr(registry.choose(la, A72), "NAME", None) for la in
             (CONVS[0], DEPTHWISE[0], DENSE[0], BMMS[0], conv(32, 64, 8, 1, groups=2))}
    assert list(names.values()) == ["fp32_conv", "fp32_depthwise", "fp32_dense", "fp32_bmm",
                                    None]
    big = conv(64, 64, 56, 3, pad=1)
    assert registry.choose(big, A72).shape(big, A72).blocking() == (4, 2)  # 4 px x 8 ch
    assert registry.choose(big, A76).shape(big, A76).blocking() == (6, 2)  # 6 px x 8 ch
    assert vectors(find_target("rpi4")).pixels == 4 and vectors(find_target("rpi5")).pixels == 6
    assert vectors(find_target("aarch64")).lanes == 4  # generic ARMv8-A: NEON is baseline
    rows = dense(128, 64, 64)
    assert registry.choose(rows, A72).shape(rows, A72).blocking() == (4, 2)
    gemv = dense(1, 512, 1000)
    assert registry.choose(gemv, A72).shape(gemv, A72).blocking() == (1, 8)  # 8 FMA chains
    half = replace(big, dtype="float16")
    assert registry.choose(half, A72) is None
    assert "no fullfp16" in registry.reasons(half, A72)["fp32_conv"]
    assert registry.choose(half, A76).shape(half, A76).lanes == 8
    assert vectors(A76, "float16").register == ".8h" and vectors(A72).register == ".4s"
    assert registry.choose(big, A72, {"winograd"}).NAME == "fp32_conv"  # x86 only
    assert find_target("rpi3").arch == "armv7" and vectors(find_target("rpi3")) is None


# ------------------------------------------------------------------ kernels on the board


@pytest.fixture(scope="module")
def board():
    return need_board(A72)


@pytest.mark.slow
@pytest.mark.cross
@pytest.mark.parametrize("dtype,register,other", [("float32", ".4s", ".8h"),
                                                  ("float16", ".8h", ".4s")])
def test_neon_kernels_have_fmla_on_their_vectors(tmp_path, dtype, register, other):
    """No board needed: every kernel's own body multiply-adds with `fmla` on `.4s` (FP32,
    Cortex-A72) or, from the same builders, on 8 float16 lanes `.8h` (+fullfp16, A76)."""
    target = A72 if dtype == "float32" else A76
    cases = [make_case(replace(la, dtype=dtype), target, i) for i, la in enumerate(LAYERS)]
    asm = build(cases, target, tmp_path / "k.so")
    assert fma_kernels(asm, register) >= {f"k{i}" for i in range(len(cases))}
    assert not fma_kernels(asm, other)


@pytest.mark.arm
def test_neon_kernels_match_torch_on_the_board(board, tmp_path):
    cases = [make_case(la, A72, i) for i, la in enumerate(LAYERS)]
    path = tmp_path / "neon.so"
    build(cases, A72, path)
    for i, (c, got) in enumerate(zip(cases, run_cases(board, path, cases), strict=True)):
        k = c.layer.k
        np.testing.assert_allclose(got[..., :k], c.want[..., :k], rtol=1e-4, atol=1e-4,
                                   err_msg=f"case {i}: {c.layer}")
        assert not got[..., k:].any(), f"case {i}: padded channels hold 0"
        assert np.abs(c.want).max() > 0.5


# ------------------------------------------------------------------------------- FP16

HALF = [replace(la, dtype="float16") for la in LAYERS]
SPR = replace(find_target("x86-avx512"), name="x86-spr",
              tvm={"kind": "llvm", "mcpu": "sapphirerapids"})  # AVX512-FP16 (built only here)


@pytest.mark.arm
def test_fp16_kernels_match_torch_on_the_a76_board(tmp_path):
    """Accumulating in float16 (as passes/fp16.py's build does), each kernel stays within
    the FP16 rows' tolerance (2% of the output's largest magnitude) of PyTorch's float32
    result on the same float16 data; never exact (it does compute in float16)."""
    from edgebench.verify import TOLERANCE

    board = need_board(A76)
    cases = [make_case(la, A76, i) for i, la in enumerate(HALF)]
    path = tmp_path / "half.so"
    build(cases, A76, path)
    errors = []
    for i, (c, got) in enumerate(zip(cases, run_cases(board, path, cases), strict=True)):
        k = c.layer.k
        err = np.abs(got[..., :k] - c.want[..., :k]).max() / np.abs(c.want).max()
        assert err < TOLERANCE["float16"] / 4, f"case {i}: {c.layer}: {err}"
        assert not got[..., k:].any(), f"case {i}: padded channels hold 0"
        errors.append(err)
    assert max(errors) > 1e-4  # float16 arithmetic, not float32 on float16 storage


@pytest.mark.slow
def test_avx512fp16_kernels_build_with_vfmadd231ph():
    """x86 AVX512-FP16 (Sapphire Rapids and later): 32 float16 lanes, `vfmadd231ph` on zmm
    in every kernel. Built only: this host (Zen 4) has no avx512fp16 to run it."""
    assert vectors(SPR, "float16").lanes == 32 and vectors(SPR, "float16").register == "zmm"
    assert vectors(find_target("x86-avx512"), "float16") is None  # znver4: no avx512fp16
    cases = [make_case(la, SPR, i) for i, la in enumerate(HALF)
             if la.kind != "matmul" or la.k % 32 == 0]  # bmm: whole 32-lane columns
    bodies = function_bodies(build(cases, SPR))
    for i in range(len(cases)):
        assert any(mnemonic(ln).startswith("vfmadd") and mnemonic(ln).endswith("ph")
                   and "zmm" in ln for ln in bodies[f"k{i}"]), f"case {i}"


# ----------------------------------------------------------------------- whole models


@pytest.mark.arm
def test_digits_models_fp32_on_neon_kernels_on_the_board(board, tmp_path):
    """digits-cnn and digits-mlp built for the emulated Cortex-A72 with --trials 32 and zero
    tuning tasks: every conv/linear on our NEON kernels (fmla .4s checked per kernel),
    verified on the board against PyTorch. (Through the farm's tracker: tuning on a direct
    host:port board builds an RPCRunner that asks for a tracker even with nothing to tune.)"""
    need_board(find_target("arm-farm"))
    df = run_pipeline(tmp_path, models=("digits-cnn", "digits-mlp"), variants=("fp32",),
                      target="arm-farm", trials=32)
    for _, row in df.iterrows():
        assert row["status"] == "ok", row["error"]
        assert bool(row["emulated"]) and row["tasks"] == 0, row["fp32_layers"]
        layers = str(row["fp32_layers"])
        assert "NO-FMA" not in layers and "| tvm" not in layers, layers
        assert row["verify_err"] < 1e-3 and row["accuracy"] > 0.9
    cnn = df.set_index("model").loc["digits-cnn", "fp32_layers"]
    assert "fp32_conv:" in cnn and "fp32_dense:" in cnn, cnn


@pytest.mark.arm
def test_fp16_models_on_neon_kernels_on_the_board(tmp_path):
    """quant=fp16 on the farm's boards running Cortex-A76 +fullfp16 code (a target file of
    ours: qemu's CPU model max has FEAT_FP16), --trials 32: zero tuning tasks, every
    conv/linear on our float16 kernels (fmla .8h), verified against PyTorch's FP16 model
    within the float16 tolerance (the MLP's worst logit error, 0.195, is TVM's own float16
    build's too: results/fp16/), accuracy kept."""
    farm = find_target("arm-farm").path.read_text().replace(
        'mcpu = "cortex-a72"', 'mcpu = "cortex-a76"').replace(
        'mattr = ["+neon"]', 'mattr = ["+neon", "+fullfp16"]').replace(
        'name = "arm-farm"', 'name = "arm-farm-a76"')
    path = tmp_path / "arm-farm-a76.toml"
    path.write_text(farm)
    assert need_board(find_target(path)).fp16_arith
    df = run_pipeline(tmp_path, models=("digits-cnn", "mlp"), variants=("fp32", "quant=fp16"),
                      target=str(path), trials=32).set_index(["model", "variant"])
    for model in ("digits-cnn", "mlp"):
        row, fp32 = df.loc[(model, "quant=fp16")], df.loc[(model, "fp32")]
        assert row["status"] == "ok" and fp32["status"] == "ok", (row["error"], fp32["error"])
        assert row["quant_kind"] == "fp16" and row["tasks"] == 0
        kernels = str(row["fp16_kernels"])
        assert "fp16_dense_" in kernels and "fmla.8h" in kernels, kernels
        assert "NO fp16" not in kernels and "=fp32" not in kernels, kernels
        assert "NO-FMA" not in str(row["fp32_layers"]), row["fp32_layers"]
        assert row["verify_err"] > 0  # float16 arithmetic (ok: within its tolerance)
        assert row["accuracy"] >= fp32["accuracy"] - 0.005
    assert "fp16_conv_" in str(df.loc[("digits-cnn", "quant=fp16"), "fp16_kernels"])
    # float16 weights: the MLP's 23 MB of FP32 weights halve in the library
    assert df.loc[("mlp", "quant=fp16"), "artifact_bytes"] < \
        0.6 * df.loc[("mlp", "fp32"), "artifact_bytes"]


@pytest.mark.slow
def test_fp16_lowering_builds_for_avx512fp16(tmp_path):
    """The quant=fp16 build on our kernels for x86 AVX512-FP16 (built, not run: this host has
    no avx512fp16): every conv/linear of digits-cnn on a float16 kernel with vfmadd...ph (231
    or an operand-order twin) on zmm, nothing left to TVM's ops."""
    from edgebench.compile import compile_module
    from edgebench.frontend import import_model
    from edgebench.models import get_model
    from edgebench.passes.fp16 import check_fp16_asm, fp16_passes
    from edgebench.passes.fp32 import Fp32Kernels
    from edgebench.quantize import parse_quant, quantize

    spec = get_model("digits-cnn")
    model = quantize(spec.build(), parse_quant("fp16"), spec).float_model
    ours = Fp32Kernels(SPR, dtype="float16")
    result = compile_module(import_model(model, spec.example_input()), SPR,
                            tmp_path / "spr.so", 0, extra_passes=[ours, *fp16_passes()],
                            keep_asm=True)
    assert ours.record.check_asm(result.asm) == []
    assert ours.record.summary() == "glue:6 fp32_conv:3 fp32_dense:1", ours.record.summary()
    check = check_fp16_asm(result.module, result.asm, "x86_64")
    assert check.missing == [], check.summary()
    ph = [k for k in check.kernels if k.name.startswith(("fp16_conv_", "fp16_dense_"))]
    assert len(ph) == 4 and all(any(i.startswith("vfmadd") and i.endswith("ph")
                                    for i in k.instructions) for k in ph), check.summary()
