"""compare: a 2x change is flagged, a 1% one is noise, a noisy row's 2x is not trusted."""

from __future__ import annotations

from pathlib import Path

from edgebench.report import ResultsWriter
from edgebench.report.compare import compare, markdown, slower


def _row(variant: str, p50: float | None, p90_over_p50: float = 1.03, status: str = "ok",
         machine: str = "aaaa1111") -> dict:
    return {"model": "digits-cnn", "variant": variant, "runtime": "tvm", "target": "x86-native",
            "threads": 1, "status": status, "p50_ms": p50,
            "p90_ms": p50 and p50 * p90_over_p50, "machine": machine,
            "error": "" if status == "ok" else "board dropped"}


def _csv(path: Path, rows: list[dict]) -> Path:
    writer = ResultsWriter(path)
    for r in rows:
        writer.append(r)
    return path


def test_compare_flags_2x_and_ignores_1pct(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", [
        _row("fp32", 1.0), _row("prune=unstructured:0.9", 0.5), _row("prune=channel:0.5", 0.4),
        _row("quant=static", 0.8, p90_over_p50=2.5),  # a very noisy row
        _row("prune=nm:2:4", 0.7), _row("prune=block:8x1:0.9+sparse", 0.2),
    ])
    b = _csv(tmp_path / "b.csv", [
        _row("fp32", 1.01),  # 1%: noise
        _row("prune=unstructured:0.9", 1.0),  # 2x slower
        _row("prune=channel:0.5", 0.2),  # 2x faster
        _row("quant=static", 1.6, p90_over_p50=1.02),  # 2x, but A's own spread is 150%
        _row("prune=nm:2:4", None, status="failed"),
        _row("prune=gradual:0.9", 0.3),
    ])
    m = compare([a], [b]).set_index("variant")
    assert m.loc["fp32", "verdict"] == "within noise"
    assert m.loc["prune=unstructured:0.9", "verdict"] == "slower"
    assert m.loc["prune=unstructured:0.9", "change"] == 2.0
    assert m.loc["prune=channel:0.5", "verdict"] == "faster"
    assert m.loc["quant=static", "verdict"] == "within noise"
    assert abs(m.loc["quant=static", "noise"] - 1.5) < 1e-9
    assert m.loc["prune=nm:2:4", "verdict"] == "status ok -> failed"
    assert m.loc["prune=block:8x1:0.9+sparse", "verdict"] == "only in A"
    assert m.loc["prune=gradual:0.9", "verdict"] == "only in B"
    text = markdown(compare([a], [b]))
    assert "| 2.000x | ±5% | **slower** |" in text
    assert "| 0.500x | ±5% | **faster** |" in text
    assert "1 slower" in text and "1 faster" in text and "2 within noise" in text


def test_compare_never_matches_across_machines(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", [_row("fp32", 1.0)])
    b = _csv(tmp_path / "b.csv", [_row("fp32", 1.0, machine="bbbb2222")])
    m = compare([a], [b])
    assert sorted(m["verdict"]) == ["only in A", "only in B"]
    assert "Nothing compared" in markdown(m)


def test_compare_matches_by_machine_not_target_name(tmp_path: Path) -> None:
    """x86-core1 vs x86-native on one host: the same measurement (the old match on the target
    file's name compared nothing)."""
    a = _csv(tmp_path / "a.csv", [_row("fp32", 1.0)])
    b = _csv(tmp_path / "b.csv", [{**_row("fp32", 2.0), "target": "x86-core1"}])
    m = compare([a], [b])
    assert list(m["verdict"]) == ["slower"] and m["target"].iloc[0] == "x86-native -> x86-core1"
    assert slower(m) == ["digits-cnn fp32 tvm 2.00x"]


def test_report_and_compare_commands(tmp_path: Path, capsys) -> None:
    from edgebench.cli import main

    a = _csv(tmp_path / "a.csv", [_row("fp32", 1.0), _row("prune=channel:0.5", 0.4)])
    b = _csv(tmp_path / "b.csv", [_row("fp32", 1.01), _row("prune=channel:0.5", 0.8)])
    # a row slower beyond noise fails the gate (exit 1) and is named
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "c.md")]) == 1
    assert "**slower**" in (tmp_path / "c.md").read_text()
    assert "1 row(s) slower beyond noise: digits-cnn prune=channel:0.5 tvm 2.00x" \
        in capsys.readouterr().err
    assert main(["compare", str(a), str(a)]) == 0  # nothing slower
    assert main(["compare", str(a), str(tmp_path / "missing.csv")]) == 2
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "README.md").exists()
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")
    assert main(["report", str(tmp_path / "other.csv")]) == 2  # nothing to report: bad input
    assert "no edgebench results" in capsys.readouterr().err
