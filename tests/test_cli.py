"""The first ten minutes: --version, help, errors before torch/TVM load, quiet workers, the
summary table the run ends with, --json, packaged target files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from edgebench.cli import DEFAULT_VARIANTS, MAX_DROP, VARIANT_HELP, _parser, main
from edgebench.prune import METHODS as PRUNE_METHODS
from edgebench.quantize import METHODS as QUANT_METHODS
from edgebench.report import ResultsWriter
from edgebench.report.export import write_json
from edgebench.report.tables import MAX_DROP_PTS, headline, load, summary
from edgebench.targets import TARGETS_DIR, find_target
from edgebench.variant import parse_variant

ROOT = Path(__file__).resolve().parent.parent


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("edgebench 0.1.0 (") and "torch" in out and "apache-tvm" in out


def test_run_help_lists_every_variant_grammar_with_defaults() -> None:
    text = _parser()._subparsers._group_actions[0].choices["run"].format_help()
    for method in (*PRUNE_METHODS, *QUANT_METHODS):
        assert f"prune={method}" in text or method in text.split("quant=", 1)[1], method
    assert "+sparse" in text and "prune=nm:2:4+quant=static" in text
    assert "(default: 32)" in text and "(default: x86-native)" in text
    assert f"(default: {MAX_DROP})" in text and MAX_DROP == MAX_DROP_PTS
    examples = [line.split()[-1] for line in VARIANT_HELP.splitlines()[1:]
                if line.split()[-1].startswith(("prune=", "quant="))]
    assert len(examples) == 13  # one per grammar line but fp32
    for ex in [*examples, *DEFAULT_VARIANTS]:
        parse_variant(ex)  # every example and default is valid grammar


BAD_INPUT = [
    (["run", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    (["run", "digits-cnn", "--target", "nosuch"], "unknown target 'nosuch'"),
    (["run", "digits-cnn", "--target", "missing.toml"], "missing.toml: target file not found"),
    (["run", "digits-cnn", "--variants", "prune=bogus:0.5"], "unknown prune method 'bogus'"),
    (["run", "digits-cnn", "--variants", "quant=static+sparse"], "sparse kernels need pruned"),
    (["run", "digits-cnn", "--variants", "prune=unstructured:1.5"], "prune=unstructured:1.5"),
    (["run", "digits-cnn", "--runtimes", "tflite"], "unknown runtime 'tflite'"),
    (["run", "digits-cnn", "-o", "/proc/no/such/r.csv"], "cannot write results to"),
    (["run", "nofile.py:make", "--input-shape", "1,8"], "file not found: nofile.py"),
    (["run", "net.py:make"], "file not found"),
    (["compare", "a.csv", "b.csv"], "no such file: a.csv, b.csv"),
    (["report", "missing.csv"], "no such file: missing.csv"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_INPUT)
def test_bad_input_one_line_exit_2_before_torch_and_tvm(argv, needle, tmp_path) -> None:
    """In a fresh interpreter: the error is one line, exit 2, and neither torch nor TVM was
    imported to say it (so it comes at once)."""
    code = ("import sys; from edgebench.cli import main; rc = main(sys.argv[1:]); "
            "heavy = [m for m in ('torch', 'tvm', 'pandas') if m in sys.modules]; "
            "print('HEAVY', heavy); sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgebench: error:") and needle in lines[0]
    assert "HEAVY []" in p.stdout


@pytest.mark.slow
def test_third_party_noise_filtered_in_every_process_unless_verbose() -> None:
    """torchao's "Failed to load ... cutlass" log lines and torch FutureWarnings appear when
    torchao is imported; EDGEBENCH_QUIET=1 (what the CLI sets, inherited by workers) removes
    them at their source, and only there."""
    pytest.importorskip("torchao")
    code = ("import edgebench, warnings, torchao; "
            "warnings.warn('pytree spec deprecated', FutureWarning); print('done')")

    def stderr(quiet: str) -> str:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "EDGEBENCH_QUIET": quiet},
                           timeout=300)
        assert p.returncode == 0 and "done" in p.stdout, p.stderr
        return p.stderr

    loud, quiet = stderr("0"), stderr("1")
    assert "FutureWarning" in loud
    assert "FutureWarning" not in quiet and "Failed to load" not in quiet
    assert quiet.strip() == ""


def _row(variant: str, runtime: str, p50: float, acc: float, **kw) -> dict:
    return {"model": "digits-cnn", "variant": variant, "runtime": runtime, "target": "x86-native",
            "threads": 1, "status": "ok", "p50_ms": p50, "p90_ms": p50 * 1.02,
            "accuracy": acc, "top1_agreement": 1.0, "machine": "m1", "params": 100,
            "nonzero_params": 100, "artifact_bytes": 1000, "artifact_gzip_bytes": 500, **kw}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    path = tmp_path / "r.csv"
    w = ResultsWriter(path, {"machine": "m1", "isa": "avx512f"})
    for r in [
        _row("fp32", "tvm", 1.0, 0.99),
        _row("fp32", "onnxruntime", 0.6, 0.99),
        _row("fp32", "pytorch", 2.0, 0.99),
        _row("prune=unstructured:0.9+sparse", "tvm", 0.2, 0.10, prune_kind="sparse-kernel",
             nonzero_params=10),  # collapsed: 89 points lost
        _row("prune=channel:0.5", "tvm", 0.7, 0.985, prune_kind="structured"),
        _row("quant=static", "tvm", 0.5, 0.985, quant_kind="int8", artifact_bytes=400),
        _row("quant=static", "onnxruntime", 0.05, 0.985, quant_kind="simulated"),
        _row("int8:ort-static-qdq", "onnxruntime", 0.4, 0.985, quant_kind="int8-peer"),
        {**_row("quant=static", "tvm", 0.3, 0.0, quant_kind="int8"), "model": "resnet18",
         "accuracy": None, "top1_agreement": 0.72},
        {**_row("fp32", "tvm", 3.0, 0.0), "model": "resnet18", "accuracy": None},
    ]:
        w.append(r)
    return path


def test_summary_fastest_within_max_drop_vs_fastest_real_peer(results: Path) -> None:
    rows = load([results]).rows
    s = summary(rows, max_drop=1.0).set_index("model")
    cnn = s.loc["digits-cnn"]
    # the 0.2 ms sparse variant lost 89 points: never best; int8 at -0.5 pt is
    assert cnn["variant"] == "quant=static" and cnn["vs_tvm_fp32"] == pytest.approx(2.0)
    # vs the real int8 peer (ORT QDQ, 0.4 ms), never the simulated 0.05 ms fake-quant row
    assert cnn["best_peer"] == "onnxruntime int8:ort-static-qdq, int8"
    assert cnn["vs_best_peer"] == pytest.approx(0.8)
    assert cnn["size_vs_fp32"] == pytest.approx(0.4)
    assert cnn["metric"] == "top1 98.5%" and cnn["drop_pts"] == pytest.approx(0.5)
    # resnet18: int8 agreement 72% = 28 points below FP32: FP32 stays best, labelled fidelity
    rn = s.loc["resnet18"]
    assert rn["variant"] == "fp32" and "fidelity" in rn["metric"]
    # a looser --max-drop lets the collapsed variant through (the rule is the option)
    assert summary(rows, max_drop=90).set_index("model").loc["digits-cnn", "variant"] \
        == "prune=unstructured:0.9+sparse"


def test_headline_never_names_a_collapsed_variant(results: Path) -> None:
    h = headline(load([results]).rows).set_index(["model", "technique"])
    sparse = h.loc[("digits-cnn", "pruning + sparse kernels")]
    assert sparse["variant"] == "-" and "none within 1 pt (least drop 89.0 pt)" in sparse["rule"]
    assert h.loc[("resnet18", "quant static"), "variant"] == "-"
    q = h.loc[("digits-cnn", "quant static")]
    assert q["variant"] == "quant=static" and q["best_peer"].startswith("onnxruntime int8:")


def test_metric_columns_preferred_when_present(tmp_path: Path) -> None:
    """The shared column contract: metric_drop/evaluation win over accuracy when written."""
    rows = pd.DataFrame([
        _row("fp32", "tvm", 1.0, 0.99, metric="rpa", metric_value=80.0, metric_drop=0.0,
             evaluation="accuracy"),
        _row("quant=static", "tvm", 0.5, 0.99, quant_kind="int8", metric="rpa",
             metric_value=77.0, metric_drop=3.0, evaluation="accuracy"),
    ])
    path = tmp_path / "m.csv"
    rows.to_csv(path, index=False)
    s = summary(load([path]).rows).iloc[0]
    assert s["variant"] == "fp32" and s["metric"] == "rpa 80%"  # int8 lost 3 rpa points


def test_empty_summary_says_why(tmp_path: Path) -> None:
    """No row summarized: the line names the reason (no score vs FP32, or none within the
    drop), never "no ok TVM row" when there is one (the GRU user model's --quick run)."""
    from rich.console import Console

    from edgebench.report.console import print_summary

    def said(rows: list[dict], max_drop: float = 1.0) -> str:
        path = tmp_path / "s.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
        console = Console(record=True, width=200)
        print_summary(load([path]).rows, max_drop, console)
        return console.export_text()

    unscored = {**_row("fp32+metaschedule", "tvm", 1.0, None), "top1_agreement": None}
    assert "none has a score to compare with FP32" in said([unscored])
    collapsed = _row("fp32", "tvm", 1.0, 0.99, top1_agreement=0.5, metric_drop=40.0)
    assert "none within --max-drop 1 pt" in said([collapsed])
    assert "no ok TVM row" in said([{**collapsed, "status": "failed"}])


def test_json_beside_the_csv_has_the_rows_and_environment(results: Path) -> None:
    out = write_json(results)
    data = json.loads(out.read_text())
    assert data["environment"]["isa"] == "avx512f"
    assert len(data["rows"]) == len(pd.read_csv(results)) == 10
    assert data["rows"][0]["variant"] == "fp32" and data["rows"][0]["error"] is None


def test_target_files_ship_in_the_package_and_local_ones_still_found(tmp_path,
                                                                      monkeypatch) -> None:
    assert TARGETS_DIR == ROOT / "edgebench" / "target_files"
    assert find_target("x86-native").path.parent == TARGETS_DIR
    text = (TARGETS_DIR / "x86-native.toml").read_text()
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "mine.toml").write_text(text.replace('name = "x86-native"',
                                                                 'name = "mine"'))
    monkeypatch.chdir(tmp_path)
    assert find_target("mine").name == "mine"
    assert "package-data" in (ROOT / "pyproject.toml").read_text()
