"""Int8 on aarch64 with the dot product (+dotprod): our sdot kernel, cross-compiled and run on
the emulated board (qemu-user's default CPU model, max, has the dot product), against the
integer reference. Without a board these skip, except under CI=true (.ci/run starts it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgebench.kernels.int8_conv import ConvShape
from edgebench.kernels.int8_conv_arm import bias_shift, conv_sdot_kernel, pack_weights
from edgebench.measure import QUICK
from edgebench.passes.int8 import export_float, functions_using, lower_int8
from edgebench.pipeline import RunConfig, run
from edgebench.quantize import parse_quant, quantize
from edgebench.quantize.arith import requantize
from edgebench.targets import find_target
from tests.helpers import (
    ARM_DOTPROD,
    KERNELS,
    board_session,
    build_lowering_arm,
    conv_ref,
    need_board,
    run_on_board,
)

pytestmark = pytest.mark.arm
TARGET = ARM_DOTPROD

# (shape, out dtype, zero point, clamp): 3x3 with ReLU6-like clamp, strided int8 output with
# odd width and C not a multiple of 16, a linear as 1x1 (float out), raw int32 accumulators
CASES = [
    (ConvShape(1, 10, 10, 8, 16, 3, 3, (1, 1)), "uint8", 3, (3, 200)),
    (ConvShape(1, 11, 9, 12, 8, 3, 3, (2, 2)), "int8", -5, (-128, 127)),
    (ConvShape(1, 1, 5, 64, 12, 1, 1, (1, 1)), "float32", 0, (0, 0)),
    (ConvShape(1, 7, 7, 4, 4, 2, 2, (1, 1), (2, 2)), "int32", 0, (0, 0)),
]


@pytest.fixture(scope="module")
def target():
    return need_board(find_target(TARGET))


def _case_data(s: ConvShape, out: str, zp: int, clamp: tuple[int, int], seed: int):
    """Kernel arguments and the expected output (reference.py's arithmetic)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (s.n, s.h, s.w, s.c), dtype=np.uint8)
    x[0, 0, 0] = 255  # the extremes of both operands meet: 255 * -128
    w = rng.integers(-128, 128, (s.k, s.c, s.kh, s.kw)).astype(np.int8)
    w[0, :, 0, 0] = -128
    bias = rng.integers(-5000, 5000, s.k).astype(np.int64)
    acc = conv_ref(x, w, s) + bias
    args = [x, pack_weights(w, s.c, s.k), (bias + bias_shift(w)).astype(np.int32)]
    if out == "int32":
        return args, acc.astype(np.int32)
    if out == "float32":
        scale = rng.uniform(1e-4, 1e-2, s.k).astype(np.float32)
        return [*args, scale], acc.astype(np.int32).astype(np.float32) * scale
    m0 = rng.integers(2**29, 2**31 - 1, s.k).astype(np.int64)
    shift = rng.integers(38, 44, s.k).astype(np.int64)
    want = requantize(torch.from_numpy(acc), torch.from_numpy(m0), torch.from_numpy(shift),
                      zp, *clamp).numpy().astype(out)
    return [*args, m0, shift], want


def _build(tmp_path: Path):
    """All cases in one cross-compiled library: (path, assembly)."""
    import tvm
    from tvm.support import cc

    t = find_target(TARGET)
    funcs = {f"k{i}": conv_sdot_kernel(s, out, zp, *clamp).with_attr("global_symbol", f"k{i}")
             for i, (s, out, zp, clamp) in enumerate(CASES)}
    lib = tvm.compile(tvm.IRModule(funcs), target=t.tvm_target()).mod
    path = tmp_path / "sdot.so"
    lib.export_library(str(path), fcompile=cc.cross_compiler(t.cross_compiler))
    return path, lib.inspect_source("asm")


def test_arm_targets_with_dotprod_get_the_sdot_kernel():
    assert find_target(TARGET).dotprod and find_target("rpi5").dotprod
    assert not find_target("arm").dotprod and not find_target("rpi4").dotprod


def test_sdot_kernel_assembly_has_sdot(tmp_path):
    _, asm = _build(tmp_path)
    assert functions_using(asm, "sdot") == {f"k{i}" for i in range(len(CASES))}


def test_sdot_kernel_bit_exact_on_the_board(target, tmp_path):
    import tvm

    path, _ = _build(tmp_path)
    results = []
    with board_session(target) as sess:
        sess.upload(str(path))
        lib = sess.load_module(path.name)
        dev = sess.cpu()
        for i, (s, out, zp, clamp) in enumerate(CASES):
            args, want = _case_data(s, out, zp, clamp, seed=i)
            y = tvm.runtime.tensor(np.zeros((s.n, s.oh, s.ow, s.k), out), dev)
            lib[f"k{i}"](*[tvm.runtime.tensor(a, dev) for a in args], y)
            results.append((y.numpy(), want))
        del lib, dev, y, sess  # nothing may keep the session open (see _session)
    for i, ((_s, out, _zp, clamp), (got, want)) in enumerate(zip(CASES, results, strict=True)):
        if out == "float32":  # float32(acc) * scale: one rounding, the same on both sides
            np.testing.assert_array_equal(got, want, err_msg=f"case {i}")
        else:
            np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64),
                                          err_msg=f"case {i}")
        if out not in ("float32", "int32"):  # the clamp really bites
            assert (got == clamp[0]).any() or (got == clamp[1]).any(), f"case {i}"


# depthwise (padded h, w, channels, kernel, stride): 3x3 at strides 1/2, 5x5 (two tap groups)
DW_CASES = [(9, 10, 16, 3, 1), (11, 11, 32, 3, 2), (9, 9, 16, 5, 1)]


def test_depthwise_sdot_bit_exact_on_the_board(target, tmp_path):
    """The depthwise kernel on sdot (4 channels x 4 kernel rows per instruction, activations
    x - 128 and 128 * sum(w) in the bias) against int64 + arith.requantize; sdot in its code."""
    import tvm
    from tvm.support import cc

    from edgebench.kernels.int8_conv_arm import SDOT
    from edgebench.kernels.int8_depthwise import depthwise_dot_kernel, pack_depthwise

    t = find_target(TARGET)
    shapes = [ConvShape(1, h, w, c, c, k, k, (st, st)) for h, w, c, k, st in DW_CASES]
    funcs = {f"d{i}": depthwise_dot_kernel(s, "uint8", 3, 0, 200, isa=SDOT)
             .with_attr("global_symbol", f"d{i}") for i, s in enumerate(shapes)}
    lib = tvm.compile(tvm.IRModule(funcs), target=t.tvm_target()).mod
    assert functions_using(lib.inspect_source("asm"), "sdot") == set(funcs)
    path = tmp_path / "dw.so"
    lib.export_library(str(path), fcompile=cc.cross_compiler(t.cross_compiler))
    cases = []
    for i, s in enumerate(shapes):
        rng = np.random.default_rng(i)
        x = rng.integers(0, 256, (1, s.h, s.w, s.c), dtype=np.uint8)
        w = rng.integers(-128, 128, (s.c, 1, s.kh, s.kw)).astype(np.int8)
        bias = rng.integers(-5000, 5000, s.c).astype(np.int64)
        acc = np.zeros((1, s.oh, s.ow, s.c), np.int64) + bias
        for kh in range(s.kh):
            for kw in range(s.kw):
                acc += x[:, kh:kh + (s.oh - 1) * s.stride[0] + 1:s.stride[0],
                         kw:kw + (s.ow - 1) * s.stride[1] + 1:s.stride[1]] * w[:, 0, kh, kw]
        m0 = rng.integers(2**29, 2**31 - 1, s.c).astype(np.int64)
        shift = rng.integers(38, 42, s.c).astype(np.int64)
        want = requantize(torch.from_numpy(acc), torch.from_numpy(m0), torch.from_numpy(shift),
                          3, 0, 200).numpy()
        assert len(np.unique(want)) > 30
        cases.append(([x, pack_depthwise(w), (bias + SDOT.bias_shift(w)).astype(np.int32), m0,
                       shift], want))
    got = []
    with board_session(target) as sess:
        sess.upload(str(path))
        mod = sess.load_module(path.name)
        dev = sess.cpu()
        for i, (args, want) in enumerate(cases):
            y = tvm.runtime.tensor(np.zeros(want.shape, "uint8"), dev)
            mod[f"d{i}"](*[tvm.runtime.tensor(a, dev) for a in args], y)
            got.append(y.numpy())
        del mod, dev, y, sess  # nothing may keep the session open (see _session)
    for i, (g, (_, want)) in enumerate(zip(got, cases, strict=True)):
        np.testing.assert_array_equal(g.astype(np.int64), want.astype(np.int64),
                                      err_msg=f"case {i}")


def test_digits_cnn_static_int8_on_the_board_with_sdot(target, tmp_path):
    cfg = RunConfig(models=["digits-cnn"], target=target.path, variants=["quant=static"],
                    runtimes=["tvm"], trials=0, output=tmp_path / "rows.csv", measure=QUICK,
                    log=lambda _m: None)
    df = run(cfg, target_override=target)
    row = df.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["quant_kind"] == "int8" and bool(row["emulated"])
    assert row["verify_err"] == 0
    layers = str(row["int8_layers"])
    assert "/sdot(sdot)" in layers and "NO sdot" not in layers, layers
    assert row["accuracy"] > 0.9


def _kernel_net_lowered(text: str = "static"):
    """test_int8's KernelNet (C=3 and K=24/7 padded, strided, residual add, depthwise, max
    pool, linears) quantized and lowered with sdot."""

    result = quantize(KERNELS.build(), parse_quant(text), KERNELS)
    low = lower_int8(export_float(result.float_model, KERNELS.example_input()),
                     result.description, find_target(ARM_DOTPROD))
    return result, low


def test_lowering_puts_conv_and_linear_on_sdot(tmp_path):
    """No board needed: which layers go on sdot, and their built code has it."""
    _, low = _kernel_net_lowered()
    ours = [la.node for la in low.layers if la.kernel == "sdot"]
    assert ours == ["conv2d", "conv2d_3", "conv2d_4", "linear", "linear_1"]
    assert [la.node for la in low.layers if la.kernel == "dw"] == ["conv2d_2"]  # depthwise
    assert not any(la.kernel == "vnni" for la in low.layers)
    build_lowering_arm(low, tmp_path)
    assert low.summary().count("/sdot(sdot)") == 5 and "=int8/dw(sdot)" in low.summary()


@pytest.mark.parametrize("text", ["static", "static:minmax:per-tensor"])
def test_kernel_net_bit_exact_on_the_board(target, tmp_path, text):
    result, low = _kernel_net_lowered(text)
    path = build_lowering_arm(low, tmp_path)
    xs = torch.randn(8, 1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2
    got = run_on_board(target, path, xs)
    with torch.no_grad():
        want = np.stack([result.reference(x).numpy() for x in xs])
    np.testing.assert_array_equal(got, want)
    assert np.abs(want).max() > 0.1
