"""Farm throughput on the emulated farm: the same 16 rows (digits-mlp and digits-cnn x 8
variants, untuned, QUICK timing) measured by 1, 2 and 4 boards under one tracker.

1. `run`: the rows through the pipeline on 4 boards (compiled on the host while the boards
   measure, every row verified against PyTorch and naming its board): farm-run.csv.
2. `measure`: the measuring phase alone: the 16 libraries step 1 built and verified, handed
   to a Farm of 1, 2 and 4 boards; wall time from the first upload to the last result, each
   row's board and interval in measure-N.csv, outputs checked bit-identical across N.

Starts its OWN tracker (127.0.0.1:9290) and servers (9201-9204, key 'arm') on the emulated
board's root fs and stops exactly those (the shared boards on 9091/9190 are never touched).
Command (README.md): EDGEBENCH_BOARD_DIR=DIR python benchmarks/farm.py
DIR holds `rootfs-arm64` (a symlink to a built root fs is fine) and this run's process records.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from edgebench.execute import board
from edgebench.execute.farm import Farm, Job
from edgebench.measure import QUICK
from edgebench.models import get_model
from edgebench.pipeline import RunConfig, artifact_dir, run
from edgebench.targets import RPCConfig, find_target
from edgebench.variant import Variant, parse_variant

MODELS = ["digits-mlp", "digits-cnn"]
VARIANTS = ["fp32", "prune=unstructured:0.9", "prune=unstructured:0.5", "prune=nm:2:4",
            "prune=channel:0.5", "prune=block:16x1:0.9+sparse", "quant=static",
            "quant=static:percentile"]
TRACKER, FIRST_SERVER = 9290, 9201
OUT = Path(__file__).resolve().parents[1] / "results" / "farm"


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


class Boards:
    """Our own tracker + n servers of key 'arm', stopped on exit."""

    def __init__(self, n: int) -> None:
        self.n, self.procs = n, []

    def __enter__(self):
        try:
            self.procs.append(board.start_tracker(TRACKER))
            board.wait_ready(self.procs, 180)  # minutes on a loaded host (imports TVM)
            addr = f"127.0.0.1:{TRACKER}"
            self.procs += [board.start_server(FIRST_SERVER + i, addr, "arm")
                           for i in range(self.n)]
            board.wait_ready(self.procs, 600)
        except BaseException:
            self.__exit__()
            raise
        return replace(find_target("arm-farm"), rpc=RPCConfig(tracker=addr, key="arm",
                                                              connect_timeout=5))

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):
            p.stop()


def full_run(servers: int) -> dict:
    logs: list[str] = []
    with Boards(servers) as target:
        start = time.perf_counter()
        df = run(RunConfig(models=MODELS, target=target.path, variants=VARIANTS,
                           runtimes=("tvm",), trials=0, output=OUT / "farm-run.csv",
                           measure=QUICK, resume=False,
                           log=lambda m: (logs.append(m), log(m))), target_override=target)
        wall = time.perf_counter() - start
    phase = next(m for m in logs if m.startswith("farm: measuring phase"))
    span, busy = (float(v) for v in re.findall(r"([\d.]+) s", phase)[:2])
    return {"step": "run", "servers": servers, "rows": len(df),
            "ok": int((df["status"] == "ok").sum()), "boards_used": int(df["board"].nunique()),
            "wall_s": round(wall, 1), "measuring_phase_s": span, "board_busy_s": busy,
            "host_compile_s": round(float(df["export_s"].sum()), 1)}


def measure_only(servers: int, seen: dict[str, list[np.ndarray]]) -> dict:
    arm = find_target("arm-farm")
    rows, errors = [], []
    with Boards(servers) as target:
        farm = Farm(target, QUICK, log, boards=servers, retries=0)
        start = time.perf_counter()
        for name in MODELS:
            spec = get_model(name)
            xs = spec.eval_data()[0].numpy()
            for v in VARIANTS:
                variant = Variant(spec, parse_variant(v), arm)
                label = f"{name} {variant.name}"

                def finish(result, b, label=label):
                    ref = seen.setdefault(label, result.outputs)
                    if not all(np.array_equal(a, r) for a, r in zip(result.outputs, ref,
                                                                     strict=True)):
                        raise RuntimeError(f"{label}: outputs differ from the first pass")
                    rows.append({"row": label, "board": b.name,
                                 "p50_ms": result.stats["p50_ms"]})

                farm.submit(Job(label, artifact_dir(variant, "tvm") / "model.so", xs, finish,
                                lambda e, label=label: e and errors.append(f"{label}: {e}")))
        farm.close()
        wall = time.perf_counter() - start
    t0 = min(i[2] for i in farm.intervals)
    times = pd.DataFrame([{"row": i[0], "start_s": i[2] - t0, "end_s": i[3] - t0}
                          for i in farm.intervals])
    pd.DataFrame(rows).merge(times, on="row").to_csv(OUT / f"measure-{servers}.csv",
                                                      index=False, float_format="%.3f")
    if errors:
        raise SystemExit("; ".join(errors))
    return {"step": "measure", "servers": servers, "rows": len(rows),
            "boards_used": len({r["board"] for r in rows}), "wall_s": round(wall, 1),
            "measuring_phase_s": round(farm.span_s(), 1),
            "board_busy_s": round(farm.busy_s(), 1)}


def main() -> None:
    results = [full_run(4)]
    log(str(results[-1]))
    seen: dict[str, list[np.ndarray]] = {}
    for n in (1, 2, 4):
        results.append(measure_only(n, seen))
        log(str(results[-1]))
        (OUT / "bench.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
