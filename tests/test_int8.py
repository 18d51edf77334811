"""The int8 lowering: compiled integer code vs the integer reference executor (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tvm
from torch import nn
from tvm import relax

from edgebench import verify
from edgebench.models import ModelSpec, get_model
from edgebench.passes.int8 import (
    LoweredLayer,
    Lowering,
    export_float,
    lower_int8,
    requantize_expr,
)
from edgebench.pipeline import run
from edgebench.quantize import QuantConfig, parse_quant, quantize
from edgebench.quantize.arith import requantize
from edgebench.targets import find_target
from tests.helpers import (
    ENCODER,
    KERNELS,
    TINY,
    VNNI,
    build_vm,
    oracle,
    run_vm,
    x86_int8_target,
    x86_target,
)

needs_vnni = pytest.mark.skipif(not VNNI, reason="this host has no AVX512-VNNI")


def _lower(result, spec: ModelSpec, vnni: bool = False) -> Lowering:
    return lower_int8(export_float(result.float_model, spec.example_input()),
                      result.description, x86_int8_target(vnni=vnni))


def _relax_ops(mod) -> list[tuple[str, str]]:
    """(op name, output dtype) of every call in main, in order."""
    found = []

    def visit(e):
        if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op):
            found.append((e.op.name, str(e.ty.dtype)))

    relax.analysis.post_order_visit(mod["main"], visit)
    return found


# --------------------------------------------------------------- requantize rounding


def _requantize_tvm(acc: np.ndarray, m0: np.ndarray, n: np.ndarray, zp: int, lo: int,
                    hi: int, dtype: str) -> np.ndarray:
    bb = relax.BlockBuilder()
    x = relax.Var("acc", relax.TensorType(acc.shape, "int32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit_output(requantize_expr(x, m0, n, zp, lo, hi, dtype))
        bb.emit_func_output(y)
    vm = build_vm(bb.get())
    return vm["main"](tvm.runtime.tensor(acc)).numpy()


def test_requantize_rounding_edge_cases() -> None:
    """Ties (both signs, odd and even quotients), saturation, the largest shift, zero point
    and a narrowed (ReLU6) clamp: identical to arith.requantize, which is the oracle's."""
    rows = []  # (acc, M0, n)
    m0 = 2**30  # acc * 2**30 >> (30 + k) = acc / 2**k: exact ties
    for k in (1, 2, 5):
        for acc in (1, 3, 5, -1, -3, -5, 2**k + 2**(k - 1), -(2**k) - 2**(k - 1), 0, 7, -7):
            rows.append((acc, m0, 30 + k))
    rows += [(2**31 - 1, 2**31 - 1, 31), (-(2**31), 2**31 - 1, 31),  # saturate both ends
             (123456789, 1518500250, 62), (-123456789, 1518500250, 62),  # n large: -> 0
             (2**31 - 1, 2**31 - 1, 62), (987654, 1073741824, 1),  # n = 1
             (-987653, 1073741825, 40), (2**20 + 2**19, 2**30, 50)]
    acc = np.array([r[0] for r in rows], dtype=np.int32)
    mult = np.array([r[1] for r in rows], dtype=np.int64)
    shift = np.array([r[2] for r in rows], dtype=np.int64)
    for zp, lo, hi, dtype in ((0, 0, 255, "uint8"), (37, 37, 200, "uint8"),
                              (-3, -128, 127, "int8"), (128, 0, 255, "uint8")):
        want = requantize(torch.from_numpy(acc), torch.from_numpy(mult),
                          torch.from_numpy(shift), zp, lo, hi).numpy()
        got = _requantize_tvm(acc, mult, shift, zp, lo, hi, dtype)
        np.testing.assert_array_equal(got.astype(np.int64), want)
    # the cases above really exercise ties and saturation
    scaled = acc.astype(np.float64) * mult / 2.0**shift
    assert np.sum(np.abs(scaled - np.floor(scaled) - 0.5) == 0) >= 12
    assert np.any(want == 0) and np.any(want == 255)


def _epilogue_f64(acc: np.ndarray, scale: np.ndarray, zp: int, lo: int, hi: int,
                  out: str) -> np.ndarray:
    """Our kernels' float64 requantize epilogue (fused_epilogue, EXACT_F64) alone, 16 lanes."""
    from tvm.script import tirx as T

    from edgebench.kernels.int8_conv import fused_epilogue

    n = acc.size
    assert n % 16 == 0

    @T.prim_func
    def epilogue(a: T.Buffer((n,), "int32"), sc: T.Buffer((n,), "float64"),
                 y: T.Buffer((n,), out)):
        T.func_attr({"tirx.noalias": True})
        for i in range(n // 16):
            for lane in T.vectorized(16):
                y[i * 16 + lane] = fused_epilogue(T, out, a[i * 16 + lane], i * 16 + lane,
                                                  None, None, sc, zp, lo, hi)

    lib = tvm.compile(tvm.IRModule({"main": epilogue}), target=x86_target())
    y = tvm.runtime.empty((n,), out, tvm.cpu())
    lib["main"](tvm.runtime.tensor(acc), tvm.runtime.tensor(scale), y)
    return y.numpy()


@pytest.mark.parametrize("zp,lo,hi,out", [(0, 0, 255, "uint8"), (37, 37, 200, "uint8"),
                                          (-3, -128, 127, "int8"), (128, 0, 255, "uint8")])
def test_f64_requantize_bit_exact_up_to_its_bound(zp: int, lo: int, hi: int, out: str) -> None:
    """The float64 epilogue equals arith.requantize wherever f64_requantize_exact admits the
    shift: exact ties (m0 = 2**30, n = 31: every odd acc), int32 extremes, and accumulators
    that land anywhere in and around the clamp range with the largest admitted shift (the
    product then needs all 53 bits); the rule refuses one more bit of shift."""
    from edgebench.quantize.arith import f64_requantize_exact

    rng = np.random.default_rng(zp + 1000)
    bound = max(abs(lo - zp), abs(hi - zp)) + 1
    n_max = 53 - int(np.ceil(np.log2(bound)))
    assert f64_requantize_exact(n_max, zp, lo, hi)
    assert not f64_requantize_exact(n_max + 1, zp, lo, hi)
    ties = np.arange(-600, 600, dtype=np.int64)
    m0 = np.full(ties.size, 2**30)
    shift = np.full(ties.size, 31)
    extremes = np.array([2**31 - 1, -(2**31), 2**31 - 2, -(2**31) + 1] * 4, np.int64)
    m_ext = rng.integers(2**30, 2**31, extremes.size)
    s_ext = rng.integers(31, n_max + 1, extremes.size)
    m_far = rng.integers(2**30, 2**31, 2048)
    r = rng.uniform(-1.5 * bound, 1.5 * bound, 2048)  # the scaled result before rounding
    far = np.clip(np.rint(r * 2.0**n_max / m_far), -(2**31), 2**31 - 1).astype(np.int64)
    acc = np.concatenate([ties, extremes, far])
    mult = np.concatenate([m0, m_ext, m_far])
    shifts = np.concatenate([shift, s_ext, np.full(far.size, n_max)])
    want = requantize(torch.from_numpy(acc), torch.from_numpy(mult), torch.from_numpy(shifts),
                      zp, lo, hi).numpy()
    scale = np.ldexp(mult.astype(np.float64), -shifts)
    got = _epilogue_f64(acc.astype(np.int32), scale, zp, lo, hi, out)
    np.testing.assert_array_equal(got.astype(np.int64), want)
    assert len(np.unique(want)) > (hi - lo) // 2 and {lo, hi} <= set(want.tolist())


def test_compare_lsb_fails_beyond_one_step() -> None:
    ref = [np.array([[0.5, 1.0]], dtype=np.float32)]
    assert verify.compare_lsb([ref[0] + 0.1], ref, [0.1]).ok
    bad = verify.compare_lsb([ref[0] + 0.21], ref, [0.1])
    assert not bad.ok and "1 LSB" in bad.message


# ---------------------------------------------------- integer kernels on random data


@pytest.mark.slow
@pytest.mark.parametrize("vnni", [False, pytest.param(True, marks=needs_vnni)])
@pytest.mark.parametrize("text", ["static", "static:minmax:act-int8",
                                  "static:minmax:per-tensor"])
def test_integer_kernels_bit_exact_on_random_data(text: str, vnni: bool) -> None:
    """TVM's int32 conv2d/matmul (vnni=False) and our vpdpbusd kernels (vnni=True: uint8
    activations; grouped convs and int8 activations stay on TVM's op) vs the oracle."""
    result = quantize(KERNELS.build(), parse_quant(text), KERNELS)
    low = _lower(result, KERNELS, vnni)
    kinds = {la.node: la.kind for la in low.layers}
    assert list(kinds.values()).count("int8") == 7 and kinds["linear_1"] == "float-out"
    ours = [la.node for la in low.layers if la.kernel == "vnni"]
    convs = [d for op, d in _relax_ops(low.mod) if op == "relax.nn.conv2d"]
    if vnni and "act-int8" not in text:
        # all but the grouped conv on our kernels (C=3 and K=24 padded; depthwise its own)
        assert ours == ["conv2d", "conv2d_3", "conv2d_4", "linear", "linear_1"]
        assert [la.node for la in low.layers if la.kernel == "dw"] == ["conv2d_2"]
        assert convs == ["int32"]
        # the NHWC max pool and the residual add on our vector kernels, not TVM's ops
        names = [g.name_hint for g in low.mod.functions]
        assert sum(n.startswith("int8_max_pool_") for n in names) == 1
        assert sum(n.startswith("int8_add_") for n in names) == 1
        assert sum(n.startswith("int8_quantize_") for n in names) == 1  # the float input
        assert "relax.nn.max_pool2d" not in dict(_relax_ops(low.mod))
    else:
        assert ours == [] and convs == ["int32"] * 5  # int8 x int8 accumulated in int32
    xs = torch.randn(8, 1, 3, 16, 16) * 2
    got, want = run_vm(build_vm(low.mod, low), xs), oracle(result, xs)
    np.testing.assert_array_equal(got, want)
    assert np.abs(want).max() > 0.1  # not a degenerate all-zero net


# ------------------------------------------------------------- FP32 layers stay FP32


@pytest.mark.slow
@pytest.mark.parametrize("keep", [(), ("stem.0",)])
def test_layers_kept_fp32_stay_fp32(keep: tuple[str, ...]) -> None:
    """Tiny's sigmoid/mul have no int8 form (and the stem conv is kept by request): they run
    in float on dequantized inputs; the rest (pools and the residual add too) in integers."""
    result = quantize(TINY.build(), QuantConfig("static", keep_fp32=keep), TINY)
    low = _lower(result, TINY)
    kinds = {la.node: la.kind for la in low.layers}
    assert kinds["sigmoid"] == "fp32" and kinds["mul"] == "fp32"
    assert kinds["conv2d_1"] == "int8" and kinds["linear_1"] == "float-out"
    ops = _relax_ops(low.mod)
    assert ("relax.sigmoid", "float32") in ops
    convs = [d for op, d in ops if op == "relax.nn.conv2d"]
    if keep:
        assert kinds["conv2d"] == "fp32" and kinds["add"] == "fp32"
        assert convs == ["float32", "int32", "int32"]  # the kept stem conv runs in float
    else:
        assert all(kinds[n] == "int8" for n in ("conv2d", "add", "avg_pool2d", "mean"))
        assert convs == ["int32"] * 3
    xs = TINY.eval_data()[0]
    got, want = run_vm(build_vm(low.mod), xs), oracle(result, xs)
    # FP32 ops feed int8 ones here: an ulp of float rounding may flip one quantization step
    assert verify.compare([got], [want], "int8").ok
    assert np.mean(np.abs(got - want) < 1e-6) > 0.9


# ------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("vnni", [False, pytest.param(True, marks=needs_vnni)])
def test_digits_cnn_int8_bit_exact_and_within_one_point(vnni: bool) -> None:
    spec = get_model("digits-cnn")
    fp32 = spec.build()
    result = quantize(fp32, parse_quant("static"), spec)
    low = _lower(result, spec, vnni)
    assert all(la.kind in ("int8", "float-out", "int8-move") for la in low.layers)
    assert sum(la.kernel == "vnni" for la in low.layers) == (4 if vnni else 0)
    xs, labels = spec.eval_data()
    got = run_vm(build_vm(low.mod, low), xs)
    np.testing.assert_array_equal(got, oracle(result, xs))
    with torch.no_grad():
        ref = np.stack([fp32(x).numpy() for x in xs])
    acc_int8 = verify.accuracy(got, labels.numpy())
    acc_fp32 = verify.accuracy(ref, labels.numpy())
    assert acc_fp32 > 0.95
    assert acc_int8 >= acc_fp32 - 0.01


@pytest.mark.slow
def test_pipeline_static_tvm_row_runs_int8(tmp_path) -> None:
    """quant=static on TVM: the row runs the integer lowering, verified against the oracle;
    the peers' rows still say simulated."""
    df = run(models=["digits-mlp"], variants=["quant=static"],
                       runtimes=["tvm", "pytorch"], trials=0, target="x86-native",
                       output=tmp_path / "r.csv", log=lambda _m: None)
    rows = {r.runtime: r for r in df.itertuples()}
    tvm_row = rows["tvm"]
    assert tvm_row.status == "ok" and tvm_row.quant_kind == "int8"
    assert tvm_row.verify_err == 0.0  # bit exact against the integer reference
    layers = tvm_row.int8_layers
    if VNNI:  # every layer on our kernels (vpdpbusd, or AMX tdpbusd where the host has it),
        # and its built code checked for the instruction
        assert layers.count("/vnni(vpdpbusd)") + layers.count("/amx(tdpbusd)") == 3
        assert "NO " not in layers
    assert "linear=int8" in layers and "linear_2=float-out" in layers
    assert tvm_row.accuracy > 0.95
    assert rows["pytorch"].quant_kind == "simulated"


@pytest.mark.parametrize("vnni", [False, pytest.param(True, marks=needs_vnni)])
def test_dynamic_linear_matches_oracle(vnni: bool) -> None:
    """quant=dynamic: activation qparams computed at run time in the compiled code (rule 8).
    The int32 accumulators are exact for the same quantized input, but the input's scale is
    computed in float at run time, and an ulp there can move x * (1 / scale) across a rounding
    tie and flip one activation by one step (seen on a fresh machine, where the digits models
    were trained anew): nearly every sample is exact to float rounding, all are within the int8
    tolerance the pipeline verifies dynamic rows with, and the accuracy is the same."""
    spec = get_model("digits-mlp")
    result = quantize(spec.build(), parse_quant("dynamic"), spec)
    low = _lower(result, spec, vnni)
    assert [la.kind for la in low.layers if la.op == "linear"] == ["dynamic"] * 3
    assert all(la.kernel == ("vnni" if vnni else "relax") for la in low.layers
               if la.op == "linear")
    xs, labels = spec.eval_data()
    got, want = run_vm(build_vm(low.mod, low), xs), oracle(result, xs)
    exact = (np.abs(got - want) <= 1e-5 * np.abs(want).max()).reshape(len(xs), -1).all(1)
    assert exact.mean() >= 0.99, f"{(~exact).sum()} of {len(xs)} samples off the oracle"
    assert verify.compare([got], [want], "int8").ok
    assert verify.accuracy(got, labels.numpy()) == verify.accuracy(want, labels.numpy())


@pytest.mark.slow
def test_small_encoder_static_and_dynamic() -> None:
    """Embedding (int8 rows), int8 linears between FP32 layer norms/softmax/GELU (GELU on
    fast_erf, as the pipeline builds it): agreement with the oracle within the float
    tolerance, same top-1 on every sample."""
    from edgebench.passes.int8 import fast_gelu

    xs = ENCODER.eval_data()[0]
    for text in ("static", "dynamic"):
        result = quantize(ENCODER.build(), parse_quant(text), ENCODER)
        low = _lower(result, ENCODER, VNNI)
        assert "relax.nn.gelu" in dict(_relax_ops(low.mod))
        mod = fast_gelu()(low.mod)
        assert "relax.nn.gelu" not in dict(_relax_ops(mod))
        got, want = run_vm(build_vm(mod, low), xs), oracle(result, xs)
        assert verify.compare([got], [want], "int8").ok, text
        assert verify.top1_agreement(got, want) == 1.0, text


@pytest.mark.slow
@needs_vnni
def test_encoder_int8_float_glue_on_our_kernels_builds_without_tuning(tmp_path) -> None:
    """The pipeline's int8 build of a small encoder: the float glue between its int8 linears
    (embedding, layer norms, Q K^T and A V, softmax, GELU, head transposes, residual adds,
    token mean) on our FP32 kernels (passes/fp32.py over the int8 module), every quantize
    stored by the kernel before it or one quantize kernel, nothing left to TVM's ops, 0
    tuning tasks at any --trials; its outputs within the int8 tolerance of the oracle, same
    top-1 on every sample."""
    import tvm
    from tvm import relax

    from edgebench.pipeline import RunConfig, build_tvm
    from edgebench.variant import Variant, parse_variant

    target = find_target("x86-native")
    variant = Variant(ENCODER, parse_variant("quant=static"), target)
    result = quantize(ENCODER.build(), parse_quant("static"), ENCODER)
    xs = ENCODER.eval_data()[0]
    built, compiled = build_tvm(variant, result.model, xs[0], tmp_path / "m.so",
                                RunConfig(trials=8, log=lambda _: None), result)
    facts = built.facts
    assert facts.tasks == 0 and facts.quant_kind == "int8"
    fp32 = facts.fp32_layers.text()
    assert fp32 == "glue:17 fp32_bmm:2", fp32  # no "| tvm ...": nothing on TVM's ops
    ops = [k.op for k in built.fp32.record.kernels if k.family == "glue"]
    for op in ("layer_norm", "softmax", "gelu", "transpose", "add", "mean_axis"):
        assert op in ops, (op, ops)
    # the quantizes feeding the int8 linears: stored by the first layer norm (q, k, v), the
    # second layer norm (ffn.0), GELU (ffn.2), the attention output's transpose (out) and one
    # quantize kernel after the token mean (head)
    assert [k.quant for k in built.fp32.record.kernels if k.quant] == [
        "layer_norm", "transpose", "layer_norm", "gelu", "quantize"]
    linears = [la for la in built.lowering.layers if la.op == "linear"]
    assert len(linears) == 7 and all(la.dot_product for la in linears)
    funcs = [f for _, f in compiled.module.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    assert all(f.attrs and f.attrs.get("tirx.is_scheduled") for f in funcs)
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    got, want = run_vm(vm, xs), oracle(result, xs)
    assert built.lsb == [None]  # FP32 ops feed int8 ones: the int8 relative tolerance
    check = verify.compare_lsb([got], [want], built.lsb)
    assert check.ok, check.message
    assert verify.top1_agreement(got, want) == 1.0


@pytest.mark.slow
def test_glue_trials_give_float_glue_the_budget_and_integer_glue_one_trial() -> None:
    """The encoder's int8 module as tuned: its float tasks (layer norm, softmax, GELU between
    the int8 linears) get the full budget, integer data movement 1 trial, our kernels none;
    glue this small (<= SMALL_GLUE elements) gets 0: TVM's default code, no tuning task."""
    from tvm.s_tir import meta_schedule as ms

    from edgebench.compile import _prepare
    from edgebench.passes.int8 import glue_trials

    result = quantize(ENCODER.build(), parse_quant("static"), ENCODER)
    fused = _prepare(_lower(result, ENCODER, VNNI).mod, x86_target(), [])
    tasks = ms.relax_integration.extract_tasks(fused, x86_target())
    budget = {t.task_name: glue_trials(t.dispatched[0], 32, small=0) for t in tasks}
    floats = [n for n, b in budget.items() if b == 32]
    assert set(budget.values()) == {1, 32}
    assert any("softmax" in n for n in floats) and any("layer_norm" in n for n in floats)
    assert all(glue_trials(t.dispatched[0], 0) == 0 for t in tasks)
    assert {glue_trials(t.dispatched[0], 32) for t in tasks} == {0}  # 16 tokens x 64: small


def test_asm_check_flags_a_kernel_without_the_instruction() -> None:
    """The per-layer check reads each kernel's own function body in the listing."""
    low = Lowering(None, [], [LoweredLayer("conv2d", "conv2d", "int8", "vnni", "k0"),
                              LoweredLayer("conv2d_1", "conv2d", "int8", "vnni", "k1"),
                              LoweredLayer("add", "add", "int8")])
    asm = ("__tvm_ffi_k0:\n\tcallq\tk0_compute_\nk0_compute_:\n\tvpdpbusd\t(%rsi), %zmm1, %zmm0\n"
           "\tretq\nk1_compute_:\n\tvpmaddwd\t%zmm1, %zmm2, %zmm0\n\tretq\n")
    missing = low.check_asm(asm)
    assert [la.node for la in missing] == ["conv2d_1"]
    assert low.summary() == ("conv2d=int8/vnni(vpdpbusd);conv2d_1=int8/vnni(NO vpdpbusd);"
                             "add=int8")


def _depthwise_acc(x: np.ndarray, w: np.ndarray, bias: np.ndarray, s) -> np.ndarray:
    """The int64 depthwise accumulator on the padded NHWC input (w [KH, KW, C])."""
    acc = np.zeros((1, s.oh, s.ow, s.c), np.int64) + bias
    (sh, sw), (dh, dw) = s.stride, s.dilation
    for kh in range(s.kh):
        for kw in range(s.kw):
            acc += x[:, kh * dh:kh * dh + (s.oh - 1) * sh + 1:sh,
                     kw * dw:kw * dw + (s.ow - 1) * sw + 1:sw].astype(np.int64) * w[kh, kw]
    return acc


@needs_vnni
@pytest.mark.parametrize("out,requant", [("uint8", "fixed"), ("uint8", "f64"),
                                         ("int32", "fixed"), ("float32", "fixed")])
@pytest.mark.parametrize("shape", [(9, 9, 32, 3, 1, 1), (16, 16, 48, 3, 1, 1),
                                   (15, 15, 16, 3, 2, 1), (10, 13, 16, 3, 1, 1),
                                   (12, 11, 32, 5, 2, 1), (13, 13, 16, 3, 1, 2),
                                   (9, 9, 16, 2, 1, 1)],
                         ids=lambda v: "x".join(map(str, v)))
def test_depthwise_kernel_bit_exact(shape: tuple[int, ...], out: str, requant: str) -> None:
    """The vpdpbusd depthwise kernel (4 kernel rows per int32 lane; 3x3 / 5x5 / 2x2 leave the
    last group partly on zero weights; stride 2, dilation 2, output widths with and without a
    full pixel block) against an int64 reference with arith.requantize, every epilogue; its
    assembly has vpdpbusd."""
    from edgebench.compile.asm import functions_using
    from edgebench.kernels.int8_conv import ConvShape
    from edgebench.kernels.int8_depthwise import depthwise_dot_kernel, pack_depthwise

    h, wd, c, k, st, dil = shape
    s = ConvShape(1, h, wd, c, c, k, k, (st, st), (dil, dil))
    rng = np.random.default_rng(h * wd + c + k)
    x = rng.integers(0, 256, (1, h, wd, c), dtype=np.uint8)
    w = rng.integers(-128, 128, (k, k, c), dtype=np.int8)
    bias = rng.integers(-5000, 5000, c).astype(np.int32)
    acc = _depthwise_acc(x, w, bias, s)
    m0 = rng.integers(1 << 30, 1 << 31, c).astype(np.int64)
    shift = rng.integers(38, 41, c).astype(np.int64)
    scale = rng.uniform(1e-4, 1e-3, c).astype(np.float32)
    if out == "uint8":
        want = requantize(torch.from_numpy(acc), torch.from_numpy(m0), torch.from_numpy(shift),
                          3, 0, 255).numpy()
        assert len(np.unique(want)) > 30
        extra = [m0, shift] if requant == "fixed" else [np.ldexp(m0.astype(np.float64), -shift)]
    elif out == "int32":
        want, extra = acc.astype(np.int32), []
    else:
        want, extra = acc.astype(np.float32) * scale, [scale]
    mod = tvm.IRModule({"main": depthwise_dot_kernel(s, out, 3, 0, 255, requant)})
    lib = tvm.compile(mod, target=x86_target())
    assert any(f.startswith("dw_dot_") for f in
               functions_using(lib.mod.inspect_source("asm"), "vpdpbusd"))
    y = tvm.runtime.empty(want.shape, out, tvm.cpu())
    lib["main"](*[tvm.runtime.tensor(a) for a in (x, pack_depthwise(w.transpose(2, 0, 1)[:, None]),
                                                 bias, *extra)], y)
    np.testing.assert_array_equal(y.numpy(), want)


class WideInput(nn.Module):
    """A conv straight on a 20-channel float input: more channels than the input quantize
    kernel interleaves (16), so the lowering must fall back to the Relax quantize + pad."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(20, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 16 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.c(x)).flatten(1))


def _wide_input() -> nn.Module:
    torch.manual_seed(2)
    return WideInput().eval()


WIDE = ModelSpec(name="wide-input", description="test net", input_shape=(1, 20, 16, 16),
                 evaluation="fidelity", fidelity_samples=8, build=_wide_input)


@needs_vnni
def test_wide_float_input_falls_back_to_relax_quantize() -> None:
    from edgebench.kernels.int8_quantize import quantize_fits

    assert quantize_fits(3, 224, 4) and not quantize_fits(20, 16, 20)
    assert not quantize_fits(3, 8, 4)  # rows shorter than one vector
    result = quantize(WIDE.build(), parse_quant("static"), WIDE)
    low = _lower(result, WIDE, vnni=True)
    names = [g.name_hint for g in low.mod.functions]
    assert not any(n.startswith("int8_quantize_") for n in names)
    assert [la.kernel for la in low.layers if la.op == "conv2d"] == ["vnni"]
    xs = torch.randn(4, 1, 20, 16, 16)
    np.testing.assert_array_equal(run_vm(build_vm(low.mod, low), xs), oracle(result, xs))


def test_zero_trial_glue_is_built_on_default_code_not_tuned(tmp_path) -> None:
    """A function whose task budget is 0 is TVM's default code: no tuning task, no tuning
    round, still correct."""

    from edgebench.compile import compile_module
    from edgebench.passes.int8 import glue_trials

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 64], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = relax.op.clip(relax.op.round(relax.op.multiply(x, relax.const(4.0))), 0, 255)
            out = bb.emit_output(bb.emit(relax.op.astype(q, "uint8")))
        bb.emit_func_output(out)
    result = compile_module(bb.get(), find_target("x86-native"), tmp_path / "m.so", 32,
                            task_trials=glue_trials)
    assert result.tuning.tasks == 0 and result.tuning.tuned_now == 0
    assert len(result.tuning.default_code) == 1
    xs = np.linspace(-10, 80, 64, dtype=np.float32).reshape(1, 64)
    vm = relax.VirtualMachine(result.executable, tvm.cpu())
    np.testing.assert_array_equal(vm["main"](tvm.runtime.tensor(xs)).numpy(),
                                  np.clip(np.round(xs * 4), 0, 255).astype(np.uint8))
