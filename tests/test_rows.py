"""The typed result row: assembled from stage parts, written as the same CSV text earlier
versions wrote, read back (records and pandas) through the same field types."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest

from edgebench.report import COLUMNS, ResultsWriter, read_rows, write_markdown
from edgebench.report.results import _read_dicts, read_csv
from edgebench.report.row import (
    TYPES,
    Artifact,
    BuildFacts,
    Fp32Layers,
    Int8Layers,
    KeptFp32,
    LayerSparsity,
    ModelFacts,
    ResultRow,
    Scores,
    SparseLayers,
    Timing,
    Where,
)
from edgebench.report.tables import load, summary

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _row(runtime: str = "tvm", **kw) -> ResultRow:
    """A TVM int8 + sparse row as the pipeline assembles it from its stages' parts."""
    where = Where("x86-native", 1, cores="1", machine="m1", timestamp="2026-12-06T05:00:00")
    return ResultRow(
        "digits-cnn", "prune=unstructured:0.9+quant=static+sparse", runtime, where,
        status="ok",
        model_facts=ModelFacts(params=2000, nonzero_params=200, prune_kind="masked",
                               sparsity=0.9, macs=12345,
                               layer_sparsity=LayerSparsity.of([("conv1", "0.900"),
                                                                ("fc", "0.875")]),
                               quant_kind="simulated", weight_bytes=2048,
                               kept_fp32=KeptFp32.of([("fc2", "output layer")])),
        build=BuildFacts(tuned_trials=0, tasks=3, tasks_tuned_now=0, tuning_s=0.5,
                         compile_s=2.25, quant_kind="int8", prune_kind="sparse-kernel",
                         int8_layers=Int8Layers.of([("conv2d", "int8/vnni(vpdpbusd)"),
                                                    ("linear", "int8/vnni-bsr16x1(vpdpbusd)")]),
                         sparse_layers=SparseLayers.of([("dense#0[10x64]", "s=0.900 dense"),
                                                        ("dense#1[64x64]",
                                                         "s=0.875 sparse 16x1")])),
        artifact=Artifact(export_s=3.5, artifact_bytes=40960, artifact_gzip_bytes=20480),
        verify_err=0.0,
        timing=Timing(p50_ms=0.0125, p90_ms=0.013, p99_ms=0.02, mean_ms=0.0128, std_ms=0.001,
                      min_ms=0.012, runs=400, first_ms=0.5, load_s=0.01, peak_rss_mb=120.5,
                      model_rss_mb=2.5),
        scores=Scores(metric="top1", metric_value=97.5, metric_fp32=98.0, metric_drop=0.5,
                      evaluation="accuracy", accuracy=0.975, top1_agreement=0.99,
                      max_abs_err=0.25),
        **kw)


def test_csv_record_csv_round_trip(tmp_path: Path) -> None:
    """Record -> CSV line -> record -> CSV line: the same text, the same typed values, and
    the build's int8 / sparse-kernel labels win over the model's simulated / masked."""
    path = tmp_path / "r.csv"
    writer = ResultsWriter(path)
    rows = [_row(), _row("onnxruntime", error=None)]
    rows[1].build = None
    for r in rows:
        writer.append(r)
    text = path.read_text()
    back = read_rows(path)
    assert [r.columns() for r in back] == [r.columns() for r in rows]
    again = tmp_path / "again.csv"
    rewriter = ResultsWriter(again)
    for r in back:
        rewriter.append(r)
    assert again.read_text() == text
    first = next(csv.DictReader(io.StringIO(text)))
    assert first["quant_kind"] == "int8" and first["prune_kind"] == "sparse-kernel"
    assert first["int8_layers"] == "conv2d=int8/vnni(vpdpbusd);linear=int8/vnni-bsr16x1(vpdpbusd)"
    assert first["sparse_layers"] == ("dense#0[10x64] s=0.900 dense; "
                                      "dense#1[64x64] s=0.875 sparse 16x1")
    assert first["layer_sparsity"] == "conv1=0.900;fc=0.875"
    assert first["kept_fp32"] == "fc2: output layer"
    peer = back[1]
    assert peer.get("quant_kind") == "simulated" and peer.build is None
    assert back[0].model_facts.layer_sparsity.sparsity() == {"conv1": 0.9, "fc": 0.875}
    assert back[0].build is not None
    assert back[0].get("int8_layers").mapping()["linear"] == "int8/vnni-bsr16x1(vpdpbusd)"
    assert back[0].key == ("digits-cnn", "prune=unstructured:0.9+quant=static+sparse", "tvm",
                           "x86-native", "1")


def test_pandas_reads_through_the_record_types(tmp_path: Path) -> None:
    """Text columns stay text even when a value looks like a number; figures are floats."""
    path = tmp_path / "r.csv"
    row = _row()
    row.where.machine, row.where.board = "1234", "5678"
    ResultsWriter(path).append(row)
    df, bad = read_csv(path)
    assert bad == 0
    assert df.loc[0, "machine"] == "1234" and df.loc[0, "board"] == "5678"
    assert df.loc[0, "p50_ms"] == pytest.approx(0.0125) and df["metric_value"].dtype == float
    assert df.loc[0, "int8_layers"].count("vpdpbusd") == 2


def test_a_mapping_is_checked_and_written_as_a_record(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    writer = ResultsWriter(path)
    with pytest.raises(ValueError, match="unknown result columns: \\['p51_ms'\\]"):
        writer.append({"model": "m", "p51_ms": 1.0})
    writer.append({"model": "m", "variant": "fp32", "runtime": "tvm", "target": "t",
                   "threads": 2, "status": "ok", "p50_ms": 1 / 3, "emulated": True})
    (r,) = read_rows(path)
    assert r.key == ("m", "fp32", "tvm", "t", "2") and r.where.emulated is True
    assert r.timing.p50_ms == pytest.approx(0.333333) and r.scores is None


@pytest.mark.parametrize("text", [
    "fp32_conv:3 glue:2", "fp32_dense:2 glue:1 NO-FMA:fc,fc2 | tvm add:2 reshape:1",
    "not lowered (no 512-bit vectors): all on TVM's ops"])
def test_fp32_layers_are_structured(text: str) -> None:
    facts = Fp32Layers.parse(text)
    assert facts.text() == text
    rebuilt = Fp32Layers.of([f for f, n in facts.families for _ in range(n)], facts.no_fma,
                            [o for o, n in facts.tvm_ops for _ in range(n)], facts.not_lowered)
    assert rebuilt == facts


def _committed_results() -> list[Path]:
    paths = []
    for p in sorted(RESULTS.rglob("*.csv")):
        rows = _read_dicts(p)
        if rows and {"model", "status", "p50_ms"} <= set(rows[0]):
            paths.append(p)
    return paths


def test_every_committed_results_file_reads_back_as_written() -> None:
    """Each row of every results CSV under results/ (files from every earlier version) reads
    into a record and writes back the same text: structured columns exactly, numbers to the
    writer's 6 significant digits."""
    paths = _committed_results()
    assert len(paths) >= 10
    rows = 0
    for p in paths:
        for written in _read_dicts(p):
            again = ResultRow.from_columns(written).csv_fields()
            rows += 1
            for col, text in written.items():
                if col not in COLUMNS or again[col] == text:
                    continue
                assert TYPES[col] in (int, float), (p.name, col, text, again[col])
                assert math.isclose(float(again[col]), float(text), rel_tol=1e-5), (p, col)
    assert rows > 100


def test_an_old_results_file_still_loads_resumes_and_reports(tmp_path: Path) -> None:
    """results/foundation/fp32.csv predates the metric and tuning columns: the report reads
    it, and a writer on a copy upgrades it in place keeping every measured row."""
    old = RESULTS / "foundation" / "fp32.csv"
    header = next(csv.reader(io.StringIO(old.read_text())))
    assert "metric" not in header and set(header) < set(COLUMNS)
    results = load([old])
    assert len(results.ok) > 0
    assert "digits-cnn" in set(summary(results.rows)["model"])
    copy = tmp_path / "fp32.csv"
    copy.write_text(old.read_text())
    writer = ResultsWriter(copy)
    assert next(csv.reader(io.StringIO(copy.read_text()))) == COLUMNS
    ok = {tuple(r[k] for k in ("model", "variant", "runtime", "target", "threads"))
          for r in _read_dicts(old) if r["status"] == "ok"}
    assert writer.finished() == ok
    assert "| fp32 | onnxruntime | ok |" in write_markdown(copy).read_text()
