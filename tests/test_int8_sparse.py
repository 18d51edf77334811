"""Int8 + sparse (issue 6): the int8 BSR kernel vs an integer reference, and pruned int8
models on it end to end, bit exact against the integer reference executor."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import tvm

from edgebench.compile.sparse_choice import Int8MeasuredChoice
from edgebench.kernels.int8_sparse import bias_shift, int8_bsr_kernel, to_int8_bsr
from edgebench.models import get_model
from edgebench.passes.int8 import export_float, functions_using, lower_int8
from edgebench.passes.int8_sparse import Int8Sparse
from edgebench.pipeline import run
from edgebench.quantize.arith import requantize
from edgebench.targets import find_target
from edgebench.variant import VariantError, parse_variant
from edgebench.verify import TOLERANCE
from tests.helpers import (
    ARM_DOTPROD,
    VNNI,
    board_session,
    build_lowering_arm,
    build_vm,
    need_board,
    oracle,
    run_on_board,
    run_vm,
    x86_int8_target,
)

needs_vnni = pytest.mark.skipif(not VNNI, reason="this host has no AVX512-VNNI")


def _block_sparse_int8(rng, n: int, k: int, rows: int, density: float) -> np.ndarray:
    """int8 [n, k] with whole rows x 1 blocks zero; extremes (-128 x 255) included."""
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    keep = rng.random((n // rows, k)) < density
    keep[0, 0] = True
    keep[-1] = False  # an empty block-row
    w = w * np.repeat(keep, rows, axis=0).astype(np.int8)
    w[0, 0] = -128
    return w


# (m, n, k, rows, out, zero point, clamp): odd K, M = 1 and M > 1 (not a multiple of the
# row blocking), every epilogue
CASES = [
    (1, 48, 37, 16, "uint8", 3, (3, 255)),
    (3, 32, 50, 16, "int8", -5, (-128, 127)),
    (5, 40, 29, 8, "float32", 0, (0, 0)),
    (1, 24, 61, 8, "int32", 0, (0, 0)),
    (6, 20, 45, 4, "uint8", 0, (0, 6 * 17)),  # a narrowed (ReLU6-like) clamp
    (1, 12, 19, 4, "float32", 0, (0, 0)),
]


def _case(i: int, m, n, k, rows, out, zp, clamp, isa: str = "vnni"):
    """Kernel arguments (int8 BSR form; sdot's bias with 128 * sum(w)) and the expected
    output (reference.py's arithmetic)."""
    rng = np.random.default_rng(i)
    w = _block_sparse_int8(rng, n, k, rows, density=0.3)
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    x[0, 0] = 255
    bias = rng.integers(-5000, 5000, n).astype(np.int64)
    acc = x.astype(np.int64) @ w.T.astype(np.int64) + bias
    bsr = to_int8_bsr(w, rows)
    args = [x, bsr.data, bsr.indices, bsr.indptr, (bias + bias_shift(w, isa)).astype(np.int32)]
    if out == "int32":
        return bsr, w, args, acc.astype(np.int32)
    if out == "float32":
        scale = rng.uniform(1e-4, 1e-2, n).astype(np.float32)
        return bsr, w, [*args, scale], acc.astype(np.int32).astype(np.float32) * scale
    m0 = rng.integers(2**29, 2**31 - 1, n).astype(np.int64)
    shift = rng.integers(36, 40, n).astype(np.int64)
    want = requantize(torch.from_numpy(acc), torch.from_numpy(m0), torch.from_numpy(shift),
                      zp, *clamp).numpy().astype(out)
    return bsr, w, [*args, m0, shift], want


@functools.cache
def _library():
    funcs = {}
    for i, (m, _n, _k, _rows, out, zp, clamp) in enumerate(CASES):
        bsr = _case(i, *CASES[i])[0]
        funcs[f"k{i}"] = int8_bsr_kernel(m, bsr, out, zp, *clamp).with_attr(
            "global_symbol", f"k{i}")
    return tvm.compile(tvm.IRModule(funcs), target=find_target("x86-native").tvm_target()).mod


def test_int8_bsr_layout_holds_exactly_the_weight() -> None:
    """Tiles of 4 columns per block-row, the last one padded with zero columns: expanding
    them back gives the weight; a block that does not tile is refused."""
    rng = np.random.default_rng(0)
    w = _block_sparse_int8(rng, 32, 23, 16, density=0.3)
    bsr = to_int8_bsr(w, 16)
    dense = np.zeros_like(w, dtype=np.int64)
    for b in range(2):
        for t in range(bsr.indptr[b], bsr.indptr[b + 1]):
            tile = bsr.data[t].reshape(16, 4)
            for j, col in enumerate(bsr.indices[t]):
                dense[b * 16:(b + 1) * 16, col] += tile[:, j]
    np.testing.assert_array_equal(dense, w)
    cols = np.count_nonzero(np.any(w[:16] != 0, axis=0))
    assert cols % 4 != 0 and bsr.indptr[1] == -(-cols // 4)  # the last tile is padded
    assert bsr.indptr[2] == bsr.indptr[1]  # the empty block-row has no tile
    with pytest.raises(ValueError, match="does not tile"):
        to_int8_bsr(w[:24], 16)
    with pytest.raises(ValueError, match="no vpdpbusd form"):
        to_int8_bsr(w, 2)


@needs_vnni
@pytest.mark.parametrize("i", range(len(CASES)))
def test_int8_bsr_kernel_bit_exact(i: int) -> None:
    m, n, _k, _rows, out, _zp, clamp = CASES[i]
    _bsr, _w, args, want = _case(i, *CASES[i])
    y = tvm.runtime.tensor(np.zeros((m, n), out))
    _library()[f"k{i}"](*[tvm.runtime.tensor(a) for a in args], y)
    got = y.numpy()
    if out == "float32":  # float32(acc) * scale: one rounding, the same on both sides
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64))
    if out in ("uint8", "int8"):  # the clamp really bites and values are not all clamped
        assert np.any(got == clamp[0]) and np.any(got == clamp[1])
        assert len(np.unique(got)) > 10


@needs_vnni
def test_int8_bsr_kernel_assembly_has_vpdpbusd() -> None:
    asm = _library().inspect_source("asm")
    assert functions_using(asm, "vpdpbusd") == {f"k{i}" for i in range(len(CASES))}


# ------------------------------------------------------------------- the lowering


def _pruned_int8(text: str, model: str = "digits-mlp"):
    spec = get_model(model)
    variant = parse_variant(text)
    transformed = variant.apply(spec.build(), spec)
    return spec, transformed.quantized


def _lower_sparse(spec, result, sparse: Int8Sparse):
    return lower_int8(export_float(result.float_model, spec.example_input()),
                      result.description, x86_int8_target(), sparse=sparse)


@needs_vnni
@pytest.mark.parametrize("block", ["16x1", "8x1", "4x1"])
def test_pruned_digits_mlp_on_int8_bsr_bit_exact(block: str) -> None:
    """prune=block:Rx1:0.9+quant=static: both pruned layers on the Rx1 int8 BSR kernel (the
    unpruned classifier on the dense one), outputs equal to the integer reference; the
    int8 weights keep the pruning's zeros (only their blocks are stored)."""
    spec, result = _pruned_int8(f"prune=block:{block}:0.9+quant=static")
    sparse = Int8Sparse()
    low = _lower_sparse(spec, result, sparse)
    kernels = [la.kernel for la in low.layers if la.op == "linear"]
    assert kernels == [f"vnni-bsr{block}"] * 2 + ["vnni"]
    assert [layer.converted for layer in sparse.layers] == [True, True, False]
    linears = [la for la in result.description.layers if la.op == "linear"]
    for layer, la in zip(sparse.layers[:2], linears, strict=False):
        r = int(block.split("x")[0])
        w = la.weight_q.numpy()
        assert layer.block == (r, 1) and layer.sparsity >= 0.89  # quantizing kept the zeros
        cols = np.any(w.reshape(-1, r, w.shape[1]) != 0, axis=1).sum(axis=1)
        assert to_int8_bsr(w, r).tiles == int(np.sum(-(-cols // 4)))  # only blocks stored
    xs = spec.eval_data()[0]
    np.testing.assert_array_equal(run_vm(build_vm(low.mod, low), xs), oracle(result, xs))


@needs_vnni
def test_dynamic_int8_on_int8_bsr_matches_oracle() -> None:
    """quant=dynamic: the raw int32 accumulators (epilogue "int32") on the sparse kernel;
    only the float rescale after them may differ by an ulp. That ulp (LLVM may contract the
    rescale and bias add into one FMA on one CPU and not on another) can move the next
    layer's run-time quantization across a rounding step, so a few samples may differ by a
    quantization step: the rest must agree to float rounding, all within the int8 tolerance
    the pipeline verifies dynamic rows with."""
    spec, result = _pruned_int8("prune=block:16x1:0.9+quant=dynamic")
    low = _lower_sparse(spec, result, Int8Sparse())
    assert [la.kernel for la in low.layers if la.op == "linear"] == (
        ["vnni-bsr16x1"] * 2 + ["vnni"])
    xs = spec.eval_data()[0]
    got, want = run_vm(build_vm(low.mod, low), xs), oracle(result, xs)
    scale = np.abs(want).max()
    per_sample = np.abs(got - want).reshape(len(xs), -1).max(axis=1)
    assert (per_sample <= 1e-5 * scale).mean() >= 0.9
    assert per_sample.max() <= TOLERANCE["int8"] * scale


@needs_vnni
def test_unstructured_and_rejected_layers_stay_dense_with_a_reason() -> None:
    """No blocks in the zero pattern: the dense int8 kernel, and the row says why; a layer
    the measured choice rejects stays dense too; the outputs stay bit exact."""
    spec, result = _pruned_int8("prune=unstructured:0.9+quant=static")
    sparse = Int8Sparse()
    low = _lower_sparse(spec, result, sparse)
    assert not any(layer.converted for layer in sparse.layers)
    assert "no 16x1/8x1/4x1 blocks" in sparse.layers[0].reason
    assert "sparsity below" in sparse.layers[2].reason
    spec, result = _pruned_int8("prune=block:16x1:0.9+quant=static")
    seen = []
    sparse = Int8Sparse(select=lambda layer, dense, kernel: seen.append(layer) or
                        layer.index == 1)
    low = _lower_sparse(spec, result, sparse)
    assert [layer.index for layer in seen] == [0, 1]
    assert [la.kernel for la in low.layers if la.op == "linear"] == ["vnni", "vnni-bsr16x1",
                                                                    "vnni"]
    assert sparse.layers[0].reason == "dense int8 measured faster"
    xs = spec.eval_data()[0]
    np.testing.assert_array_equal(run_vm(build_vm(low.mod, low), xs), oracle(result, xs))


@pytest.mark.slow
@needs_vnni
def test_measured_choice_times_both_kernels() -> None:
    """`+sparse`: each candidate is timed on the dense vpdpbusd kernel and on the int8 BSR
    one; at 90% 16x1 on the mlp's 2048x2048 layer the sparse kernel wins (it does 1/10 of
    the MACs: a 2x margin holds even on a loaded core)."""
    spec, result = _pruned_int8("prune=block:16x1:0.9+quant=static", "mlp")
    sparse = Int8Sparse(select=Int8MeasuredChoice(find_target("x86-native")))
    _lower_sparse(spec, result, sparse)
    big = sparse.layers[1]
    assert big.shape == (2048, 2048) and big.converted
    assert big.dense_us is not None and big.sparse_us is not None
    assert 2 * big.sparse_us < big.dense_us
    assert "sparse 16x1 sparse" in big.describe() and "us vs dense" in big.describe()


# ---------------------------------------------------------- variant and pipeline


def test_variant_grammar_accepts_int8_sparse() -> None:
    v = parse_variant("prune=block:16x1:0.9+quant=static+sparse=all")
    assert (v.prune, v.quant, v.sparse) == ("block:16x1:0.9", "static", "all")
    assert v.name == "prune=block:16x1:0.9+quant=static+sparse=all"
    assert parse_variant("prune=block:4x1:0.8+quant=dynamic+sparse").sparse == "auto"
    with pytest.raises(VariantError, match="not fp16"):
        parse_variant("prune=block:16x1:0.9+quant=fp16+sparse")


@pytest.mark.slow
def test_pipeline_int8_sparse_row(tmp_path) -> None:
    """The row: int8, bit exact against the integer reference, which layers went sparse
    (and their code checked for vpdpbusd), sparse-kernel."""
    df = run(models=["digits-mlp"], variants=["prune=block:16x1:0.9+quant=static+sparse=all"],
             runtimes=["tvm"], trials=0, target="x86-native", output=tmp_path / "r.csv",
             log=lambda _m: None)
    row = next(df.itertuples())
    assert row.status == "ok" and row.quant_kind == "int8" and row.verify_err == 0.0
    if VNNI:
        assert row.int8_layers.count("/vnni-bsr16x1(vpdpbusd)") == 2
        assert "NO vpdpbusd" not in row.int8_layers
        assert row.prune_kind == "sparse-kernel"
        assert row.sparse_layers.count("sparse 16x1") == 2
    # the pruned model's own accuracy (one-shot 90% costs digits-mlp: 0.43 measured), from
    # outputs equal to the integer reference's; far above chance (0.1)
    assert row.accuracy > 0.3


# ------------------------------------------- aarch64 sdot (4x1 tiles), emulated board

SDOT_CASES = [(m, n, k, 4, out, zp, clamp) for (m, n, k, _r, out, zp, clamp) in CASES]


def _sdot_library(tmp_path):
    """All sdot cases in one library cross-compiled for arm-dotprod: (path, assembly)."""
    from tvm.support import cc

    t = find_target("arm-dotprod")
    funcs = {f"k{i}": int8_bsr_kernel(m, _case(i, *c, isa="sdot")[0], out, zp, *clamp,
                                      isa="sdot").with_attr("global_symbol", f"k{i}")
             for i, c in enumerate(SDOT_CASES) for (m, _n, _k, _r, out, zp, clamp) in [c]}
    lib = tvm.compile(tvm.IRModule(funcs), target=t.tvm_target()).mod
    path = tmp_path / "bsr_sdot.so"
    lib.export_library(str(path), fcompile=cc.cross_compiler(t.cross_compiler))
    return path, lib.inspect_source("asm")


@pytest.mark.arm
def test_sdot_bsr_kernel_assembly_has_sdot(tmp_path) -> None:
    _, asm = _sdot_library(tmp_path)
    assert functions_using(asm, "sdot") == {f"k{i}" for i in range(len(SDOT_CASES))}


@pytest.mark.arm
def test_sdot_bsr_kernel_bit_exact_on_the_board(tmp_path) -> None:
    target = need_board(find_target("arm-dotprod"))
    path, _ = _sdot_library(tmp_path)
    results = []
    with board_session(target) as sess:
        sess.upload(str(path))
        lib = sess.load_module(path.name)
        dev = sess.cpu()
        for i, c in enumerate(SDOT_CASES):
            m, n, _k, _r, out, _zp, _clamp = c
            _bsr, _w, args, want = _case(i, *c, isa="sdot")
            y = tvm.runtime.tensor(np.zeros((m, n), out), dev)
            lib[f"k{i}"](*[tvm.runtime.tensor(a, dev) for a in args], y)
            results.append((y.numpy(), want))
        del lib, dev, y, sess  # nothing may keep the session open (see _session)
    for i, (got, want) in enumerate(results):
        np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64),
                                      err_msg=f"case {i}")


@pytest.mark.arm
def test_pruned_digits_mlp_on_sdot_bsr_bit_exact_on_the_board(tmp_path) -> None:
    """prune=block:16x1:0.9+quant=static lowered for aarch64 +dotprod: the pruned layers on
    4x1 sdot tiles (bias with 128 * sum(w)), code checked for sdot, bit exact on the board."""
    spec, result = _pruned_int8("prune=block:16x1:0.9+quant=static")
    sparse = Int8Sparse()
    low = lower_int8(export_float(result.float_model, spec.example_input()),
                     result.description, find_target(ARM_DOTPROD), sparse=sparse)
    assert [la.kernel for la in low.layers if la.op == "linear"] == (
        ["sdot-bsr4x1"] * 2 + ["sdot"])
    path = build_lowering_arm(low, tmp_path)  # asserts sdot in every layer's code
    assert low.summary().count("-bsr4x1(sdot)") == 2
    target = need_board(find_target("arm-dotprod"))
    xs = spec.eval_data()[0][:64]
    np.testing.assert_array_equal(run_on_board(target, path, xs), oracle(result, xs))
