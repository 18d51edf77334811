"""Farm throughput: the same 16 rows (digits-mlp and digits-cnn x 8 variants, untuned) measured
by an emulated farm of 1, 2 and 4 boards under one tracker; wall time of the run and of its
measuring phase vs server count. Starts its OWN tracker (127.0.0.1:9290) and servers
(9201-9204, key 'arm') on the emulated board's root fs and stops exactly those; the shared
boards (9091, 9190) are never touched. Command (see README.md):

    EDGEBENCH_BOARD_DIR=DIR python results/farm/bench.py --servers 1 2 4

DIR holds the root fs (`rootfs-arm64`, a symlink to a built one is fine) and the process
records of this benchmark.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import replace
from pathlib import Path

from edgebench.pipeline import RunConfig, run
from edgebench.run import board
from edgebench.targets import RPCConfig, find_target

MODELS = ["digits-mlp", "digits-cnn"]
VARIANTS = ["fp32", "prune=unstructured:0.9", "prune=unstructured:0.5", "prune=nm:2:4",
            "prune=channel:0.5", "prune=block:16x1:0.9+sparse", "quant=static",
            "quant=static:percentile"]
TRACKER, FIRST_SERVER = 9290, 9201
OUT = Path(__file__).parent


def bench(servers: int) -> dict:
    procs = [board.start_tracker(TRACKER)]
    try:
        board.wait_ready(procs, 30)
        addr = f"127.0.0.1:{TRACKER}"
        procs += [board.start_server(FIRST_SERVER + i, addr, "arm") for i in range(servers)]
        board.wait_ready(procs, 300)
        target = replace(find_target("arm-farm"),
                         rpc=RPCConfig(tracker=addr, key="arm", connect_timeout=5))
        logs: list[str] = []

        def log(msg: str) -> None:
            logs.append(msg)
            print(f"[{servers} server(s)] {msg}", flush=True)

        start = time.perf_counter()
        df = run(RunConfig(models=MODELS, target=target.path, variants=VARIANTS,
                           runtimes=("tvm",), trials=0, output=OUT / f"farm-{servers}.csv",
                           resume=False, log=log), target_override=target)
        wall = time.perf_counter() - start
    finally:
        for p in reversed(procs):
            p.stop()
    phase = next(m for m in logs if m.startswith("farm: measuring phase"))
    span, busy = (float(v) for v in re.findall(r"([\d.]+) s", phase)[:2])
    return {"servers": servers, "rows": len(df), "ok": int((df["status"] == "ok").sum()),
            "boards_used": int(df["board"].nunique()), "run_wall_s": round(wall, 1),
            "measuring_phase_s": span, "board_busy_s": busy,
            "host_compile_s": round(float(df["export_s"].sum()), 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args()
    rows = [bench(n) for n in args.servers]
    (OUT / "bench.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
