"""Measure: latency the way TFLite's benchmark_model and onnxruntime_perf_test do, plus memory.

Warmup first, then timed runs until BOTH a minimum count and a minimum time are met AND the median
is stable (the first and second half of the runs agree within `stable_rel`, or `stable_ns` for
calls of a few us, the relative bound widening with the time spent up to `stable_rel_max`; until
they do, timing goes on, re-checked each time the run count grows by a quarter). A cap keeps slow
untuned builds bounded; the row records how many runs were made. The floor (0.25 s) fits the
3-50 us models of the main job many times over, so a quiet core stops there and a drifting one
keeps measuring.
Each run is one call from Python with the input already converted, timed with perf_counter_ns,
identically for every runtime. Memory is the worker process's own resident set: it loaded only
one runtime and one artifact, so the figure is that deployment's footprint, interpreter included.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MeasureConfig:
    warmup_runs: int = 5
    warmup_s: float = 0.2
    min_runs: int = 50
    min_time_s: float = 0.25
    max_time_s: float = 60.0
    stable_rel: float = 0.01  # stop once the two halves' medians agree this closely
    stable_ns: int = 50  # ... or within this many ns (a few-us call's jitter exceeds 1%)
    stable_rel_max: float = 0.05  # the relative bound widens with time spent, up to this

    def tolerance(self, elapsed_s: float) -> float:
        """The relative bound after `elapsed_s` of timing: `stable_rel` at the floor, growing
        with the square root of the time spent, at most `stable_rel_max`. Drift (a core warming
        up, a neighbour's burst) shows as a large gap between the halves; a call's own modes
        (some runs a cache line or an interrupt slower) as a small gap that never closes, and
        under the fixed 1% rule such rows ran 5-26 s where 0.25 s gave the same median: a 2%
        gap is accepted after 1 s, 5% after 6 s, a larger one runs to the cap."""
        # measured from the default floor, not min_time_s: a run asked for no floor (or
        # QUICK's 0.05 s) does not get the widest bound at once
        grown = self.stable_rel * max(1.0, elapsed_s / max(self.min_time_s, 0.25)) ** 0.5
        return min(max(grown, self.stable_rel), max(self.stable_rel_max, self.stable_rel))

    def to_dict(self) -> dict:
        return asdict(self)


QUICK = MeasureConfig(warmup_runs=2, warmup_s=0.0, min_runs=10, min_time_s=0.05, max_time_s=5.0)


def stable(times: list[int], rel: float, abs_ns: float = 0.0) -> bool:
    """Do the medians (ns) of the first and second half of `times` agree within `rel`, or
    within `abs_ns`? The absolute floor is for calls of a few us: their times fall in clusters
    tens of ns apart (cache lines, the clock's own cost), the median of a half flips between
    clusters, and 1% of 2 us is 20 ns, so the relative rule alone timed one main-job row for
    26 s where 0.25 s gave the same median."""
    half = len(times) // 2
    a, b = float(np.median(times[:half])), float(np.median(times[half:]))
    return abs(a - b) <= max(rel * max(min(a, b), 1e-12), abs_ns)


def time_calls(fn: Callable[[], object], cfg: MeasureConfig) -> np.ndarray:
    """Per-call latencies in ms after warmup; stops when count AND time minimums are met and
    the median is stable (see the module docstring), or at the cap."""
    start = time.perf_counter()
    n = 0
    while n < cfg.warmup_runs or time.perf_counter() - start < cfg.warmup_s:
        fn()
        n += 1
        if time.perf_counter() - start > cfg.max_time_s:
            break
    times: list[int] = []
    clock = time.perf_counter_ns
    begin = clock()
    check = 0  # run count at which the median is next checked (0: once the floor is met)
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        times.append(t1 - t0)
        elapsed = (t1 - begin) / 1e9
        if elapsed >= cfg.max_time_s:
            break
        if len(times) >= max(cfg.min_runs, check) and elapsed >= cfg.min_time_s:
            if stable(times, cfg.tolerance(elapsed), cfg.stable_ns):
                break
            check = len(times) + max(len(times) // 4, 1)
    return np.asarray(times, dtype=np.float64) / 1e6


def latency_stats(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        "min_ms": float(ms.min()),
        "runs": len(ms),
    }


def _status_kb(field: str) -> float:
    try:
        with open(f"/proc/{os.getpid()}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def rss_mb() -> float:
    """Current resident set of this process (MiB)."""
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak resident set (VmHWM) of this process since it started (MiB)."""
    return _status_kb("VmHWM") / 1024
