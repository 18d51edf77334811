"""`edgebench optimize`: the chosen variant is within the drop (on the target's own outputs),
every rejected candidate says why, the wall-clock budget holds, bad input is one line, and
`--export` ships a bundle the export verifier accepts."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from edgebench.bundle import _runner, run_isolated
from edgebench.optimize import OptimizeConfig, candidate, optimize, parse_budget


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench.cli", "optimize", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, says", [
    (["digits-mlp", "--max-drop", "-1"], "--max-drop -1: must be >= 0"),
    (["no-such-model"], "unknown model 'no-such-model'"),
    (["digits-mlp", "--target", "no-such-target"], "unknown target 'no-such-target'"),
    (["digits-mlp", "--budget", "5s"], "too small to compile anything"),
    (["digits-mlp", "--budget", "soon"], "give a duration like 30m"),
])
def test_bad_input_is_one_line_exit_2(args, says, tmp_path):
    proc = _cli(*args, "-o", str(tmp_path / "r.csv"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert not (tmp_path / "r.csv").exists() or (tmp_path / "r.csv").stat().st_size == 0


def test_budget_units():
    assert parse_budget("30m") == 1800 and parse_budget("90s") == 90
    assert parse_budget("1h") == 3600 and parse_budget("45") == 45


def test_no_variant_within_the_drop_names_the_best_found(tmp_path):
    """One-shot 95% pruning loses far more than 0.5 pt: rejected in PyTorch (no compile),
    exit 1 naming the best candidate and its drop."""
    proc = _cli("digits-mlp", "--variants", "prune=unstructured:0.95", "prune=unstructured:0.9",
                "--max-drop", "0.5", "--budget", "2m", "-o", str(tmp_path / "r.csv"))
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "no variant of digits-mlp within --max-drop 0.5" in line
    assert "best found is prune=unstructured:0.9 at" in line
    drop = float(line.split(" at ")[1].split(" pt")[0])
    assert drop > 0.5
    table = (tmp_path / "r-optimize.md").read_text()
    assert table.count("accuracy -") >= 2


@pytest.mark.slow
def test_optimize_digits_mlp_within_budget_and_exports(tmp_path):
    """A tiny budget: the chosen row is a measured ok TVM row within the drop, rejected rows
    carry their reason, the search ends within the budget, and the exported winner passes
    the bundle's own checks and reproduces its reference outputs without torch."""
    budget = 240.0
    space = [candidate(v) for v in ("fp32", "quant=static", "prune=unstructured:0.9",
                                    "prune=channel:0.5:ft5", "quant=fp16")]
    start = time.monotonic()
    result = optimize(OptimizeConfig("digits-mlp", "x86-native", max_drop=1.0,
                                     budget_s=budget, output=tmp_path / "r.csv",
                                     export=tmp_path / "bundle", space=space, trials=0,
                                     log=lambda _m: None))
    wall = time.monotonic() - start
    assert result.elapsed_s <= budget + 20, result.elapsed_s  # a kill at the deadline + margin
    assert wall <= budget + 120  # the export comes after the search
    chosen = result.chosen
    assert chosen is not None and chosen.ok
    assert chosen.value("metric_drop") <= 1.0
    assert chosen.row.runtime == "tvm" and chosen.row.status == "ok"
    by = {o.cand.variant: o for o in result.outcomes}
    assert by["prune=unstructured:0.9"].reason.startswith("accuracy -")
    assert by["prune=unstructured:0.9"].rung == -1  # rejected without compiling
    assert by["quant=fp16"].reason.startswith("not applicable")
    for o in result.outcomes:
        assert o is chosen or o.reason, o.cand.variant
    assert chosen in result.front
    assert (tmp_path / "r-optimize.md").is_file() and (tmp_path / "r-front.png").is_file()
    # the bundle: hashes check, outputs match its example reference, measured p50 carried
    bundle = tmp_path / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["variant"] == chosen.cand.variant
    assert manifest["measured"]["p50_ms"] == pytest.approx(chosen.value("p50_ms"), rel=1e-3)
    _runner().load_bundle(bundle)  # raises BundleError on a hash mismatch
    x = np.load(bundle / "example_input.npy")[None]
    y = run_isolated(bundle, x)[0][0]
    np.testing.assert_allclose(y, np.load(bundle / "example_output.npy"), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.slow
def test_accuracy_phase_kills_a_candidate_at_its_deadline():
    """Phase 1 runs in a worker process: a fine-tuning candidate still training at the
    deadline is killed there (said in its reason, no score), the cheap ones before it are
    scored, and no worker process is left behind."""
    import psutil

    from edgebench.models import get_model
    from edgebench.optimize import Outcome, score_candidates

    cfg = OptimizeConfig("digits-mlp", "x86-native", max_drop=1.0)
    outcomes = [Outcome(candidate(v)) for v in
                ("prune=unstructured:0.9:ft5000", "fp32", "prune=unstructured:0.5")]
    lines: list[str] = []
    start = time.monotonic()
    score_candidates(cfg, get_model("digits-mlp"), outcomes, start + 60, lines.append)
    took = time.monotonic() - start
    long, fp32, pruned = outcomes
    assert fp32.drop_pt == 0.0 and pruned.drop_pt is not None
    assert long.drop_pt is None
    assert long.reason.startswith("cut for time: killed at the accuracy phase's deadline"), \
        long.reason
    assert 60 - 1 <= took <= 60 + 10, took  # stopped at the deadline, not when training ended
    assert any("cut for time in the accuracy phase: prune=unstructured:0.9:ft5000" in m
               for m in lines), lines
    left = [p for p in psutil.Process().children(recursive=True)
            if "score_worker" in " ".join(p.cmdline())]
    assert not left, left
