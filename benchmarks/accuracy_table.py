"""The accuracy table of results/accuracy/README.md from accuracy.csv: per model and variant,
every runtime's metric, its drop vs FP32 (same samples), latency and artifact size.

    python benchmarks/accuracy_table.py results/accuracy/accuracy.csv
"""

from __future__ import annotations

import sys

import pandas as pd


def main(path: str) -> None:
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    df = df.drop_duplicates(subset=["model", "variant", "runtime"], keep="last")
    for model, g in df.groupby("model", sort=False):
        ok = g[g["status"] == "ok"]
        first = ok.iloc[0] if len(ok) else g.iloc[0]
        print(f"\n### {model} ({first['metric']}, {first['evaluation']}; FP32 "
              f"{first['metric_fp32']:.2f})\n")
        extra = "cents_error" if g["cents_error"].notna().any() else None
        head = ["variant", "runtime", "status", first["metric"], "drop (pt)",
                "top-1/bin agreement", *([extra] if extra else []), "p50 ms",
                "artifact KiB", "quant_kind"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for _, r in g.iterrows():
            if r["status"] != "ok":
                err = str(r["error"]).replace("|", "/")[:120]
                print(f"| {r['variant']} | {r['runtime']} | failed: {err} |"
                      + " |" * (len(head) - 3))
                continue
            cells = [r["variant"], r["runtime"], "ok", f"{r['metric_value']:.2f}",
                     f"{r['metric_drop']:+.2f}", f"{100 * r['top1_agreement']:.1f}%",
                     *([f"{r[extra]:.1f}"] if extra else []), f"{r['p50_ms']:.3g}",
                     f"{r['artifact_bytes'] / 1024:.0f}",
                     "" if pd.isna(r["quant_kind"]) else r["quant_kind"]]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/accuracy/accuracy.csv")
