"""Timing loop, statistics and output verification, on real numbers."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from edgebench import verify
from edgebench.measure import (
    MeasureConfig,
    latency_stats,
    peak_rss_mb,
    rss_mb,
    stable,
    time_calls,
)


def test_time_calls_meets_both_minimums():
    # Fast calls: the time minimum binds, so there are far more runs than the count minimum.
    cfg = MeasureConfig(warmup_runs=1, warmup_s=0.0, min_runs=5, min_time_s=0.1, max_time_s=5)
    start = time.perf_counter()
    fast = time_calls(lambda: sum(range(100)), cfg)
    assert time.perf_counter() - start >= 0.1 and len(fast) > 5
    # Slow calls: the count minimum binds (a quarter more per check while the median moves).
    cfg = MeasureConfig(warmup_runs=1, warmup_s=0.0, min_runs=8, min_time_s=0.001, max_time_s=5,
                        stable_rel=1.0)
    slow = time_calls(lambda: time.sleep(0.002), cfg)
    assert len(slow) == 8 and slow.min() >= 2.0


def test_time_calls_goes_on_while_the_median_moves():
    # 1 ms calls for the first 30, then 10 ms: at the floor (40 runs) the halves disagree, so
    # timing goes on until both halves are mostly 10 ms calls; a function whose halves agree
    # (within 5x here: sleeps on a loaded core) stops at 40.
    calls = []

    def drifting():
        time.sleep(0.001 if len(calls) < 30 else 0.010)
        calls.append(1)

    cfg = MeasureConfig(warmup_runs=0, warmup_s=0.0, min_runs=40, min_time_s=0.0, max_time_s=5)
    ms = time_calls(drifting, cfg)
    assert len(ms) > 100 and np.median(ms) >= 10.0
    steady = time_calls(lambda: time.sleep(0.002), dataclasses.replace(cfg, stable_rel=5.0))
    assert len(steady) == 40


def test_stable_allows_a_few_us_call_its_jitter_but_not_a_drift():
    # a 2.4 us call whose times sit in two clusters 40 ns apart: the halves' medians land in
    # different clusters (1.7% apart), which the relative rule alone never accepts
    rng = np.random.default_rng(0)
    first = rng.choice([2380, 2420], 1000, p=[0.6, 0.4])
    second = rng.choice([2380, 2420], 1000, p=[0.4, 0.6])
    jitter = [*first, *second]
    assert np.median(first) == 2380 and np.median(second) == 2420
    assert not stable(jitter, 0.01) and stable(jitter, 0.01, 50)
    # a real drift (2.4 -> 2.6 us) stays unstable with the floor; a 1 ms call keeps the 1% rule
    assert not stable([2400] * 1000 + [2600] * 1000, 0.01, 50)
    assert not stable([1_000_000] * 10 + [1_020_000] * 10, 0.01, 50)
    assert stable([1_000_000] * 10 + [1_005_000] * 10, 0.01, 50)


def test_tolerance_widens_with_time_spent_up_to_its_bound():
    cfg = MeasureConfig()  # 1% at the 0.25 s floor
    assert cfg.tolerance(0.1) == pytest.approx(0.01) and cfg.tolerance(0.25) == pytest.approx(0.01)
    assert cfg.tolerance(1.0) == pytest.approx(0.02) and cfg.tolerance(2.25) == pytest.approx(0.03)
    assert cfg.tolerance(60.0) == pytest.approx(0.05)
    # a bound asked for tighter or looser than the default is kept at the floor
    assert MeasureConfig(stable_rel=5.0).tolerance(10.0) == pytest.approx(5.0)
    # no floor asked for: the bound still starts at 1% (it widens from 0.25 s on)
    assert MeasureConfig(min_time_s=0.0).tolerance(0.1) == pytest.approx(0.01)


def test_time_calls_stops_at_the_cap():
    cfg = MeasureConfig(warmup_runs=0, warmup_s=0.0, min_runs=1000, min_time_s=0.0,
                        max_time_s=0.05)
    assert len(time_calls(lambda: time.sleep(0.01), cfg)) < 10


def test_latency_stats():
    s = latency_stats(np.arange(1, 101, dtype=float))
    assert s["runs"] == 100 and s["min_ms"] == 1
    assert s["p50_ms"] == pytest.approx(50.5) and s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01) and s["mean_ms"] == pytest.approx(50.5)


def test_rss_readings():
    assert 1 < rss_mb() <= peak_rss_mb()


def test_compare_passes_within_tolerance_and_fails_beyond():
    ref = [np.linspace(-20, 20, 30, dtype=np.float32).reshape(3, 10)]
    ok = verify.compare([ref[0] + 1e-4], ref)
    assert ok.ok and ok.max_abs_err == pytest.approx(1e-4, rel=1e-2)
    assert ok.tolerance == pytest.approx(1e-3 * 20)
    bad = verify.compare([ref[0] + 0.5], ref)
    assert not bad.ok and "max abs error 0.5" in bad.message
    assert not verify.compare([ref[0][:2]], ref).ok
    nan = ref[0].copy()
    nan[0, 0] = np.nan
    assert "NaN" in verify.compare([nan], ref).message
    assert not verify.compare([], ref).ok


def test_accuracy_and_agreement():
    logits = np.eye(4, dtype=np.float32)[[0, 1, 2, 3]][:, None, :]  # (N, 1, classes)
    assert verify.accuracy(logits, np.array([0, 1, 2, 0])) == 0.75
    assert verify.top1_agreement(logits, logits) == 1.0
    assert verify.top1_agreement(logits, logits[::-1]) == 0.0


LOADED = '''
import importlib, json, sys
from edgebench.runtimes import runtime_module
rt = runtime_module(sys.argv[1])
rt.before_import()
for lib in rt.LIBS:
    importlib.import_module(lib)
out = None
if len(sys.argv) > 2:
    import numpy as np
    session = rt.open_session(sys.argv[2], 1)
    x = np.arange(8, dtype=np.float32).reshape(1, 8)
    out = session.outputs(session.call(session.prepare(x)))[0].tolist()
print(json.dumps({"torch": sys.modules.get("torch") is not None,
                  "exir": sorted(m for m in sys.modules if m.startswith("executorch.exir")),
                  "out": out}))
'''


def _loaded(*args: str) -> dict:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True,
                          timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_workers_load_their_runtime_only(tmp_path):
    """The TVM worker imports no torch (tvm_ffi would), the ExecuTorch worker no exir compiler
    (its pybindings would), and the .pte still runs and gives PyTorch's outputs."""
    import torch

    from edgebench.runtimes import runtime_module

    assert _loaded("tvm")["torch"] is False
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 3).eval()
    x = torch.arange(8, dtype=torch.float32).reshape(1, 8)
    pte = runtime_module("executorch").export(net, x, tmp_path)
    loaded = _loaded("executorch", str(pte))
    assert loaded["exir"] == ["executorch.exir", "executorch.exir._warnings"]
    np.testing.assert_allclose(loaded["out"], net(x).detach().numpy(), rtol=1e-5, atol=1e-6)
