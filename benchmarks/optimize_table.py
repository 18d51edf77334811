"""The chosen variant of each optimize run beside every peer row of the same CSV (same data,
same core, full timing): `python benchmarks/optimize_table.py > results/optimize/table.md`."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent.parent / "results" / "optimize"


def main() -> None:
    print("| run | chosen (TVM) | p50 ms | drop pt | peer | peer precision | peer p50 ms | "
          "chosen faster by |")
    print("|---|---|---|---|---|---|---|---|")
    for md in sorted(HERE.glob("*-optimize.md")):
        text = md.read_text()
        m = re.search(r"\*\*Chosen: `([^`]+)`\*\*: p50 ([0-9.e-]+) ms.*\(drop ([-0-9.]+) pt\)",
                      text)
        if not m:
            continue
        variant, p50, drop = m.group(1), float(m.group(2)), m.group(3)
        csv = HERE / md.name.replace("-optimize.md", ".csv")
        df = pd.read_csv(csv)
        peers = df[(df["runtime"] != "tvm") & (df["status"] == "ok")]
        run = md.name.replace("-optimize.md", "")
        if peers.empty:
            print(f"| {run} | {variant} | {p50:.4g} | {drop} | (no peers on a board) | | | |")
        for _, r in peers.sort_values("p50_ms").iterrows():
            kind = r.get("quant_kind") if isinstance(r.get("quant_kind"), str) else "fp32"
            print(f"| {run} | {variant} | {p50:.4g} | {drop} | {r['runtime']} {r['variant']} | "
                  f"{kind} | {r['p50_ms']:.4g} | {r['p50_ms'] / p50:.2f}x |")


if __name__ == "__main__":
    main()
