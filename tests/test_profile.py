"""Per-layer profile: each kernel timed alone, classified, and the parts add up to the whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgebench.profile import COVERAGE_BAND, ProfileConfig, kernel_kind, profile


def test_kernel_kind_is_read_from_attrs_names_and_dtypes() -> None:
    import tvm

    attrs = tvm.ir.make_node("ir.DictAttrs", **{"edgebench.kernel": "int4"})
    assert kernel_kind("fused_matmul_add", attrs, ["float32"]) == "int4"
    assert kernel_kind("sparse_dense_3", None, ["float32", "float32", "int32"]) == "sparse"
    assert kernel_kind("fused_sparse_conv2d_1", None, ["float32"]) == "sparse"
    assert kernel_kind("int8_dense_0", None, ["float32"]) == "int8"
    assert kernel_kind("fused_matmul_add", None, ["uint8", "int8", "int32"]) == "int8"
    assert kernel_kind("fused_conv2d_add_relu", None, ["float32", "float32"]) == "dense"
    assert kernel_kind("sparsemax", None, ["float32"]) == "dense"  # a name, not a prefix


@pytest.mark.slow
def test_profile_of_digits_cnn_adds_up(tmp_path: Path, capsys) -> None:
    """Through the CLI: fp32, untuned (trials 0 keeps the test short; the timing is the
    same code path). Measured here: sum/whole 0.96-1.0 for this model (see README)."""
    from edgebench.cli import main

    out = tmp_path / "cnn.csv"
    assert main(["profile", "digits-cnn", "--trials", "0", "-o", str(out)]) == 0
    assert "sum / whole" in capsys.readouterr().out
    df = pd.read_csv(out)
    # fp32 runs on our kernels (passes/fp32.py): 3 convs + the linear, and their glue
    assert (df["kind"] == "fp32").sum() == 4 and set(df["kind"]) == {"fp32", "glue"}
    assert (df["ms"] > 0).all()
    assert df["share"].sum() == pytest.approx(1.0)
    # The slowest kernel is a convolution (convs dwarf pooling and layout changes), and each
    # of our compute kernels has a rate against the measured FMA peak.
    assert "conv" in df.loc[df["ms"].idxmax(), "kernel"]
    ours = df[df["kind"] == "fp32"]
    assert (ours["gmac_s"] > 0).all() and (ours["of_peak"] > 0).all()
    assert out.with_suffix(".md").read_text().startswith("# profile: digits-cnn `fp32`")


@pytest.mark.slow
def test_sparse_variant_profile_lists_sparse_kernels(tmp_path: Path, capsys) -> None:
    """fp32 and the sparse variant side by side through the CLI, then the sparse one's parts."""
    from edgebench.cli import main

    out = tmp_path / "both.csv"
    variant = "prune=unstructured:0.9+sparse=all"
    assert main(["profile", "digits-cnn", "--variants", "fp32", variant, "--trials", "0",
                 "-o", str(out)]) == 0
    side_by_side = capsys.readouterr().out
    assert "ms per kernel kind" in side_by_side and "| speedup vs first | 1.00x |" in side_by_side
    both = pd.read_csv(out)
    assert set(both["variant"]) == {"fp32", variant}
    assert set(both[both["variant"] == "fp32"]["kind"]) == {"fp32", "glue"}
    f = both[both["variant"] == variant].reset_index(drop=True)
    prof = profile(ProfileConfig("digits-cnn", variant, trials=0, log=lambda _m: None))
    assert list(prof.frame()["kernel"]) == list(f["kernel"])  # the same build both times
    f = prof.frame()
    sparse = f[f["kind"] == "sparse"]
    assert len(sparse) >= 2  # the two 3x3 convs past the first are 90% sparse
    assert sparse["kernel"].str.startswith("fp32_sparse_conv_").all()  # the NHWC sparse conv
    assert sparse["layer"].str.match(r"conv2d#\d+\[\d+x\d+x3x3\] s=0\.9").all()
    assert "fp32" in set(f["kind"])  # the layers left dense run on our FP32 kernels
    kinds = prof.by_kind()
    assert kinds.loc["sparse", "ms"] == pytest.approx(sparse["ms"].sum())
    assert COVERAGE_BAND[0] <= prof.coverage <= COVERAGE_BAND[1], prof.markdown()
    assert np.isclose(prof.sum_ms, f["ms"].sum())
    calls = len(f)
    assert np.isclose(prof.outside_us_per_call * calls / 1e3, prof.whole_ms - prof.sum_ms)


@pytest.mark.slow
def test_int8_variant_profile_times_the_integer_kernels() -> None:
    """quant=static is profiled as `run` builds it: the integer lowering on edgebench's int8
    kernels (named by the layers they compute), not the fake-quant graph in float."""
    from edgebench.targets import find_target

    prof = profile(ProfileConfig("digits-cnn", "quant=static", trials=0, log=lambda _m: None))
    f = prof.frame()
    int8 = f[f["kind"] == "int8"]
    assert not int8.empty and int8["ms"].gt(0).all()
    if find_target("x86-native").vnni:
        ours = int8[int8["kernel"].str.startswith(("int8_conv_vnni_", "int8_conv_amx_"))]
        # three convs and the classifier, each named by its torch.export node
        assert sorted(",".join(ours["layer"]).split(",")) == [
            "conv2d", "conv2d_1", "conv2d_2", "linear"]


@pytest.mark.arm
def test_rpc_profile_on_the_board_lists_sparse_kernels() -> None:
    """The same profile over RPC on the emulated board (skips when none runs, fails in CI)."""
    import os

    from edgebench.execute.rpc import BoardError, probe_board
    from edgebench.targets import find_target

    target = find_target("arm")
    try:
        probe_board(target)
    except BoardError as e:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must start the emulated board (.ci/run): {e}")
        pytest.skip(f"no board running: {e}")
    prof = profile(ProfileConfig("digits-mlp", "prune=unstructured:0.9+sparse=all", "arm",
                                 trials=0, log=lambda _m: None))
    assert prof.board.startswith("arm@") and prof.emulated
    kinds = prof.by_kind()
    # the layer left dense runs on our NEON FP32 kernel (tests/test_neon_kernels.py)
    assert kinds.loc["sparse", "kernels"] == 2 and kinds.loc["fp32", "kernels"] == 1
    # Emulated: three tiny kernels under qemu, VM dispatch is a large part (0.62 measured).
    assert COVERAGE_BAND[0] <= prof.coverage <= COVERAGE_BAND[1], prof.markdown()


@pytest.mark.slow
def test_cold_timing_flushes_the_weights() -> None:
    """`--cold` (TimingConfig.cold): a GEMV's 512 KB of weights, flushed before every call,
    come from memory; timed hot (repeated calls) they stay in the L2. The whole is a
    stand-in timer (the GEMV itself) so the interleaving runs unchanged."""
    import tvm

    from edgebench.kernels.fp32_conv import pad_bias
    from edgebench.kernels.fp32_dense import dense_kernel, dense_shape
    from edgebench.kernels.fp32_dense import pack_weights as pack_dense
    from edgebench.kernels.layer import Epilogue
    from edgebench.profile import KernelCall, TimingConfig, time_interleaved
    from edgebench.targets import find_target

    c, k = 512, 256
    s = dense_shape(1, c, k)
    w = np.random.default_rng(0).standard_normal((k, c)).astype(np.float32)
    func = dense_kernel(s, Epilogue()).with_attr("global_symbol", "gemv")
    lib = tvm.compile(tvm.IRModule({"gemv": func}),
                      target=find_target("x86-native").tvm_target()).mod
    call = KernelCall(0, "gemv", "fp32", [((1, 1, 1, c), "float32"), pack_dense(w, s),
                                          pad_bias(None, k, s.k)], [((1, 1, 1, s.k), "float32")])
    args = [tvm.runtime.tensor(np.zeros(a[0], np.float32)) if isinstance(a, tuple)
            else tvm.runtime.tensor(a) for a in [*call.args, *call.outputs]]
    whole = (lib.time_evaluator("gemv", tvm.cpu(), number=1, repeat=1), args)
    times = {cold: time_interleaved(lib, tvm.cpu(), [call], whole,
                                    TimingConfig(rounds=9, min_repeat_ms=1, cold=cold))[0][0]
             for cold in (False, True)}
    assert 0 < 1.5 * times[False] < times[True]  # measured 3x (5 vs 15 us) on a loaded core
