"""A farm of boards behind one tracker measures rows concurrently; a board dying mid-row fails
(or, with retries, re-measures) only that row. Uses a tracker and servers of its own (the
emulated board's root fs), so the shared `arm` / `arm-farm` boards are never stopped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edgebench import verify
from edgebench.execute import board
from edgebench.execute.farm import Farm, Job
from edgebench.execute.rpc import run_remote
from edgebench.measure import QUICK
from edgebench.models import get_model
from edgebench.pipeline import RunConfig, build_tvm, reference_outputs, run
from edgebench.targets import RPCConfig, find_target
from edgebench.variant import Variant, parse_variant
from tests.helpers import free_port, need_rootfs

pytestmark = [pytest.mark.arm, pytest.mark.slow]
BOARD_DIR = str(board.board_dir())  # read before conftest points EDGEBENCH_CACHE elsewhere


@pytest.fixture
def farm(monkeypatch):
    """A tracker and two servers of key 'farmtest'; yields (target, servers by port)."""
    monkeypatch.setenv("EDGEBENCH_BOARD_DIR", BOARD_DIR)
    need_rootfs()
    tport = free_port()
    procs = [board.start_tracker(tport)]
    try:
        board.wait_ready(procs, 180)  # minutes on a loaded host
        addr = f"127.0.0.1:{tport}"
        servers = {}
        for _ in range(2):
            port = free_port()
            servers[port] = board.start_server(port, addr, "farmtest")
        procs += servers.values()
        board.wait_ready(procs, 600)
        target = replace(find_target("arm-farm"),
                         rpc=RPCConfig(tracker=addr, key="farmtest", connect_timeout=5,
                                       session_timeout=300))
        yield target, servers
    finally:
        for p in reversed(procs):
            p.stop()


def _run(target, out: Path, models, variants, log, retries=1):
    cfg = RunConfig(models=models, target=target.path, variants=variants, runtimes=("tvm",),
                    trials=0, output=out, measure=QUICK, log=log, board_retries=retries)
    return run(cfg, target_override=target)


def test_two_boards_measure_two_rows_at_once(farm, tmp_path):
    """Two compiled rows handed to a Farm of two boards are measured at the same time, each on
    its own board, and both give PyTorch's outputs. (Through the pipeline the overlap also
    depends on compiling faster than a board measures, which a loaded host may not.)"""
    target, servers = farm
    spec = get_model("digits-cnn")
    model = spec.build()
    xs = spec.eval_data()[0][:40]
    reference = reference_outputs(model, xs)
    variant = Variant(spec, parse_variant("fp32"), target)
    _, compiled = build_tvm(variant, model, xs[0], tmp_path / "model.so",
                         RunConfig(trials=0, log=lambda _m: None))
    farm = Farm(target, QUICK, lambda _m: None, boards=2, retries=0)
    checks, errors = [], []
    for i in range(2):
        farm.submit(Job(f"row {i}", compiled.path, xs.numpy(),
                        lambda result, _board: checks.append(
                            verify.compare(result.outputs, reference)),
                        errors.append))
    farm.close()
    assert errors == [None, None] and all(c.ok for c in checks), (errors, checks)
    (_, b1, s1, e1), (_, b2, s2, e2) = farm.intervals
    assert {b1, b2} == {f"farmtest@127.0.0.1:{p}" for p in servers}
    assert s1 < e2 and s2 < e1, farm.intervals  # the two measurements overlap in time


@pytest.mark.parametrize("retries", [0, 1])
def test_board_killed_mid_row_fails_only_that_row(farm, tmp_path, retries):
    """The board that receives the 2nd upload is killed right after it: that row fails
    (retries=0) or is measured on the other board (retries=1); every other row is ok."""
    target, servers = farm
    uploads: list[str] = []
    logs: list[str] = []

    def log(msg: str) -> None:
        logs.append(msg)
        if msg.startswith("uploaded "):
            uploads.append(msg.rsplit(" to ", 1)[1])
            if len(uploads) == 2:
                servers[int(uploads[-1].rsplit(":", 1)[1])].stop()

    variants = ("fp32", "prune=unstructured:0.9", "prune=nm:2:4", "prune=channel:0.5")
    df = _run(target, tmp_path / "rows.csv", ["digits-mlp"], variants, log, retries)
    killed = uploads[1]
    assert len(df) == 4
    failed = df[df["status"] != "ok"]
    if retries == 0:
        assert len(failed) == 1, df[["variant", "status", "error"]]
        assert f"board {killed} failed mid-run" in failed.iloc[0]["error"]
    else:
        assert failed.empty, failed["error"].tolist()
        assert any(f"board {killed} failed mid-run" in m and "retrying once" in m for m in logs)
        assert any(f"after board {killed} failed mid-run" in m for m in logs)
    ok = df[df["status"] == "ok"]
    survivor = next(f"farmtest@127.0.0.1:{p}" for p in servers
                    if f"farmtest@127.0.0.1:{p}" != killed)
    # rows that started after the kill all ran on the surviving board
    assert (ok["board"].isin([killed, survivor])).all()
    assert (ok["board"] == survivor).sum() >= 2


def test_tuning_times_candidates_on_every_free_board(farm, tmp_path):
    """MetaSchedule tuning through the tracker runs one runner worker per free board: the
    candidates of digits-mlp's FP32 tasks (TVM's own ops: `+metaschedule`) are timed on both
    servers, and the tuned library computes PyTorch's outputs."""
    target, servers = farm
    spec = get_model("digits-mlp")
    model = spec.build()
    xs = spec.eval_data()[0][:8]
    logs: list[str] = []
    # +metaschedule: plain FP32 runs on our NEON kernels now, with no task to tune
    variant = Variant(spec, parse_variant("fp32+metaschedule"), target)
    _, compiled = build_tvm(variant, model, xs[0], tmp_path / "model.so",
                            RunConfig(trials=8, log=logs.append))
    boards = compiled.tuning.boards
    assert compiled.tuning.tuned_now >= 1 and compiled.trials_per_task == 8, compiled.tuning
    assert set(boards) == {f"farmtest@127.0.0.1:{p}" for p in servers}, (boards, logs)
    assert all(n >= 1 for n in boards.values()) and sum(boards.values()) >= 8, boards
    assert any("on 2 board(s)" in m for m in logs), logs
    result, _board = run_remote(compiled.path, xs.numpy(), target, QUICK)
    assert verify.compare(result.outputs, reference_outputs(model, xs)).ok
