"""edgebench.quantize: grammar, arithmetic, integer oracle vs fake-quant, accuracy, errors."""

from __future__ import annotations

import copy
import functools
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from edgebench.data import fixed_batch
from edgebench.models import ModelSpec, get_model
from edgebench.models.digits import evaluate_accuracy
from edgebench.quantize import (
    ActQParams,
    QuantConfig,
    QuantError,
    choose_qparams,
    pack,
    parse_quant,
    quantize,
    unpack,
)
from edgebench.quantize.arith import (
    dequantize,
    quantize_multiplier,
    requantize,
    shift_round_half_even,
)
from edgebench.quantize.arith import quantize as q_fn
from edgebench.quantize.check import per_op_agreement
from edgebench.quantize.fakequant import ActQuant, WeightQuant
from edgebench.quantize.fold import fold_batchnorm
from edgebench.quantize.lowbit import binarize, packed_bytes, ternarize
from tests.helpers import ENCODER, TINY, tiny_net

# ---------------------------------------------------------------- helpers and shared results


@functools.cache
def _model(name: str) -> nn.Module:
    return get_model(name).build()


@functools.cache
def _quantized(name: str, text: str):
    spec = get_model(name)
    return quantize(_model(name), parse_quant(text), spec)


@functools.cache
def _accuracy(name: str, text: str | None) -> float:
    spec = get_model(name)
    xs, ys = spec.eval_data()
    model = _model(name) if text is None else _quantized(name, text).model
    return evaluate_accuracy(model, xs, ys)


def _int_values(result, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The simulator's quantized tensors as integers (round(v / s) + z at each ActQuant)."""
    values = {}

    class Capture(torch.fx.Interpreter):
        def call_module(self, target, args, kwargs):
            out = super().call_module(target, args, kwargs)
            module = self.module.get_submodule(target)
            if isinstance(module, ActQuant):
                values[target.removeprefix("aq_")] = (torch.round(out / module.scale).long()
                                                      + int(module.zero_point))
            return out

    with torch.no_grad():
        Capture(result.model).run(x)
    return values


def _assert_oracle_agrees(result, x: torch.Tensor) -> None:
    """Integer oracle vs fake-quant: same int8 tensors except rare 1-step float-order flips."""
    sim = _int_values(result, x)
    ref = result.reference.run(x)
    for owner, qp in result.description.tensors.items():
        value, ref_qp = ref[owner]
        if ref_qp is None:  # an FP32 tensor quantized on the way into an int8 op
            value = torch.clamp(torch.round(value * (1.0 / torch.tensor(qp.scale))) +
                                qp.zero_point, qp.qmin, qp.qmax).long()
        diff = (sim[owner] - value).abs()
        assert int(diff.max()) <= 1, owner
        assert float((diff > 0).float().mean()) < 1e-3, owner
    with torch.no_grad():
        out_sim, out_ref = result.model(x), result.reference(x)
    scale = float(out_sim.abs().max())
    assert float((out_sim - out_ref).abs().max()) <= 0.01 * max(scale, 1e-30)
    assert bool((out_sim.argmax(-1) == out_ref.argmax(-1)).float().mean() >= 0.99)


# ------------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(("text", "fields"), [
    ("dynamic", {"method": "dynamic", "per_channel": True, "weight_bits": 8}),
    ("static", {"method": "static", "observer": "minmax", "activation_dtype": "uint8"}),
    ("static:percentile", {"observer": "percentile", "per_channel": True}),
    ("quant=static:entropy:per-tensor", {"observer": "entropy", "per_channel": False}),
    ("static:minmax:act-int8:w4", {"observer": "minmax", "activation_dtype": "int8",
                                   "weight_bits": 4}),
    ("fp16", {"method": "fp16", "weight_bits": 16}),
    ("qat:entropy", {"method": "qat", "observer": "entropy"}),
    ("ternary", {"method": "ternary", "weight_bits": 2}),
    ("binary", {"method": "binary", "weight_bits": 1}),
])
def test_parse_quant(text: str, fields: dict) -> None:
    config = parse_quant(text)
    for key, value in fields.items():
        assert getattr(config, key) == value
    assert parse_quant(config.text) == config


@pytest.mark.parametrize(("text", "match"), [
    ("int3", "unknown method 'int3'"),
    ("", "empty method"),
    ("static:kl", "unknown option 'kl' for static"),
    ("static:minmax:entropy", "'entropy' conflicts"),
    ("static:w3", "weight bits 3 not supported"),
    ("fp16:minmax", "unknown option 'minmax' for fp16"),
    ("dynamic:entropy", "unknown option 'entropy' for dynamic"),
    ("ternary:per-tensor", "unknown option 'per-tensor' for ternary"),
])
def test_parse_quant_errors(text: str, match: str) -> None:
    with pytest.raises(QuantError, match=match):
        parse_quant(text)


def test_config_bits_outside_supported_set() -> None:
    with pytest.raises(QuantError, match=r"ternary: weight bits 8 not supported \(supported: 2"):
        QuantConfig("ternary", weight_bits=8)
    with pytest.raises(QuantError, match="per-tensor is not supported"):
        QuantConfig("binary", per_channel=False)


# ---------------------------------------------------------------------------- arithmetic


def test_activation_round_trip_within_half_step() -> None:
    gen = torch.Generator().manual_seed(0)
    for lo, hi, dtype in [(-1.3, 2.7, "uint8"), (0.0, 6.0, "uint8"), (-4.0, 0.5, "int8")]:
        qp = choose_qparams(lo, hi, dtype)
        assert qp.qmin <= qp.zero_point <= qp.qmax
        # the zero point is an integer, so the grid may end up to half a step inside [lo, hi]
        lo_q = max(lo, (qp.qmin - qp.zero_point) * qp.scale)
        hi_q = min(hi, (qp.qmax - qp.zero_point) * qp.scale)
        assert hi - hi_q <= qp.scale / 2 * 1.0001 and lo_q - lo <= qp.scale / 2 * 1.0001
        x = torch.rand(10000, generator=gen) * (hi_q - lo_q) + lo_q
        q = q_fn(x, qp.scale, qp.zero_point, qp.qmin, qp.qmax)
        err = (dequantize(q, qp.scale, qp.zero_point) - x).abs().max()
        assert float(err) <= qp.scale / 2 * (1 + 1e-5)
        zero = q_fn(torch.zeros(1), qp.scale, qp.zero_point, qp.qmin, qp.qmax)
        assert int(zero) == qp.zero_point  # zero is exact


def test_weight_scales_per_channel_and_half_step() -> None:
    w = torch.randn(6, 4, 3, 3) * torch.arange(1, 7).reshape(-1, 1, 1, 1)
    wq = WeightQuant("int", 8, per_channel=True)
    q, scale = wq.quantize(w)
    amax = w.abs().reshape(6, -1).amax(1)
    assert torch.equal(scale, amax / 127.0)
    assert torch.equal(q.reshape(6, -1).abs().amax(1), torch.full((6,), 127, dtype=torch.int8))
    deq = wq.dequantized(w)
    assert bool(((deq - w).abs() <= scale.reshape(-1, 1, 1, 1) / 2 * (1 + 1e-5)).all())
    # the frozen weights equal torch's fake-quant op used during training
    assert torch.equal(deq, wq(w))
    _, tensor_scale = WeightQuant("int", 8, per_channel=False).quantize(w)
    assert torch.equal(tensor_scale, w.abs().amax().reshape(1) / 127.0)


def test_act_quant_eval_equals_torch_fake_quant() -> None:
    aq = ActQuant("minmax", 99.99, "uint8")
    aq.set_qparams(ActQParams(0.0371, 7, "uint8"))
    aq.mode = "quant"
    x = torch.randn(50000) * 4
    train = aq.train()(x)
    assert torch.equal(train, aq.eval()(x))


def test_shift_round_half_even_is_exact() -> None:
    gen = np.random.default_rng(0)
    values = gen.integers(-(2**40), 2**40, size=4000)
    values[:8] = [5, -5, 6, -6, 7, -7, 3 << 10, -(3 << 10)]  # exact ties
    for shift in (1, 2, 11, 31, 40):
        got = shift_round_half_even(torch.from_numpy(values), shift).numpy()
        for v, g in zip(values[:400], got[:400], strict=True):
            assert g == round(Fraction(int(v), 2**shift))  # Python rounds half to even


def test_quantize_multiplier_precision() -> None:
    reals = np.array([1e-6, 3.7e-4, 0.0123, 0.5, 0.75, 0.999999, 1.0, 7.5])
    m0, n = quantize_multiplier(reals)
    assert bool(((m0 >= 2**30) & (m0 < 2**31)).all())
    approx = m0 / 2.0 ** n
    assert bool((np.abs(approx - reals) / reals < 2**-30).all())
    acc = torch.tensor([-1000, -1, 0, 1, 12345])
    out = requantize(acc, int(m0[3]), int(n[3]), 3, 0, 255)  # x0.5 + 3, ties to even
    assert out.tolist() == [0, 3, 3, 3, 255]


# -------------------------------------------------------- graph, folding, oracle vs sim


def test_batchnorm_folding_preserves_outputs() -> None:
    model = tiny_net()
    x = fixed_batch((1, 3, 8, 8), 4, seed=3).flatten(0, 1)
    with torch.no_grad():
        ref = model(x)
    work = copy.deepcopy(model)
    pairs = fold_batchnorm(work, x[:1])
    assert pairs == [("stem.0", "stem.1"), ("dw.0", "dw.1"), ("pw.0", "pw.1")]
    with torch.no_grad():
        torch.testing.assert_close(work(x), ref, rtol=1e-5, atol=1e-5)


def test_tiny_static_oracle_matches_fake_quant() -> None:
    result = quantize(TINY.build(), parse_quant("static"), TINY)
    ops = {la.op: la for la in result.description.layers}
    assert ops["add"].activation == "relu" and ops["add"].scheme == "static"
    assert result.description.layer("dw.0").activation == "relu6"
    for op in ("max_pool2d", "avg_pool2d", "mean"):
        assert ops[op].scheme == "static"
    kept = {name: reason for name, _, reason in result.kept_fp32}
    assert kept["sigmoid"] == "no int8 form for sigmoid"
    assert "mul" in kept
    # the gate's output feeds only FP32 ops: it emits float (dequantized accumulator)
    gate = result.description.layer("gate")
    assert gate.output is None and gate.out_scale is not None
    x = TINY.eval_data()[0].flatten(0, 1)
    _assert_oracle_agrees(result, x)
    with torch.no_grad():
        fp32 = TINY.build()(x)
        assert float((result.model(x) - fp32).abs().max()) < 0.05 * float(fp32.abs().max())


def test_description_integer_fields_consistent() -> None:
    result = quantize(TINY.build(), parse_quant("static:minmax:act-int8"), TINY)
    la = result.description.layer("stem.0")
    (qx,) = la.inputs
    assert qx is not None and la.output is not None and la.weight_q is not None
    assert la.weight_q.dtype == torch.int8 and la.bias_q is not None
    assert la.bias_q.dtype == torch.int32
    assert la.output.dtype == "int8" and la.clamp is not None
    assert la.clamp[0] == la.output.zero_point  # ReLU6 lower bound is the zero point
    real = np.array([qx.scale * s / la.output.scale for s in la.weight_scale])
    m0, n = la.multiplier.numpy(), la.shift.numpy()
    assert np.allclose(m0 / 2.0**n, real, rtol=2**-29)
    assert la.weight_zero_point == (0,) * 8


def test_encoder_int8_linears_and_embedding_only() -> None:
    result = quantize(ENCODER.build(), parse_quant("static"), ENCODER)
    int_ops = {la.op for la in result.description.layers if la.scheme == "static"}
    assert {"linear", "embedding"} <= int_ops <= {"linear", "embedding", "reshape", "transpose"}
    kept_ops = {op for _, op, _ in result.kept_fp32}
    assert {"layer_norm", "softmax", "gelu", "matmul"} <= kept_ops
    assert all(reason for _, _, reason in result.kept_fp32)
    emb = result.description.layer("embed")  # int8 rows, one scale per row, float out
    assert emb.weight_q is not None and emb.weight_q.dtype == torch.int8
    assert len(emb.weight_scale) == 50 and emb.output is None
    table = result.float_model.embed.weight.detach()
    s = torch.tensor(emb.weight_scale).unsqueeze(1)
    assert torch.equal(s.squeeze(1), table.abs().amax(1) / 127)
    assert float((emb.weight_q.float() * s - table).abs().max()) <= float(s.max()) / 2 + 1e-7
    x = ENCODER.eval_data()[0].flatten(0, 1)
    _assert_oracle_agrees(result, x)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_oracle_matches_fake_quant_op_by_op(name: str) -> None:
    """Each integer op, fed the simulator's integers, gives the simulator's integers except
    one-step flips where float32 put the simulator within 1e-3 step of a rounding tie (about
    1e-5 of the elements); float outputs agree to float32 precision. A wrong zero point,
    bias, multiplier, rounding mode or pool count moves values far from ties and fails."""
    spec = get_model(name)
    result = _quantized(name, "static")
    rows = per_op_agreement(result, spec.eval_data()[0][:1].flatten(0, 1))
    ints = [r for r in rows if not r.float_output]
    assert len(ints) > 20 and {r.op for r in ints} >= {"conv2d", "add", "adaptive_avg_pool2d"}
    for r in ints:
        assert r.max_diff <= 1 and r.tie <= 1e-3, r
    assert sum(r.flips for r in ints) <= 1e-4 * sum(r.elements for r in ints)
    for r in rows:
        if r.float_output:
            assert r.max_diff <= 1e-5, r


@pytest.mark.parametrize("spec", [TINY, ENCODER], ids=["tiny", "encoder"])
def test_description_names_the_batch1_export(spec: ModelSpec) -> None:
    """Entries are keyed by the node names TVM will see: torch.export of float_model."""
    result = quantize(spec.build(), parse_quant("static"), spec)
    ep = torch.export.export(result.float_model, (spec.example_input(),))
    ops = {n.name: str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    for la in result.description.layers:
        assert la.op in ops[la.node]
    assert not any("batch_norm" in t for t in ops.values())  # folded


def test_digits_cnn_oracle_matches_fake_quant() -> None:
    result = _quantized("digits-cnn", "static")
    _assert_oracle_agrees(result, get_model("digits-cnn").eval_data()[0].flatten(0, 1))


def test_dynamic_linear_oracle() -> None:
    result = _quantized("digits-mlp", "dynamic")
    assert {la.scheme for la in result.description.weighted} == {"dynamic"}
    x = get_model("digits-mlp").eval_data()[0].flatten(0, 1)
    with torch.no_grad():
        ref, sim = result.reference(x), result.model(x)
    # float rounding of the previous layer can flip a runtime-quantized input by one step
    assert float((ref - sim).abs().max()) <= 0.01 * float(sim.abs().max())
    assert float((ref.argmax(1) == sim.argmax(1)).float().mean()) >= 0.99
    assert _accuracy("digits-mlp", "dynamic") >= _accuracy("digits-mlp", None) - 0.01


def test_frozen_simulator_exports_without_fake_quant_ops() -> None:
    result = _quantized("digits-cnn", "static")
    ep = torch.export.export(result.model, (get_model("digits-cnn").example_input(),))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("fake_quantize" in t for t in targets)
    assert "aten.round.default" in targets


# ------------------------------------------------------------------------ accuracy goals


def test_static_int8_within_one_point_of_fp32() -> None:
    assert _accuracy("digits-cnn", "static") >= _accuracy("digits-cnn", None) - 0.01


def test_qat_at_least_as_good_as_ptq() -> None:
    assert _accuracy("digits-cnn", "qat") >= _accuracy("digits-cnn", "static")
    la = _quantized("digits-cnn", "qat").description.layer("features.0")
    assert la.scheme == "static" and la.weight_dtype == "int8"  # same description as PTQ


def test_qat_distills_from_fp32_and_agrees_with_it_as_ptq_does() -> None:
    """QAT trains the calibrated PTQ model on the task loss plus distillation from FP32: it
    stays as close to FP32's predictions as PTQ, and says what it cost."""
    spec = get_model("digits-cnn")
    xs, _ = spec.eval_data()
    fp32 = _model("digits-cnn")(xs.flatten(0, 1)).argmax(1)
    qat = _quantized("digits-cnn", "qat")
    agree = {k: float((_quantized("digits-cnn", k).model(xs.flatten(0, 1)).argmax(1) == fp32)
                      .float().mean()) for k in ("static", "qat")}
    assert agree["qat"] >= agree["static"] - 0.01 and agree["qat"] >= 0.98, agree
    assert qat.train is not None and qat.train.distilled and qat.train.steps == 8 * 23
    assert _quantized("digits-cnn", "static").train is None


@pytest.mark.slow
def test_ternary_within_three_points_after_training() -> None:
    assert _accuracy("digits-cnn", "ternary") >= _accuracy("digits-cnn", None) - 0.03
    weights = _quantized("digits-cnn", "ternary").description.weighted
    assert all(set(la.weight_q.unique().tolist()) <= {-1, 0, 1} for la in weights)


def test_fp16_accuracy_and_dtypes() -> None:
    result = _quantized("digits-cnn", "fp16")
    assert {la.weight_dtype for la in result.description.weighted} == {"float16"}
    assert _accuracy("digits-cnn", "fp16") >= _accuracy("digits-cnn", None) - 0.005


def test_encoder_int8_weights_within_size_goal() -> None:
    """Embedding tables int8 per row: the encoder's weights fit the 26% goal."""
    size = _quantized("encoder", "static").size
    assert size.weight_ratio <= 0.26
    assert size.layers["embed"] == 1000 * 256 + 4 * 1000  # int8 table + float32 row scales


@pytest.mark.parametrize("name", ["digits-cnn", "digits-mlp"])
def test_size_goals(name: str) -> None:
    int8 = _quantized(name, "static").size
    assert int8.weight_ratio <= 0.26
    assert _quantized(name, "ternary").size.weight_ratio <= 0.07
    assert int8.model_bytes > int8.weight_bytes  # biases and qparams are counted there


# ------------------------------------------------------------------------ low-bit packing


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pack_round_trip_random(bits: int) -> None:
    gen = torch.Generator().manual_seed(bits)
    if bits == 1:
        values = torch.randint(0, 2, (7, 13), generator=gen) * 2 - 1
    else:
        top = 2 ** (bits - 1) - (0 if bits == 8 else 1)
        values = torch.randint(-top + (bits == 8), top, (7, 13), generator=gen)
    packed = pack(values, bits)
    assert packed.dtype == torch.uint8 and len(packed) == packed_bytes(values.numel(), bits)
    assert torch.equal(unpack(packed, bits, tuple(values.shape)), values.to(torch.int8))


@pytest.mark.parametrize("method", ["ternary", "binary"])
def test_packed_trained_weights_round_trip(method: str) -> None:
    result = _quantized("digits-mlp" if method == "binary" else "digits-cnn", method)
    bits = 2 if method == "ternary" else 1
    for la in result.description.weighted:
        assert la.weight_q is not None and la.weight_bits == bits
        packed = la.packed()
        assert len(packed) == packed_bytes(la.weight_q.numel(), bits)
        assert torch.equal(unpack(packed, bits, tuple(la.weight_q.shape)), la.weight_q)
        scales = torch.tensor(la.weight_scale)
        assert torch.equal(scales.half().float(), scales)  # stored as float16 exactly


def test_ternary_and_binary_rules() -> None:
    w = torch.tensor([[0.0, 0.1, -0.5, 1.0], [0.0, 0.0, 0.0, 0.0]])
    t, alpha = ternarize(w)
    assert t.tolist() == [[0, 0, -1, 1], [0, 0, 0, 0]]  # delta = 0.7 * 0.4 = 0.28
    assert float(alpha[0]) == pytest.approx(0.75, rel=1e-3)
    b, beta = binarize(w)
    assert b.tolist()[0] == [1, 1, -1, 1] and float(beta[0]) == pytest.approx(0.4, rel=1e-3)


# -------------------------------------------------------------------- pruning + quantizing


def _pruned(name: str, amount: float = 0.9) -> nn.Module:
    model = copy.deepcopy(_model(name))
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            torch_prune.l1_unstructured(m, "weight", amount)
            torch_prune.remove(m, "weight")
    return model


@pytest.mark.parametrize("text", ["static", "static:per-tensor", "ternary", "qat"])
def test_pruned_zeros_survive_quantization(text: str) -> None:
    spec = get_model("digits-mlp")
    model = _pruned("digits-mlp")
    config = parse_quant(text)
    if config.trained:
        config = QuantConfig(config.method, epochs=1)
    result = quantize(model, config, spec)
    params = dict(result.model.named_parameters())
    for la in result.description.weighted:
        zero = model.get_parameter(f"{la.name}.weight") == 0
        assert float(zero.float().mean()) >= 0.89
        assert not bool(la.weight_q[zero].any())
        assert not bool(params[f"{la.name}.weight"][zero].any())


def test_pruned_cnn_zeros_survive_bn_folding() -> None:
    spec = get_model("digits-cnn")
    model = _pruned("digits-cnn")
    result = quantize(model, parse_quant("static"), spec)
    for la in result.description.weighted:
        zero = model.get_parameter(f"{la.name}.weight") == 0
        assert not bool(la.weight_q[zero].any())


# ----------------------------------------------------------------------------- bad input


def test_empty_calibration_set() -> None:
    spec = get_model("digits-mlp")
    with pytest.raises(QuantError, match="calibration set is empty"):
        quantize(_model("digits-mlp"), parse_quant("static"), spec, torch.empty(0, 64))


def test_wrongly_shaped_calibration_set() -> None:
    spec = get_model("digits-cnn")
    with pytest.raises(QuantError, match=r"shaped \(10, 64\) does not fit model 'digits-cnn'"):
        quantize(_model("digits-cnn"), parse_quant("static"), spec, torch.randn(10, 64))
    with pytest.raises(QuantError, match=r"dtype torch\.int64"):
        quantize(_model("digits-cnn"), parse_quant("static"), spec,
                 torch.zeros(4, 1, 8, 8, dtype=torch.int64))


def test_calibration_accepts_eval_data_layout() -> None:
    spec = get_model("digits-mlp")
    xs = spec.eval_data()[0][:32]  # (N, 1, 64)
    result = quantize(_model("digits-mlp"), parse_quant("static:minmax"), spec, xs)
    assert result.description.tensors


def test_unsupported_layer_kept_fp32_and_listed() -> None:
    result = quantize(TINY.build(), parse_quant("static"), TINY)
    assert ("sigmoid", "sigmoid", "no int8 form for sigmoid") in result.kept_fp32


def test_keep_fp32_by_request_and_unknown_name() -> None:
    result = quantize(TINY.build(), QuantConfig("static", keep_fp32=("stem.0",)), TINY)
    assert ("stem.0", "conv2d", "kept FP32 by request") in result.kept_fp32
    assert result.description.layer("stem.0").weight_dtype == "float32"
    with pytest.raises(QuantError, match="keep_fp32 names no layer or node: nope"):
        quantize(TINY.build(), QuantConfig("static", keep_fp32=("nope",)), TINY)


def test_training_methods_need_data() -> None:
    with pytest.raises(QuantError, match="labelled training data; model 'tiny' has none"):
        quantize(TINY.build(), parse_quant("qat"), TINY)
