"""PNG plots of one comparable group (one machine, target, threads, board): only `ok` rows.

Failed rows have no timing worth drawing; the report lists them instead (every function drops
them itself). Each returns the file it wrote and the rows it drew, or None when the group has
nothing to show for that plot.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt
import pandas as pd

from edgebench.report.tables import accuracy, pareto_mask, precision, untuned

RUNTIME_COLORS = {"tvm": "tab:blue", "pytorch": "tab:red", "onnxruntime": "tab:green",
                  "executorch": "tab:purple", "onnxruntime-int8": "yellowgreen",
                  "executorch-int8": "orchid"}
DPI = 100


@dataclass
class Plot:
    path: Path
    rows: pd.Index  # the result rows drawn


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["p50_ms"].notna()]


def _grid(n: int, width: float = 5.0, height: float = 3.8):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             layout="constrained")  # room for the suptitle and legends
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _save(fig, path: Path, title: str, rows: pd.DataFrame) -> Plot:
    width_chars = int(fig.get_figwidth() * 12)  # ~12 characters of 10 pt per inch
    fig.suptitle("\n".join(textwrap.wrap(title, width_chars)), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Plot(path, rows.index)


def accuracy_latency(ok: pd.DataFrame, path: Path, title: str) -> Plot | None:
    """Quality vs p50 per model, every runtime and variant; the Pareto front (fastest for its
    quality) joined by a line and its points circled."""
    ok = _ok(ok)
    ok = ok[ok["quality"].notna()]
    models = sorted(ok["model"].unique())
    if not models:
        return None
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models, strict=True):
        g = ok[ok["model"] == model]
        for runtime, r in g.groupby("runtime"):
            ax.scatter(r["p50_ms"], r["quality"], s=18, label=runtime,
                       color=RUNTIME_COLORS.get(runtime, "gray"), alpha=0.8)
        front = g[pareto_mask(g["p50_ms"], g["quality"])].sort_values("p50_ms")
        ax.plot(front["p50_ms"], front["quality"], "k--", lw=0.8, label="Pareto front")
        ax.scatter(front["p50_ms"], front["quality"], s=70, facecolors="none",
                   edgecolors="black", lw=0.8)
        for _, r in front.iterrows():
            text = r["variant"].replace("prune=", "") + (
                "" if r["runtime"] == "tvm" else f" ({r['runtime']})")
            ax.annotate(text, (r["p50_ms"], r["quality"]),
                        fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlim(left=0)
        ax.set_xlabel("p50 latency (ms)")
        kind = g["evaluation_kind"].iloc[0]
        ax.set_ylabel("accuracy" if accuracy(g).notna().all()
                      else f"top-1 agreement with FP32 ({kind}, not accuracy)")
        ax.set_title(model, fontsize=9)
        ax.legend(fontsize=6)
    return _save(fig, path, f"accuracy vs latency: {title}", ok)


def speedup_sparsity(ok: pd.DataFrame, path: Path, title: str) -> Plot | None:
    """edgebench (TVM) speedup over its FP32 build vs the share of weights removed, one line
    per pruning method (masked, structured and sparse-kernel forms apart)."""
    ok = _ok(ok)
    tvm = ok[(ok["runtime"] == "tvm") & (ok["method"] != "") & ok["speedup_vs_fp32"].notna()
             & ok["weights_removed"].notna()]
    models = sorted(tvm["model"].unique())
    if not models:
        return None
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models, strict=True):
        g = tvm[tvm["model"] == model]
        for method, r in g.groupby("method"):
            r = r.sort_values("weights_removed")
            ax.plot(r["weights_removed"], r["speedup_vs_fp32"], "o-", ms=4, label=method)
        ax.axhline(1.0, color="gray", lw=0.8, ls=":", label="FP32 (1x)")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("weights removed (share of FP32 parameters)")
        ax.set_ylabel("speedup vs FP32 (TVM)")
        ax.set_title(model, fontsize=9)
        ax.legend(fontsize=6)
    return _save(fig, path, f"speedup vs sparsity: {title}", tvm)


def sizes(ok: pd.DataFrame, path: Path, title: str) -> Plot | None:
    """Artifact size per variant of edgebench's build, raw and gzip."""
    ok = _ok(ok)
    tvm = ok[(ok["runtime"] == "tvm") & ok["artifact_bytes"].notna()]
    models = sorted(tvm["model"].unique())
    if not models:
        return None
    fig, axes = _grid(len(models), height=4.5)
    for ax, model in zip(axes, models, strict=True):
        g = tvm[tvm["model"] == model].sort_values("artifact_bytes")
        y = range(len(g))
        ax.barh([i + 0.2 for i in y], g["artifact_bytes"] / 1024, 0.4, label="raw")
        ax.barh([i - 0.2 for i in y], g["artifact_gzip_bytes"] / 1024, 0.4, label="gzip -6")
        ax.set_yticks(list(y), [v.replace("prune=", "") for v in g["variant"]], fontsize=6)
        ax.set_xlabel("artifact KiB")
        ax.set_title(model, fontsize=9)
        ax.legend(fontsize=6)
    return _save(fig, path, f"size per variant (TVM .so): {title}", tvm)


INT8_BAR = "int8 (each runtime's fastest real build)"


def runtimes(ok: pd.DataFrame, path: Path, title: str) -> Plot | None:
    """p50 of edgebench vs each peer, per model: the variants at least two runtimes ran, and
    one group of each runtime's fastest real int8 build (ours, ONNX Runtime QDQ, ...). Peer
    rows of a simulated fake-quant graph are left out: they are float, not int8."""
    ok = _ok(ok)
    if "precision" not in ok:  # rows not passed through tables.derive
        ok = ok.assign(precision=ok.apply(precision, axis=1) if len(ok) else [])
    real = ok[(ok["precision"] != "simulated") & ~ok.apply(untuned, axis=1)]
    tables = {}
    for model in sorted(real["model"].unique()):
        g = real[real["model"] == model]
        table = g.pivot_table(index="variant", columns="runtime",
                              values="p50_ms").dropna(thresh=2)
        int8 = g[g["precision"] == "int8"].groupby("runtime")["p50_ms"].min()
        if len(int8) >= 2:
            table = pd.concat([table, int8.to_frame(INT8_BAR).T])
        if not table.empty:
            tables[model] = table
    if not tables:
        return None
    fig, axes = _grid(len(tables), height=4.6)
    drawn = []
    for ax, (model, table) in zip(axes, tables.items(), strict=True):
        g = real[real["model"] == model]
        drawn.append(g[g["variant"].isin(table.index) | ((g["precision"] == "int8")
                                                         & (INT8_BAR in table.index))])
        order = [r for r in RUNTIME_COLORS if r in table.columns]
        table[order].plot.bar(ax=ax, color=[RUNTIME_COLORS[r] for r in order], width=0.8)
        ax.set_ylabel("p50 ms (lower is faster)")
        ax.set_xlabel("")
        ax.set_xticklabels([textwrap.fill(t.get_text().replace("prune=", ""), 22)
                            for t in ax.get_xticklabels()], rotation=30, ha="right", fontsize=6)
        ax.set_title(model, fontsize=9)
        ax.legend(fontsize=6, title="runtime", title_fontsize=6)
    return _save(fig, path, f"edgebench (tvm) vs PyTorch, ONNX Runtime, ExecuTorch: {title}",
                 pd.concat(drawn))
