"""The report: ratios inside one machine only, failed rows listed and never drawn, real PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from edgebench.report import COLUMNS, ResultsWriter, plots
from edgebench.report.document import write_report
from edgebench.report.tables import headline, load, pareto_mask, prune_method, summary

ENV = {"machine": "aaaa1111", "cpu": "Test CPU 9000", "arch": "x86_64", "isa": "avx2 fma",
       "logical_cpus": 4, "os": "Linux", "python": "3.11",
       "versions": {"torch": "2.13.0", "apache-tvm": "0.27.0.post1"}}


def _row(model="digits-cnn", variant="fp32", runtime="tvm", p50=1.0, machine="aaaa1111",
         target="x86-native", accuracy=0.99, **kw) -> dict:
    base = {"model": model, "variant": variant, "runtime": runtime, "target": target,
            "threads": 1, "cores": "0", "status": "ok", "p50_ms": p50,
            "p90_ms": p50 and p50 * 1.02, "std_ms": p50 and p50 * 0.01, "runs": 100,
            "artifact_bytes": 100_000, "artifact_gzip_bytes": 50_000, "params": 1000,
            "nonzero_params": 1000,
            "accuracy": accuracy, "top1_agreement": 1.0, "machine": machine,
            "emulated": False}
    return {**base, **kw}


ROWS = [
    _row(),
    _row(runtime="pytorch", p50=2.0, artifact_bytes=80_000, artifact_gzip_bytes=70_000),
    _row(runtime="onnxruntime", p50=0.5, artifact_bytes=90_000, artifact_gzip_bytes=60_000),
    _row(variant="prune=unstructured:0.9+sparse", p50=0.25, accuracy=0.985,
         nonzero_params=100, prune_kind="sparse-kernel", sparsity=0.9,
         artifact_bytes=40_000, artifact_gzip_bytes=15_000),
    _row(variant="prune=unstructured:0.9", p50=0.9, accuracy=0.985, nonzero_params=100,
         prune_kind="masked", sparsity=0.9),
    _row(variant="prune=channel:0.5", p50=0.5, accuracy=0.96, params=500, nonzero_params=500,
         prune_kind="structured"),
    _row(variant="prune=nm:2:4", status="failed", p50=None,
         error="outputs differ from PyTorch: max abs err 3.1 > 1e-4"),
    # The same variants on another machine: 10x faster FP32, so a mixed ratio would be 0.4x.
    _row(p50=0.1, machine="bbbb2222"),
    _row(variant="prune=unstructured:0.9+sparse", p50=0.4, accuracy=0.985, nonzero_params=100,
         prune_kind="sparse-kernel", sparsity=0.9, machine="bbbb2222"),
    # Board rows from the same host: qemu's FP32, and a real board's pruned row, never divided.
    _row(target="arm", p50=8.0, emulated=True, board="arm@127.0.0.1:9091"),
    _row(variant="prune=unstructured:0.9", target="arm", p50=2.0, nonzero_params=100,
         prune_kind="masked", board="arm@10.0.0.7:9091", emulated=False),
]


@pytest.fixture
def results_csv(tmp_path: Path) -> Path:
    writer = ResultsWriter(tmp_path / "run.csv", ENV)
    for r in ROWS:
        writer.append(r)
    (tmp_path / "notes.csv").write_text("layer,sparsity\nfc1,0.5\n")  # not a results file
    return writer.path


def _one(df, **match):
    sel = df
    for k, v in match.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, match
    return sel.iloc[0]


def test_ratios_stay_within_one_machine(results_csv: Path) -> None:
    res = load([results_csv])
    df = res.rows
    assert len(df) == len(ROWS) and len(res.failed) == 1
    sparse_a = _one(df, variant="prune=unstructured:0.9+sparse", machine="aaaa1111")
    assert sparse_a["speedup_vs_fp32"] == pytest.approx(4.0)
    assert sparse_a["vs_pytorch"] == pytest.approx(8.0)  # PyTorch ran FP32 only: 2.0 / 0.25
    assert sparse_a["vs_onnxruntime"] == pytest.approx(2.0)
    assert sparse_a["gzip_vs_fp32"] == pytest.approx(0.3)
    assert sparse_a["weights_removed"] == pytest.approx(0.9)
    assert sparse_a["quality_delta"] == pytest.approx(-0.005)
    sparse_b = _one(df, variant="prune=unstructured:0.9+sparse", machine="bbbb2222")
    assert sparse_b["speedup_vs_fp32"] == pytest.approx(0.25)  # its own machine's FP32
    assert sparse_b["vs_pytorch"] != sparse_b["vs_pytorch"]  # NaN: no PyTorch on machine b
    real_board = _one(df, target="arm", variant="prune=unstructured:0.9")
    assert real_board["speedup_vs_fp32"] != real_board["speedup_vs_fp32"]  # NaN: no FP32 there
    channel = _one(df, variant="prune=channel:0.5")
    assert channel["weights_removed"] == pytest.approx(0.5)  # smaller network, not zeros
    assert channel["technique"] == "structured pruning"
    assert _one(df, variant="prune=nm:2:4")["speedup_vs_fp32"] != 0  # NaN, never a number
    assert _one(df, variant="prune=nm:2:4")["status"] == "failed"


def test_headline_picks_fastest_within_one_point(results_csv: Path) -> None:
    h = headline(load([results_csv]).rows)
    a = h[h["group"].str.startswith("x86-native @aaaa1111")].set_index("technique")
    assert a.loc["pruning + sparse kernels", "speedup_vs_fp32"] == pytest.approx(4.0)
    assert a.loc["pruning, dense kernels", "speedup_vs_fp32"] == pytest.approx(1 / 0.9)
    # channel:0.5 loses 3 points: no variant within 1 point, so it is shown as least loss.
    assert a.loc["structured pruning", "rule"].startswith("none within")
    assert a.loc["pruning + sparse kernels", "vs_best_peer"] == pytest.approx(2.0)  # ORT
    b = h[h["group"].str.startswith("x86-native @bbbb2222")]
    assert list(b["speedup_vs_fp32"]) == [pytest.approx(0.25)]


@pytest.mark.parametrize("ours", [False, True])
def test_untuned_tvm_rows_are_never_best(results_csv: Path, ours: bool) -> None:
    """A `--trials 0` TVM row on TVM's own ops is no speed figure: never best in the headline
    or the run's summary, however fast; on our FP32 kernels (no tuning needed) it is."""
    fast = _row(variant="prune=unstructured:0.95+sparse", p50=0.01, accuracy=0.99,
                nonzero_params=50, prune_kind="sparse-kernel", sparsity=0.95, tuned_trials=0,
                fp32_layers="fp32_conv:3 glue:2" if ours else None)
    ResultsWriter(results_csv).append(fast)
    df = load([results_csv]).rows
    best = "prune=unstructured:0.95+sparse" if ours else "prune=unstructured:0.9+sparse"
    h = headline(df)
    a = h[h["group"].str.startswith("x86-native @aaaa1111")].set_index("technique")
    assert a.loc["pruning + sparse kernels", "variant"] == best
    s = summary(df)
    assert s[s["group"].str.startswith("x86-native @aaaa1111")]["variant"].tolist() == [best]


def test_report_files_rows_and_failed(results_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    md_path = write_report([results_csv, tmp_path / "notes.csv"], out)
    md = md_path.read_text()
    assert md_path == out / "README.md"
    assert "Test CPU 9000" in md and "avx2 fma" in md  # environment header
    assert "| 4.00x |" in md and "| 0.25x |" in md  # the two machines' own speedups
    assert "0.40x" not in md  # what a cross-machine ratio would have said
    assert "**failed** | outputs differ from PyTorch: max abs err 3.1 > 1e-4 |" in md
    assert "notes.csv`: not an edgebench results file" in md
    pngs = sorted((out / "plots").glob("*.png"))
    # two machines x (accuracy-latency, speedup-sparsity, size) + peers on machine a; the
    # emulated board: accuracy-latency and size; the real board: the same two
    assert len(pngs) == 11, [p.name for p in pngs]
    assert "EMULATED" in md and "board arm@10.0.0.7" in md
    for png in pngs:
        assert f"plots/{png.name}" in md
        assert png.stat().st_size > 10_000
        with Image.open(png) as im:
            assert im.format == "PNG" and im.width >= 400 and im.height >= 300


def test_failed_rows_are_never_plotted(results_csv: Path, tmp_path: Path) -> None:
    df = load([results_csv]).rows
    failed = df.index[df["status"] == "failed"]
    a = df[(df["machine"] == "aaaa1111") & (df["target"] == "x86-native")]
    drawn = [fn(a, tmp_path / f"{fn.__name__}.png", "a") for fn in
             (plots.accuracy_latency, plots.speedup_sparsity, plots.sizes, plots.runtimes)]
    assert all(d is not None for d in drawn)
    for d in drawn:
        assert not set(failed) & set(d.rows)
    # every ok row of machine a (3 runtimes) is on the accuracy plot; the 3 pruned on sparsity
    assert len(drawn[0].rows) == 6 and len(drawn[1].rows) == 3


def test_peer_plot_skips_models_whose_runtimes_share_no_variant(tmp_path: Path) -> None:
    """The peers' own int8 builds are variants of their own (`int8:ort-static-qdq`): a model
    whose runtimes share no variant gets no bar chart (it crashed pandas before), while a
    model that does share one still gets its chart."""
    import pandas as pd

    rows = pd.DataFrame([
        {"model": "m1", "variant": "quant=static", "runtime": "tvm", "p50_ms": 1.0},
        {"model": "m1", "variant": "int8:ort-static-qdq", "runtime": "onnxruntime",
         "p50_ms": 2.0},
    ]).assign(status="ok")
    assert plots.runtimes(rows, tmp_path / "none.png", "t") is None
    shared = pd.concat([rows, pd.DataFrame([
        {"model": "m2", "variant": "fp32", "runtime": r, "p50_ms": t, "status": "ok"}
        for r, t in (("tvm", 1.0), ("onnxruntime", 2.0))])])
    plot = plots.runtimes(shared, tmp_path / "m2.png", "t")
    assert plot is not None and (tmp_path / "m2.png").exists()
    # real int8 builds (ours, the peer's own) share one group: each runtime's fastest int8
    int8 = rows.assign(quant_kind=["int8", "int8-peer"])
    plot = plots.runtimes(int8, tmp_path / "int8.png", "t")
    assert plot is not None and len(plot.rows) == 2
    # a simulated fake-quant peer row is float, never drawn as int8
    sim = int8.assign(quant_kind=["int8", "simulated"])
    assert plots.runtimes(sim, tmp_path / "sim.png", "t") is None
    # an untuned TVM build on TVM's own ops (--trials 0) is never a speed bar; one on our
    # FP32 kernels (nothing to tune) is
    untuned = shared.assign(tuned_trials=[None, None, 0, None])
    assert plots.runtimes(untuned, tmp_path / "untuned.png", "t") is None
    ours = untuned.assign(fp32_layers=[None, None, "fp32_conv:3 glue:2", None])
    assert plots.runtimes(ours, tmp_path / "ours.png", "t") is not None


def test_pareto_front_and_method_names() -> None:
    import pandas as pd

    lat = pd.Series([1.0, 0.5, 0.25, 0.3, 2.0])
    acc = pd.Series([0.99, 0.985, 0.9, 0.85, 0.99])
    assert list(pareto_mask(lat, acc)) == [True, True, True, False, False]
    assert prune_method("prune=block:8x1:0.9+sparse") == "block:8x1 +sparse"
    assert prune_method("prune=unstructured:0.9:global") == "unstructured"
    assert prune_method("prune=nm:2:4+quant=static") == "nm:2:4"
    assert prune_method("prune=channel:0.5:ft30") == "channel"
    assert prune_method("quant=static") == ""


def test_columns_of_the_fixture_are_real() -> None:
    assert not {k for r in ROWS for k in r} - set(COLUMNS)
    assert json.loads(json.dumps(ENV))["cpu"] == "Test CPU 9000"


def test_progress_is_quiet_in_ci_and_off_a_terminal(tmp_path: Path, monkeypatch) -> None:
    import os

    from edgebench import progress

    master, child = os.openpty()
    with os.fdopen(child, "w") as tty, open(tmp_path / "log.txt", "w") as file:
        monkeypatch.delenv("CI", raising=False)
        assert progress.enabled(tty) and not progress.enabled(file)
        monkeypatch.setenv("CI", "true")
        assert not progress.enabled(tty)
    os.close(master)
    with progress.bar("rows", 3) as b:  # pytest's stdout is no terminal: a silent no-op
        b.advance()
        b.update(description="x")
