"""int8.csv -> the markdown table of results/int8/README.md (one block per model).

    python benchmarks/int8_table.py results/int8/int8.csv
"""

from __future__ import annotations

import sys

import pandas as pd

from edgebench.report.results import read_csv

# the peers' int8 rows: runtimes executorch-int8 / onnxruntime-int8 on the fp32 variant, or (rows
# written before those runtimes) the former results/int8/peers.py's int8:... variants
ORDER = ["tvm fp32", "tvm quant=static", "tvm quant=dynamic", "executorch-int8 fp32",
         "executorch int8:executorch-pt2e", "onnxruntime-int8 fp32",
         "onnxruntime int8:ort-static-qdq", "onnxruntime int8:ort-dynamic",
         "pytorch int8:torch-dynamic"]
LABEL = {"tvm fp32": "TVM FP32 (tuned)", "tvm quant=static": "TVM int8 (edgebench)",
         "tvm quant=dynamic": "TVM int8 dynamic (edgebench)",
         "executorch-int8 fp32": "ExecuTorch-XNNPACK int8 (PT2E)",
         "executorch int8:executorch-pt2e": "ExecuTorch-XNNPACK int8 (PT2E)",
         "onnxruntime-int8 fp32": "ONNX Runtime int8 static QDQ",
         "onnxruntime int8:ort-static-qdq": "ONNX Runtime int8 static QDQ",
         "onnxruntime int8:ort-dynamic": "ONNX Runtime int8 dynamic",
         "pytorch int8:torch-dynamic": "PyTorch int8 dynamic (Linear)"}


def _f(v, fmt: str) -> str:
    return "" if pd.isna(v) else format(v, fmt)


def table(path: str) -> str:
    df, _bad = read_csv(path)
    df["key"] = df["runtime"] + " " + df["variant"]
    out = []
    for model, rows in df.groupby("model", sort=False):
        rows = rows.set_index("key")
        fp32 = rows.loc["tvm fp32", "p50_ms"] if "tvm fp32" in rows.index else None
        int8 = (rows.loc["tvm quant=static", "p50_ms"] if "tvm quant=static" in rows.index
                else None)
        out += [f"### {model}", "",
                "| runtime | p50 ms | TVM int8 speedup over it | accuracy | top-1 agr. | "
                "verify vs oracle | artifact MB | status |",
                "|---|---|---|---|---|---|---|---|"]
        for key in ORDER:
            if key not in rows.index:
                continue
            r = rows.loc[key]
            ok = r["status"] == "ok"
            speed = (f"{r['p50_ms'] / int8:.2f}x" if ok and int8 and key != "tvm quant=static"
                     and not pd.isna(int8) else "")
            ver = _f(r["verify_err"], ".3g") if key.startswith("tvm quant=") else ""
            status = "ok" if ok else f"failed: {r['error']}"
            out.append(f"| {LABEL[key]} | {_f(r['p50_ms'], '.4g') if ok else ''} | {speed} | "
                       f"{_f(r['accuracy'], '.4f')} | {_f(r['top1_agreement'], '.3f')} | {ver} | "
                       f"{_f(r['artifact_bytes'] / 1e6, '.2f')} | {status} |")
        if fp32 and int8 and not pd.isna(fp32) and not pd.isna(int8):
            out.append("")
            out.append(f"TVM int8 vs TVM FP32 (same run): {fp32 / int8:.2f}x")
        if "tvm quant=static" in rows.index:
            layers = rows.loc["tvm quant=static", "int8_layers"]
            if isinstance(layers, str):
                n_vnni = layers.count("(vpdpbusd)")
                out.append("")
                out.append(f"Layers on the VNNI kernel with vpdpbusd in their code: {n_vnni}, "
                           f"without: {layers.count('NO vpdpbusd')}, depthwise kernel: "
                           f"{layers.count('/dw')}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(table(sys.argv[1]))
