"""The int8 + sparse table: per row p50, speedups over the FP32 dense, FP32 BSR and int8
dense rows of the same pruning, accuracy, and which layers went sparse."""

from __future__ import annotations

import sys

import pandas as pd


def kind(variant: str) -> str:
    q, s = "quant=static" in variant, variant.endswith("+sparse")
    return {(False, False): "FP32 dense", (False, True): "FP32 BSR",
            (True, False): "int8 dense", (True, True): "int8 BSR"}[q, s]


def ratio(df: pd.DataFrame, r, k: str) -> str:
    """p50 of the same pruning's `k` row over this row's (how much faster this row is)."""
    base = df[(df.prune == r.prune) & (df.kind == k) & (df.status == "ok")].p50_ms
    if r.status != "ok" or base.empty or k == r.kind:
        return ""
    return f"{base.iloc[0] / r.p50_ms:.2f}x"


def main(path: str) -> None:
    df = pd.read_csv(path)
    df = df[df.runtime == "tvm"].copy()
    df["kind"] = df.variant.map(kind)
    df["prune"] = df.variant.str.extract(r"prune=([^+]*)")[0].fillna("none")
    fp32 = df[df.variant == "fp32"].p50_ms.iloc[0]
    print(f"TVM FP32 dense (unpruned) p50 {fp32:.4f} ms; ratios > 1 mean the row is faster.\n")
    print("| pruning | build | p50 ms | vs FP32 dense | vs FP32 BSR | vs int8 dense "
          "| verify_err | accuracy | layers sparse |")
    print("|---|---|---|---|---|---|---|---|---|")
    for _, r in df.iterrows():
        sparse = ""
        if isinstance(r.get("sparse_layers"), str):
            sparse = r.sparse_layers.replace(";", "<br>")
        p50 = f"{r.p50_ms:.4f}" if r.status == "ok" else f"FAILED: {r.error}"
        vs = " | ".join(ratio(df, r, k) for k in ("FP32 BSR", "int8 dense"))
        print(f"| {r.prune} | {r.kind} | {p50} | {fp32 / r.p50_ms:.2f}x | {vs} "
              f"| {r.verify_err:.3g} | {r.accuracy:.4f} | {sparse} |")


if __name__ == "__main__":
    main(sys.argv[1])
