"""End to end on real TVM: compile, run in a worker, verify against PyTorch, write rows."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import tvm
from tvm import relax

from edgebench.measure import QUICK
from edgebench.models import ModelError, get_model
from edgebench.pipeline import RunConfig, run
from edgebench.prune.stats import count_macs
from edgebench.report import COLUMNS, OutputError, read_rows
from edgebench.targets import TargetError
from edgebench.variant import VariantError
from tests.helpers import UNSUPPORTED_MODEL, run_pipeline


@pytest.mark.slow
def test_tvm_and_peers_match_pytorch_on_digits(tmp_path):
    df = run_pipeline(tmp_path, models=("digits-mlp", "digits-cnn"),
              runtimes=("tvm", "pytorch", "onnxruntime"))
    assert len(df) == 6 and set(df["status"]) == {"ok"}, df[["runtime", "error"]]
    for model in ("digits-mlp", "digits-cnn"):
        rows = df[df["model"] == model].set_index("runtime")
        # Same inputs, same weights: every runtime scores the same accuracy on the test split.
        assert rows.loc["tvm", "accuracy"] >= 0.95
        assert rows["accuracy"].nunique() == 1
        assert rows.loc["tvm", "max_abs_err"] < 1e-3
        assert rows.loc["tvm", "tuned_trials"] == 0  # untuned, and the row says so
        assert (rows["p50_ms"] > 0).all() and (rows["runs"] >= QUICK.min_runs).all()
        assert (rows["artifact_gzip_bytes"] < rows["artifact_bytes"]).all()
        assert (rows["params"] == rows["nonzero_params"]).all()
    csv_rows = read_rows(tmp_path / "r.csv")
    assert list(csv_rows[0].csv_fields()) == COLUMNS and len(csv_rows) == 6
    assert all(r.where.machine and r.where.timestamp for r in csv_rows)
    md = (tmp_path / "r.md").read_text()
    assert "## digits-cnn on x86-native" in md and "vs onnxruntime" in md
    assert (tmp_path / "r.env.json").exists()


@pytest.mark.slow
def test_resume_skips_finished_rows(tmp_path):
    logs: list[str] = []
    run_pipeline(tmp_path)
    run_pipeline(tmp_path, log=logs.append)
    assert len(read_rows(tmp_path / "r.csv")) == 1
    assert any("already measured, skipped" in m for m in logs)
    run_pipeline(tmp_path, resume=False)
    assert len(read_rows(tmp_path / "r.csv")) == 2


@tvm.transform.module_pass(opt_level=0, name="DropRelu")
def drop_relu(mod, _ctx):
    """A deliberately wrong rewrite: every ReLU becomes the identity."""

    @relax.expr_functor.mutator
    class Drop(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.relu":
                return call.args[0]
            return call

    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            mod[gv] = Drop().visit_expr(func)
    return mod


@pytest.mark.slow
def test_wrong_compiled_output_is_a_failed_row_without_timing(tmp_path):
    df = run_pipeline(tmp_path, extra_passes=[drop_relu])
    row = df.iloc[0]
    assert row["status"] == "failed"
    assert "outputs differ from PyTorch" in row["error"]
    assert pd.isna(row["p50_ms"]) and pd.isna(row["accuracy"])


@pytest.mark.slow
def test_tuning_is_cached_per_target(tmp_path):
    # (plain fp32 runs on our kernels and has no task to tune: TVM's ops with +metaschedule)
    ms = ["fp32+metaschedule"]
    first = run_pipeline(tmp_path, name="a.csv", trials=2, variants=ms).iloc[0]
    assert first["status"] == "ok" and first["tasks_tuned_now"] == first["tasks"] > 0
    second = run_pipeline(tmp_path, name="b.csv", trials=2, variants=ms).iloc[0]
    assert second["status"] == "ok"
    assert second["tasks_tuned_now"] == 0 and second["tuning_s"] == 0
    # Asking for fewer trials re-tunes nothing, and the row says what the build really used.
    third = run_pipeline(tmp_path, name="c.csv", trials=1, variants=ms).iloc[0]
    assert third["tasks_tuned_now"] == 0 and third["tuned_trials"] == 2


def test_unsupported_op_names_op_and_layer(tmp_path):
    path = tmp_path / "odd.py"
    path.write_text(UNSUPPORTED_MODEL)
    df = run_pipeline(tmp_path, models=(f"{path}:factory",), input_shape=(1, 8),
              runtimes=("tvm", "pytorch"))
    rows = df.set_index("runtime")
    assert rows.loc["tvm", "status"] == "failed"
    assert "TVM cannot import op 'i0.default' in layer 'odd' (Odd)" in rows.loc["tvm", "error"]
    assert rows.loc["pytorch", "status"] == "ok"  # the peer row is still measured


def test_failing_factory_fails_before_anything_is_measured(tmp_path):
    """Every model is built (and every variant checked against it) before the first row."""
    path = tmp_path / "odd.py"
    path.write_text(UNSUPPORTED_MODEL)
    with pytest.raises(ModelError, match="factory raised RuntimeError: no weights here"):
        run_pipeline(tmp_path, models=("digits-mlp", f"{path}:broken"), input_shape=(1, 8))
    assert read_rows(tmp_path / "r.csv") == []


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"models": ("resnet-19",)}, ModelError, "unknown model 'resnet-19'; known models"),
        ({"target": "pi9"}, TargetError, "unknown target 'pi9'"),
        ({"target": "rpi4-local"}, TargetError, "unknown target"),
        ({"variants": ("prune=magic:0.5",)}, VariantError, "unknown prune method 'magic'"),
        ({"output": "/etc/hostname/r.csv"}, OutputError, "cannot write results to"),
    ],
)
def test_bad_input_fails_before_running(tmp_path, kwargs, error, needle):
    kwargs = {"output": tmp_path / "r.csv", **kwargs}
    with pytest.raises(error, match=needle):
        run(RunConfig(runtimes=["tvm"], trials=0, measure=QUICK, log=lambda _m: None, **kwargs))


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgebench.cli", "run", "no-such-model",
                           "-o", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("edgebench: error: unknown model 'no-such-model'; known "
                                   "models: digits-mlp, digits-cnn, mlp, crepe-tiny, crepe-full, "
                                   "resnet18-digits, mobilenetv2-digits, resnet18, "
                                   "mobilenetv2, encoder")


@pytest.mark.slow
def test_cli_prune_reports_layers_and_errors(tmp_path):
    cmd = [sys.executable, "-m", "edgebench.cli", "prune", "digits-mlp", "unstructured:0.5",
           "--save", str(tmp_path / "p.pt")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "digits-mlp unstructured:0.5: masked" in out and "0.500" in out
    assert (tmp_path / "p.pt").exists()
    bad = subprocess.run([*cmd[:5], "unstructured:1.2"], capture_output=True, text=True)
    assert bad.returncode == 2 and "sparsity 1.2 is outside [0, 1)" in bad.stderr


@pytest.mark.slow
def test_cli_lists_models_and_targets():
    out = subprocess.run([sys.executable, "-m", "edgebench.cli", "models"],
                         capture_output=True, text=True, check=True).stdout
    assert "resnet18" in out and "1x3x224x224" in out
    out = subprocess.run([sys.executable, "-m", "edgebench.cli", "targets"],
                         capture_output=True, text=True, check=True).stdout
    assert "x86-native" in out and "rpi4" in out


@pytest.mark.slow
def test_pytest_plugin_fixture_runs_on_the_session_target(edgebench_run, edgebench_target):
    assert edgebench_target.name == "x86-native"
    df = edgebench_run(["digits-mlp"], runtimes=("tvm",))
    assert df.iloc[-1]["status"] == "ok" and df.iloc[-1]["target"] == "x86-native"


@pytest.mark.slow
def test_pruned_variants_flow_through_the_pipeline(tmp_path):
    df = run_pipeline(tmp_path, variants=("fp32", "prune=unstructured:0.9", "prune=channel:0.5"),
              runtimes=("tvm", "pytorch"))
    assert set(df["status"]) == {"ok"}, df[["variant", "runtime", "error"]]
    rows = df[df["runtime"] == "tvm"].set_index("variant")
    fp32, masked, structured = (rows.loc[v] for v in
                                ("fp32", "prune=unstructured:0.9", "prune=channel:0.5"))
    assert pd.isna(fp32["prune_kind"])
    assert masked["prune_kind"] == "masked" and masked["params"] == fp32["params"]
    assert masked["nonzero_params"] < 0.2 * fp32["params"]
    assert "=0.900" in masked["layer_sparsity"]
    assert structured["prune_kind"] == "structured"
    spec = get_model("digits-mlp")
    assert structured["params"] < 0.6 * fp32["params"]
    assert structured["macs"] < 0.6 * count_macs(spec.build(), spec.example_input())
    # Verified against the pruned PyTorch model, so TVM and PyTorch agree on accuracy.
    both = df.set_index(["variant", "runtime"])["accuracy"]
    assert both[("prune=unstructured:0.9", "tvm")] == both[("prune=unstructured:0.9", "pytorch")]



def test_results_file_from_an_older_version_is_upgraded_not_lost(tmp_path):
    from edgebench.report import ResultsWriter

    path = tmp_path / "old.csv"
    old = [c for c in COLUMNS if c != "sparse_layers"]
    path.write_text(",".join(old) + "\n" + ",".join(
        {"model": "mlp", "variant": "fp32", "runtime": "tvm", "target": "x86-native",
         "threads": "1", "status": "ok", "p50_ms": "1.5"}.get(c, "") for c in old) + "\n")
    writer = ResultsWriter(path)
    rows = read_rows(path)
    assert rows[0].timing.p50_ms == 1.5 and rows[0].build is None
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert ("mlp", "fp32", "tvm", "x86-native", "1") in writer.finished()
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(OutputError, match="different columns"):
        ResultsWriter(tmp_path / "other.csv")
