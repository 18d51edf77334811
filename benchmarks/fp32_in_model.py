"""Each kernel's time inside the whole call (perf samples) against its time alone (`edgebench
profile`): which kernels run slower in the model, i.e. where "outside the kernels" goes.

    perf report -i vm.perf --no-children --sort dso,sym -g none > syms.txt   # vm_perf_loop.py
    python benchmarks/fp32_in_model.py results/fp32/profile-mobilenetv2.csv syms.txt 6.5

In-model ms = the kernel's share of the samples outside the Python harness (libpython, torch,
numpy: the loop, not the VM call) x the whole call's ms (the profile's whole). The shares of
the runtime libraries (libtvm_runtime: VM dispatch, allocation; libc) are printed too.
"""

from __future__ import annotations

import re
import sys

import pandas as pd


def main(profile_csv: str, syms: str, whole_ms: float) -> None:
    prof = pd.read_csv(profile_csv).groupby("kernel").ms.agg(["sum", "count"])
    rows = []
    for line in open(syms):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(\S+)", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(3)))
    df = pd.DataFrame(rows, columns=["pct", "dso", "sym"])
    by_dso = df.groupby("dso").pct.sum().sort_values(ascending=False)
    harness = by_dso.index.str.contains("python|torch|c10|multiarray|numpy")
    vm_samples = by_dso[~harness].sum()
    model = by_dso.index[0]
    ours = df[df.dso == model].assign(kernel=lambda d: d.sym.str.replace("_compute_", ""))
    share = ours.groupby("kernel").pct.sum()
    print("| library | share of the VM call's samples |\n|---|---|")
    for dso, pct in by_dso[~harness].items():
        if pct >= 0.05:
            print(f"| {dso} | {pct / vm_samples:.2%} |")
    out = pd.DataFrame({"calls": prof["count"], "alone_ms": prof["sum"]})
    out["in_model_ms"] = share.reindex(out.index) / vm_samples * whole_ms
    out["in_model_vs_alone"] = out.in_model_ms / out.alone_ms
    out = out.sort_values("in_model_ms", ascending=False)
    print("\n| kernel | calls | alone ms | in model ms | in model / alone |\n|---|---|---|---|---|")
    for k, r in out.iterrows():
        print(f"| `{k}` | {int(r.calls)} | {r.alone_ms:.3f} | {r.in_model_ms:.3f} | "
              f"{r.in_model_vs_alone:.2f}x |")
    print(f"\nsum alone {out.alone_ms.sum():.3f} ms, in the model {out.in_model_ms.sum():.3f} ms "
          f"of {whole_ms} ms whole")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
