"""Ternary and binary weights packed in the compiled artifact: the packed dot-product kernels
bit exact vs numpy (vpdpbusd here, sdot on the emulated board), the packing layout, and
digits-cnn quant=ternary / quant=binary end to end (bit exact vs the integer reference, the
artifact smaller than quant=static's by the weight bytes packing saved)."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

from edgebench.kernels.int8_conv import (
    X86_VNNI,
    ConvShape,
    DotIsa,
    conv_dot_kernel,
    dense_weights,
    packable_bits,
)
from edgebench.kernels.int8_conv_arm import SDOT
from edgebench.models import get_model
from edgebench.passes.int8 import _weight_bits, export_float, functions_using, lower_int8
from edgebench.quantize import QuantConfig, quantize
from edgebench.quantize.arith import requantize
from edgebench.quantize.scheme import LayerQuant
from edgebench.targets import find_target
from tests.helpers import ARM_DOTPROD, board_session, conv_ref, need_board, x86_int8_target

VNNI = find_target("x86-native").vnni
needs_vnni = pytest.mark.skipif(not VNNI, reason="this host has no AVX512-VNNI")

# (shape: C and K padded to the kernels' multiples, real C, real K, out dtype, zero point,
# clamp): odd channel counts, strided, 1x1 and 3x3, dilated, every epilogue
CASES = [
    (ConvShape(1, 10, 10, 8, 32, 3, 3, (1, 1)), 5, 24, "uint8", 3, (3, 200)),
    (ConvShape(1, 11, 9, 12, 16, 3, 3, (2, 2)), 11, 13, "int8", -5, (-128, 127)),
    (ConvShape(1, 1, 7, 64, 48, 1, 1, (1, 1)), 63, 40, "float32", 0, (0, 0)),
    (ConvShape(1, 9, 9, 4, 16, 1, 1, (2, 2)), 3, 16, "int32", 0, (0, 0)),
    (ConvShape(1, 7, 7, 4, 32, 2, 2, (1, 1), (2, 2)), 4, 17, "uint8", 0, (0, 255)),
]


def _case(isa: DotIsa, bits: int, i: int):
    """Kernel arguments (as the lowering builds them) and the expected output, sliced to K."""
    s, c, k, out, zp, clamp = CASES[i]
    rng = np.random.default_rng(10 * i + bits)
    x = rng.integers(0, 256, (s.n, s.h, s.w, s.c), dtype=np.uint8)
    x[0, 0, 0, :c] = 255  # the extremes meet
    if bits == 1:
        x[..., c:] = 0  # binary's +1 padding weights need zero channels (kernel docstring)
    w = rng.integers(-1, 2, (k, c, s.kh, s.kw)).astype(np.int8)
    if bits == 1:
        w[w == 0] = 1
    bias = rng.integers(-5000, 5000, k).astype(np.int64)
    acc = conv_ref(x[..., :c], w, s) + bias
    kbias = np.zeros(s.k, np.int64)
    kbias[:k] = bias + isa.bias_shift(dense_weights(w, s.c, s.k, bits))[:k]
    args = [x, isa.pack_weights(w, s.c, s.k, bits), kbias.astype(np.int32)]
    if out == "int32":
        return args, acc.astype(np.int32)
    if out == "float32":
        scale = rng.uniform(1e-3, 1e-1, s.k).astype(np.float32)
        return [*args, scale], acc.astype(np.int32).astype(np.float32) * scale[:k]
    m0 = rng.integers(2**29, 2**31 - 1, s.k).astype(np.int64)
    shift = rng.integers(34, 38, s.k).astype(np.int64)
    want = requantize(torch.from_numpy(acc), torch.from_numpy(m0[:k]),
                      torch.from_numpy(shift[:k]), zp, *clamp).numpy().astype(out)
    return [*args, m0, shift], want


def _library(isa: DotIsa, bits: int, target):
    funcs = {f"k{i}": conv_dot_kernel(isa, s, out, zp, *clamp, bits=bits)
             .with_attr("global_symbol", f"k{i}")
             for i, (s, _c, _k, out, zp, clamp) in enumerate(CASES)}
    return tvm.compile(tvm.IRModule(funcs), target=target).mod


def _body(asm: str, name: str) -> list[str]:
    """Instruction mnemonics of one function's body in an assembly listing."""
    start = asm.index(f"\n{name}_compute_:") + 1
    lines = []
    for line in asm[start:].splitlines()[1:]:
        if line and not line[0].isspace() and not line.startswith("."):
            break
        if line.startswith("\t") and not line.startswith("\t.") and line.split():
            lines.append(line.split()[0])
    return lines


def _check(results) -> None:
    for i, (got, want) in enumerate(results):
        out, clamp = CASES[i][3], CASES[i][5]
        np.testing.assert_array_equal(got, want, err_msg=f"case {i}")
        if out in ("uint8", "int8"):  # the clamp really bites
            assert (got == clamp[0]).any() or (got == clamp[1]).any(), f"case {i}"


# ---------------------------------------------------------------------- packing


@pytest.mark.parametrize("isa", [X86_VNNI, SDOT], ids=lambda isa: isa.name)
@pytest.mark.parametrize("bits", [2, 1])
def test_packed_layout_unpacks_to_the_int8_vectors(isa: DotIsa, bits: int) -> None:
    """Element i of each 4L-byte vector is in byte i % G at bit bits * (i // G), as the kernel
    unpacks it; 1/4 (ternary) or 1/8 (binary) of the int8 bytes."""
    rng = np.random.default_rng(bits)
    w = rng.integers(-1, 2, (20, 7, 3, 3)).astype(np.int8)
    if bits == 1:
        w[w == 0] = -1
    packed = isa.pack_weights(w, 8, 32, bits)
    dense = isa.pack_weights(dense_weights(w, 8, 32, bits), 8, 32)  # int8 vectors
    assert packed.nbytes * 8 == dense.nbytes * bits
    group = isa.vector * bits // 8
    raw = packed.view(np.uint8).reshape(*dense.shape[:4], group)
    i = np.arange(isa.vector)
    codes = (raw[..., i % group] >> (bits * (i // group))) & ((1 << bits) - 1)
    values = codes.astype(np.int64) - 1 if bits == 2 else 2 * codes.astype(np.int64) - 1
    np.testing.assert_array_equal(values, dense.reshape(*dense.shape[:4], -1))
    assert (dense_weights(w, 8, 32, bits)[20:] == (1 if bits == 1 else 0)).all()


def test_packing_refuses_values_outside_the_format() -> None:
    w = np.array([[[[1]], [[0]], [[-1]], [[1]]]], np.int8)  # K=1, C=4, 1x1
    assert packable_bits(w) == 2 and packable_bits(np.abs(w) * 2 - 1) == 1
    assert packable_bits(w * 2) == 8
    with pytest.raises(ValueError, match="binary"):
        X86_VNNI.pack_weights(w, 4, 16, 1)
    with pytest.raises(ValueError, match="ternary"):
        X86_VNNI.pack_weights(w * 2, 4, 16, 2)
    with pytest.raises(ValueError, match="3 bits"):
        X86_VNNI.pack_weights(w, 4, 16, 3)


def test_lowering_packs_only_layers_whose_values_fit() -> None:
    """The description's method picks the format, the values confirm it: a ternary layer
    with a 2 in it, or a static one, keeps int8 weights."""
    def layer(bits):
        return LayerQuant("l", "l", "conv2d", 0, "static", weight_bits=bits)

    t = np.array([-1, 0, 1, 1])
    assert _weight_bits(layer(2), t) == 2 and _weight_bits(layer(1), t) == 8
    assert _weight_bits(layer(1), np.array([-1, 1])) == 1
    assert _weight_bits(layer(2), np.array([-1, 2])) == 8
    assert _weight_bits(layer(8), np.array([-1, 1])) == 8


# ---------------------------------------------------------------- x86 kernels


@needs_vnni
@pytest.mark.parametrize("bits", [2, 1])
def test_packed_vnni_kernel_bit_exact_and_unpacks_once_per_vector(bits: int) -> None:
    lib = _library(X86_VNNI, bits, find_target("x86-native").tvm_target())
    results = []
    for i, (s, _c, k, out, *_rest) in enumerate(CASES):
        args, want = _case(X86_VNNI, bits, i)
        y = tvm.runtime.tensor(np.zeros((s.n, s.oh, s.ow, s.k), out))
        lib[f"k{i}"](*[tvm.runtime.tensor(a) for a in args], y)
        results.append((y.numpy()[..., :k], want))
    _check(results)
    asm = lib.inspect_source("asm")
    assert functions_using(asm, "vpdpbusd") == {f"k{i}" for i in range(len(CASES))}
    # the unpack (a variable word shift) runs once per weight vector, not once per pixel
    body = _body(asm, "k0")
    pb, _nk = X86_VNNI.blocking(CASES[0][0])
    assert pb >= 2 and body.count("vpsrlvd") >= 1
    assert body.count("vpsrlvd") * pb <= body.count("vpdpbusd")


# ----------------------------------------------------------- digits-cnn end to end


@functools.cache
def _quantized(method: str):
    spec = get_model("digits-cnn")
    config = QuantConfig(method, epochs=1) if method != "static" else QuantConfig(method)
    return quantize(spec.build(), config, spec)


def _compiled(method: str, tmp_path):
    """(lowering, VM, artifact bytes) of digits-cnn on the vpdpbusd kernels."""
    spec = get_model("digits-cnn")
    result = _quantized(method)
    low = lower_int8(export_float(result.float_model, spec.example_input()),
                     result.description, x86_int8_target())
    target = find_target("x86-native").tvm_target()
    with target:
        mod = relax.get_pipeline("zero")(low.mod)
    ex = tvm.compile(mod, target=target)
    assert low.check_asm(ex.mod.imports[0].inspect_source("asm")) == []
    path = tmp_path / f"{method}.so"
    ex.export_library(str(path))
    return low, relax.VirtualMachine(ex, tvm.cpu()), path.stat().st_size


@pytest.mark.slow
@needs_vnni
@pytest.mark.parametrize("method, bits", [("ternary", 2), ("binary", 1)])
def test_digits_cnn_lowbit_bit_exact_and_smaller_artifact(method: str, bits: int,
                                                          tmp_path) -> None:
    spec = get_model("digits-cnn")
    low, vm, size = _compiled(method, tmp_path)
    convs = [la for la in low.layers if la.op in ("conv2d", "linear")]
    assert len(convs) == 4 and all(la.kernel == "vnni" for la in convs)
    assert all(la.weights == method for la in convs), low.summary()
    assert low.summary().count(f"(vpdpbusd):{method}") == 4
    xs = spec.eval_data()[0]
    result = _quantized(method)
    got = np.stack([vm["main"](tvm.runtime.tensor(x.numpy()))[0].numpy() for x in xs])
    with torch.no_grad():
        want = np.stack([result.reference(x).numpy() for x in xs])
    np.testing.assert_array_equal(got, want)
    assert np.abs(want).max() > 0.1
    # the artifact holds the packed bytes: it shrinks by what packing saved (less any code
    # the unpack adds; at least half of the saving survives that)
    low8, _vm8, size8 = _compiled("static", tmp_path)
    int8_bytes = {la.node: la.weight_bytes for la in low8.layers if la.weight_bytes}
    packed = {la.node: la.weight_bytes for la in convs}
    assert all(packed[n] * 8 == int8_bytes[n] * bits for n in packed)  # same padded shapes
    saved = sum(int8_bytes.values()) - sum(packed.values())
    assert size8 - size >= saved / 2, (size8, size, saved)


def test_summary_names_the_weight_format() -> None:
    """int8_layers says how each layer of a ternary/binary model stores its weights."""
    from edgebench.passes.int8 import LoweredLayer

    assert (LoweredLayer("conv2d", "conv2d", "int8", "vnni", "k0", True, weights="ternary")
            .describe() == "conv2d=int8/vnni(vpdpbusd):ternary")
    assert LoweredLayer("c", "conv2d", "int8", "dw", weights="int8").describe() == "c=int8/dw:int8"
    assert re.fullmatch(r"a=int8", LoweredLayer("a", "add", "int8").describe())


# ------------------------------------------------------- aarch64 sdot, on the board


@pytest.mark.arm
@pytest.mark.parametrize("bits", [2, 1])
def test_packed_sdot_kernel_bit_exact_on_the_board(bits: int, tmp_path) -> None:
    """The same cases cross-compiled for Cortex-A76 +dotprod (sdot on x - 128, the bias shift
    over the padded dense weights), run on the emulated board."""
    from tvm.support import cc


    target = need_board(find_target(ARM_DOTPROD))
    lib = _library(SDOT, bits, target.tvm_target())
    assert functions_using(lib.inspect_source("asm"), "sdot") == {
        f"k{i}" for i in range(len(CASES))}
    path = tmp_path / f"sdot_w{bits}.so"
    lib.export_library(str(path), fcompile=cc.cross_compiler(target.cross_compiler))
    results = []
    with board_session(target) as sess:
        sess.upload(str(path))
        remote = sess.load_module(path.name)
        dev = sess.cpu()
        for i, (s, _c, k, out, *_rest) in enumerate(CASES):
            args, want = _case(SDOT, bits, i)
            y = tvm.runtime.tensor(np.zeros((s.n, s.oh, s.ow, s.k), out), dev)
            remote[f"k{i}"](*[tvm.runtime.tensor(a, dev) for a in args], y)
            results.append((y.numpy()[..., :k], want))
        del remote, dev, y, sess  # nothing may keep the session open (see _session)
    _check(results)
