"""Tuning over RPC on the emulated farm: digits-mlp's FP32 tasks (TVM's own ops on aarch64)
tuned with MetaSchedule, candidates cross-compiled on the host and timed on the boards of one
tracker key, with 1 and then 2 servers: wall time of the tuning, candidates per board, and the
tuned library verified against PyTorch on a board.

Each server count tunes into an empty database (a cache of its own), so both do the same
work. Uses benchmarks/farm.py's own tracker (127.0.0.1:9290) and servers (9201-, key 'arm'),
stopped on exit; the shared boards are never touched.
Command (results/farm/README.md):
  EDGEBENCH_BOARD_DIR=DIR flock /tmp/core1.lock python benchmarks/farm_tuning.py [TRIALS]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil
from farm import OUT, Boards, log

from edgebench import verify
from edgebench.execute.rpc import run_remote
from edgebench.measure import QUICK
from edgebench.models import get_model
from edgebench.pipeline import RunConfig, build_tvm, reference_outputs
from edgebench.variant import Variant, parse_variant

MODEL = "digits-mlp"


def cpu_s(pids: list[int]) -> float:
    """CPU seconds of these processes and their reaped children (an rpc_server forks one
    child per session): what the emulated boards burnt."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def host_cpu_s(boards: list[int]) -> float:
    """CPU seconds of this process and its children (TVM's builder and runner pools, the
    tracker), the boards' processes excluded."""
    t = os.times()
    live = 0.0
    for c in psutil.Process().children(recursive=True):
        try:
            if c.pid not in boards and not {p.pid for p in c.parents()} & set(boards):
                live += sum(c.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return t.user + t.system + t.children_user + t.children_system + live


def tune_on(servers: int, trials: int, model, xs) -> dict:
    spec = get_model(MODEL)
    logs: list[str] = []
    boards = Boards(servers)
    with boards as target, tempfile.TemporaryDirectory() as tmp:
        pids = [p.pid for p in boards.procs if p.kind == "server"]
        board0, host0 = cpu_s(pids), host_cpu_s(pids)
        cache = os.environ.get("EDGEBENCH_CACHE")
        os.environ["EDGEBENCH_CACHE"] = tmp  # an empty tuning database
        try:
            variant = Variant(spec, parse_variant("fp32+metaschedule"), target)
            start = time.perf_counter()
            _, compiled = build_tvm(variant, model, xs[0], Path(tmp) / "model.so",
                                    RunConfig(trials=trials, log=lambda m: (logs.append(m),
                                                                            log(m))))
            wall = time.perf_counter() - start
            board_cpu, host_cpu = cpu_s(pids) - board0, host_cpu_s(pids) - host0
            result, _board = run_remote(compiled.path, xs.numpy(), target, QUICK)
            check = verify.compare(result.outputs, reference_outputs(model, xs))
        finally:
            if cache is None:
                os.environ.pop("EDGEBENCH_CACHE", None)
            else:
                os.environ["EDGEBENCH_CACHE"] = cache
    rep = compiled.tuning
    if not check.ok:
        raise SystemExit(f"{servers} server(s): the tuned library is wrong: {check}")
    return {"servers": servers, "trials_per_task": rep.trials_per_task, "tasks": rep.tasks,
            "candidates_timed": sum(rep.boards.values()), "boards": rep.boards,
            "tuning_s": round(rep.seconds, 1), "build_wall_s": round(wall, 1),
            "boards_cpu_s": round(board_cpu, 1), "host_cpu_s": round(host_cpu, 1),
            "cut": rep.cut, "verified_on_board": True, "load_avg_after": os.getloadavg()}


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    spec = get_model(MODEL)
    model, xs = spec.build(), spec.eval_data()[0][:40]
    results = []
    for n in (1, 2):
        results.append(tune_on(n, trials, model, xs))
        log(str(results[-1]))
        (OUT / "tuning.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
