"""The issue-16 goal table from results/dense/run.sh's CSV: per model and precision, ours vs the
fastest peer of that precision, and whether the issue's goal is met.

    python results/dense/summary.py results/dense/dense.csv > results/dense/summary.md

`edgebench report` gives each technique's best variant and its speedup, but not the issue's
per-goal thresholds (1.5x on MobileNetV2 and the encoder, FP16 vs our own FP32, sparse vs the
fastest dense peer), so this reads the same rows (`load_results`: the last row of a key wins)
and applies them. A ratio is peer p50 / ours (above 1: ours faster). A row that failed or whose
metric dropped more than MAX_DROP points is never a speedup: its goal is missed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from edgebench.report.results import load_results

FP32_PEERS = ("pytorch", "onnxruntime", "executorch")
INT8_PEERS = ("onnxruntime-int8", "executorch-int8")
MAX_DROP = 1.0  # points of the metric, as `edgebench run --max-drop`
FP32_GOAL = {"mobilenetv2": 1.5, "encoder": 1.5}  # else 1.0


def _row(df: pd.DataFrame, model: str, variant: str, runtime: str) -> pd.Series | None:
    hit = df[(df.model == model) & (df.variant == variant) & (df.runtime == runtime)]
    return None if hit.empty else hit.iloc[-1]


def _usable(r: pd.Series | None) -> str | None:
    """Why the row cannot be quoted (None: it can): failed, or its accuracy dropped more than
    MAX_DROP points. A random-weight model's score is fidelity (top-1 agreement with FP32 on
    near-flat logits), shown in the drop column but not held to MAX_DROP."""
    if r is None:
        return "no row"
    if r.status != "ok":
        return f"{r.status}: {str(r.error)[:70]}"
    drop = pd.to_numeric(r.get("metric_drop"), errors="coerce")
    if pd.notna(drop) and drop > MAX_DROP and r.get("evaluation") == "accuracy":
        return f"accuracy dropped {drop:.2f} points"
    return None


def _drop(r: pd.Series) -> str:
    drop = pd.to_numeric(r.get("metric_drop"), errors="coerce")
    if pd.isna(drop):
        return ""
    kind = "" if r.get("evaluation") == "accuracy" else " (fidelity)"
    return f"{drop:.2f}{kind}"


def _fastest(df: pd.DataFrame, model: str, variant: str, runtimes) -> tuple[str, float] | None:
    rows = [(rt, r) for rt in runtimes if (r := _row(df, model, variant, rt)) is not None
            and _usable(r) is None]
    if not rows:
        return None
    rt, r = min(rows, key=lambda x: float(x[1].p50_ms))
    return rt, float(r.p50_ms)


def goal_rows(df: pd.DataFrame) -> list[list[str]]:
    out = []
    for model in dict.fromkeys(df.model):
        fp32 = _fastest(df, model, "fp32", FP32_PEERS)
        int8 = _fastest(df, model, "fp32", INT8_PEERS)
        ours32 = _row(df, model, "fp32", "tvm")
        checks = [  # (what, our variant, the reference (runtime, ms) or None, goal)
            ("FP32", "fp32", fp32, FP32_GOAL.get(model, 1.0)),
            ("FP32 +winograd", "fp32+winograd", fp32, 1.3 if model == "resnet18" else None),
            ("FP32 MetaSchedule (record)", "fp32+metaschedule", fp32, None),
            ("FP16 vs our FP32", "quant=fp16",
             ("tvm fp32", float(ours32.p50_ms)) if _usable(ours32) is None else None, 1.3),
            ("int8", "quant=static", int8, 1.0),
            ("80% +sparse vs dense", "prune=unstructured:0.8+sparse", fp32, 1.3),
            ("channel 50% vs dense", "prune=channel:0.5", fp32, None),
        ]
        for what, variant, ref, goal in checks:
            r = _row(df, model, variant, "tvm")
            if r is None:
                continue
            why = _usable(r)
            ours = "" if why else f"{float(r.p50_ms):.4g}"
            peer = f"{ref[1]:.4g} ({ref[0]})" if ref else "-"
            ratio = float(ref[1]) / float(r.p50_ms) if ref and not why else None
            refused = why and "FP16 arithmetic" in str(r.error)  # the ISA has no FP16
            verdict = ("-" if goal is None else "n/a" if refused else
                       "missed" if ratio is None or ratio < goal else "met")
            drop = pd.to_numeric(r.get("metric_drop"), errors="coerce")
            if not why and pd.notna(drop) and drop > MAX_DROP:  # a fidelity drop (above)
                verdict += " *"
            out.append([model, what, ours or f"({why})", _drop(r), peer,
                        f"{ratio:.2f}x" if ratio else "-",
                        f">= {goal}x" if goal else "-", verdict])
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: summary.py RESULTS.csv", file=sys.stderr)
        return 2
    from edgebench.report.document import md_table

    if not Path(argv[0]).is_file():
        print(f"summary.py: no results CSV {argv[0]}", file=sys.stderr)
        return 2
    df = load_results(argv)
    if df.empty:
        print(f"summary.py: no rows in {argv[0]}", file=sys.stderr)
        return 2
    rows = goal_rows(df)
    print("\n".join([
        f"# Issue 16 goals: {argv[0]}", "",
        "p50 ms, 1 thread, batch 1; ratio = reference / ours (above 1: ours faster); a failed "
        f"row or one whose accuracy dropped more than {MAX_DROP} points misses its goal; n/a: "
        "the target has no FP16 arithmetic (a refusal row, not a miss); *: a random-weight "
        f"model's fidelity (top-1 agreement with FP32) dropped more than {MAX_DROP} points: the "
        "time is real, the outputs differ (pruned or quantized without fine-tuning).", "",
        *md_table(["model", "ours", "ours ms", "metric drop", "reference ms (fastest)",
                   "ratio", "goal", "verdict"], rows), ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
