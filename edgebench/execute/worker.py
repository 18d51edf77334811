"""Measuring worker: one process per (artifact, runtime), pinned by its parent.

`python -m edgebench.execute.worker JOB.json` loads one artifact with one runtime, runs every eval
input (outputs saved for verification), then times the example input. It imports nothing but
that runtime, so its peak RSS is the deployment's; a crash here fails one row, not the run.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback

import numpy as np


def main(job_path: str) -> int:
    job = json.loads(open(job_path).read())
    result: dict = {}
    try:
        from edgebench.measure import MeasureConfig, latency_stats, peak_rss_mb, rss_mb, time_calls
        from edgebench.runtimes import runtime_module

        rt = runtime_module(job["runtime"])
        if hasattr(rt, "before_import"):  # keeps what a deployment would not load out
            rt.before_import()
        for path in job.get("user_modules", []) if getattr(rt, "USER_MODULES", False) else ():
            from edgebench.models.user import import_user_module

            import_user_module(path)
        data = np.load(job["inputs"])
        xs = data["x"]
        # Import the runtime's libraries before the baseline, so model_rss counts the model only.
        for lib in rt.LIBS:
            importlib.import_module(lib)
        result["rss_baseline_mb"] = rss_mb()
        t0 = time.perf_counter()
        session = rt.open_session(job["artifact"], int(job["threads"]))
        result["load_s"] = time.perf_counter() - t0
        prepared = session.prepare(xs[0])
        t0 = time.perf_counter()
        first = session.call(prepared)
        result["first_ms"] = (time.perf_counter() - t0) * 1e3
        outs = [session.outputs(session.call(session.prepare(x))) for x in xs]
        del first
        np.savez(job["outputs"], *[np.stack([o[i] for o in outs]) for i in range(len(outs[0]))])
        times = time_calls(lambda: session.call(prepared), MeasureConfig(**job["measure"]))
        result.update(latency_stats(times))
        result["peak_rss_mb"] = peak_rss_mb()
        result["model_rss_mb"] = result["peak_rss_mb"] - result["rss_baseline_mb"]
    except Exception as e:  # reported as the row's error by the parent
        lines = str(e).strip().splitlines()
        result["error"] = f"{type(e).__name__}: {lines[-1] if lines else ''}"
        result["traceback"] = traceback.format_exc()
    with open(job["result"], "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
