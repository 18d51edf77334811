"""The summary table `edgebench run` ends with, printed with rich."""

from __future__ import annotations

import sys

import pandas as pd


def print_summary(df: pd.DataFrame, max_drop: float, console=None) -> None:
    """The table the run ends with (rich): per model, our fastest variant within `max_drop`
    points of FP32's metric, its speedups vs our FP32 and the fastest real peer, size, metric."""
    from rich.console import Console
    from rich.table import Table

    from edgebench.report.tables import summary

    table = summary(df, max_drop)
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    if table.empty:
        console.print(_why_empty(df, max_drop))
        return
    t = Table(title=f"edgebench: fastest TVM variant within {max_drop:g} pt of FP32",
              title_justify="left")
    for col in ("model", "where", "best variant", "p50 ms", "vs TVM FP32",
                "vs fastest real peer", "size KiB (vs FP32)", "metric (drop)"):
        t.add_column(col, justify="right" if col[0] in "pvs" and col != "vs fastest real peer"
                     else "left")
    for _, r in table.iterrows():
        def ratio(v: float) -> str:
            return "-" if v != v else f"{v:.2f}x"

        t.add_row(r["model"], r["group"], r["variant"], f"{r['p50_ms']:.4f}",
                  ratio(r["vs_tvm_fp32"]), f"{ratio(r['vs_best_peer'])} ({r['best_peer']})",
                  f"{r['artifact_bytes'] / 1024:.0f} ({ratio(r['size_vs_fp32'])})",
                  f"{r['metric']} ({-r['drop_pts']:+.1f} pt)")
    console.print(t)


def _why_empty(df: pd.DataFrame, max_drop: float) -> str:
    """Why the summary has no row: no ok TVM row at all, none with a score to rank against
    FP32 (e.g. --quick without an evaluation), or none within the allowed drop."""
    tvm = df[(df["runtime"] == "tvm") & (df["status"] == "ok")] if len(df) else df
    if tvm.empty:
        return "no ok TVM row to summarize"
    if tvm["drop_pts"].isna().all():
        return (f"{len(tvm)} ok TVM row(s), none summarized: none has a score to compare "
                "with FP32 (no evaluation in this run), so no variant can be ranked")
    return (f"{len(tvm)} ok TVM row(s), none summarized: none within --max-drop "
            f"{max_drop:g} pt of FP32 (or only untuned rows)")
