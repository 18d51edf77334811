"""Tables and the speedup-vs-sparsity plot of results/sparse/README.md, from sparse.csv.

    python benchmarks/sparse_table.py -> prints the markdown tables, writes speedup_vs_sparsity.png
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

HERE = Path(__file__).resolve().parents[1] / "results" / "sparse"


def _kind(variant: str) -> tuple[str, float | None]:
    """('dense' | 'masked' | 'sparse 1x1' | 'sparse 16x1' ..., sparsity)."""
    if variant == "fp32":
        return "dense fp32", 0.0
    m = re.match(r"prune=(unstructured|block:(\d+x\d+)):([\d.]+)(\+sparse)?", variant)
    if not m:
        return variant, None
    block = m.group(2) or "1x1"
    return (f"sparse {block}" if m.group(4) else "masked (dense kernels)"), float(m.group(3))


def main() -> None:
    d = pd.read_csv(HERE / "sparse.csv")
    d = d[d.status == "ok"].copy()
    d[["kind", "s"]] = d.variant.apply(lambda v: pd.Series(_kind(v)))
    fig, axes = plt.subplots(1, d.model.nunique(), figsize=(4.5 * d.model.nunique(), 3.6),
                             squeeze=False)
    axes = axes[0]
    for ax, (model, g) in zip(axes, d.groupby("model", sort=False), strict=True):
        # Dense reference per runtime: the median over the FP32 and masked rows, which all run
        # the same dense kernels; one row alone moved up to 2x with load on the other core.
        dense_rows = g[g.kind.isin(["dense fp32", "masked (dense kernels)"])]
        fp32 = dense_rows.groupby("runtime")["p50_ms"].median()
        peers = [p for p in ("pytorch", "onnxruntime", "executorch") if p in fp32]
        print(f"\n### {model}\n")
        print("dense p50 ms (median of FP32 + masked rows): " + ", ".join(
            f"{rt} {v:.4g}" for rt, v in fp32.items()) + "\n")
        print("| variant | kind | TVM p50 ms | vs dense TVM | " + " | ".join(
            f"vs {p} dense" for p in peers) + " | accuracy / agreement | layers sparse |")
        print("|---" * (6 + len(peers)) + "|")
        tvm = g[g.runtime == "tvm"]
        for _, r in tvm.iterrows():
            quality = r.accuracy if pd.notna(r.accuracy) else r.top1_agreement
            layers = str(r.sparse_layers) if pd.notna(r.sparse_layers) else ""
            n_sparse = len(re.findall(r" sparse \d+x\d+", layers))
            n_all = len(re.findall(r"#\d+\[", layers))
            print(f"| {r.variant} | {r.kind} | {r.p50_ms:.4g} | {fp32['tvm'] / r.p50_ms:.2f}x | "
                  + " | ".join(f"{fp32[p] / r.p50_ms:.2f}x" for p in peers)
                  + f" | {quality:.4f} | {f'{n_sparse}/{n_all}' if n_all else ''} |")
        for kind, k in tvm[tvm.kind != "dense fp32"].groupby("kind"):
            k = k.sort_values("s")
            ax.plot(k.s * 100, fp32["tvm"] / k.p50_ms, marker="o", label=kind)
        ax.axhline(1, color="grey", lw=0.8)
        for p in peers:
            ax.axhline(fp32["tvm"] / fp32[p], ls=":", lw=0.8, label=f"{p} dense",
                       color="k" if p == "onnxruntime" else None)
        ax.set_title(model)
        ax.set_xlabel("weight sparsity %")
        ax.set_ylabel("speedup over dense TVM")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "speedup_vs_sparsity.png", dpi=110)


if __name__ == "__main__":
    main()
