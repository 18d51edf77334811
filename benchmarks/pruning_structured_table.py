"""The structured-pruning table in results/pruning/README.md, from structured.csv."""

from pathlib import Path

import pandas as pd

HEADER = ("| model | variant | params | MACs | TVM p50 ms | TVM vs dense TVM | PyTorch p50 | "
          "ORT p50 | ORT vs dense ORT | accuracy / agreement | trials/task |")


def main() -> None:
    d = pd.read_csv(Path(__file__).resolve().parents[1] / "results" / "pruning" / "structured.csv")
    d = d[d.status == "ok"]
    print(HEADER)
    print("|---" * 11 + "|")
    for model, g in d.groupby("model", sort=False):
        dense = g[g.variant == "fp32"].set_index("runtime")["p50_ms"]
        for variant, v in g.groupby("variant", sort=False):
            r = v.set_index("runtime")
            t = r.loc["tvm"]
            quality = t["accuracy"] if pd.notna(t["accuracy"]) else t["top1_agreement"]
            macs = int(t["macs"]) if pd.notna(t["macs"]) else ""
            ort = r.loc["onnxruntime", "p50_ms"]
            print(f"| {model} | {variant} | {int(t['params'])} | {macs} | {t['p50_ms']:.4g} | "
                  f"{dense['tvm'] / t['p50_ms']:.2f}x | {r.loc['pytorch', 'p50_ms']:.4g} | "
                  f"{ort:.4g} | {dense['onnxruntime'] / ort:.2f}x | {quality:.4f} | "
                  f"{int(t['tuned_trials'])} |")


if __name__ == "__main__":
    main()
