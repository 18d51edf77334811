"""Boards over RPC, on the emulated aarch64 board (`edgebench board up`; .ci/run starts it).

Without a running board these tests skip, except under CI=true, where a missing board is a
failure (.ci/run must have started it). `pytest --target=arm` (or rpi4, or --rpc-host) runs
them against that board instead of the default emulated one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from edgebench.execute import board
from edgebench.execute.rpc import BoardError, check_artifact_arch, request_board
from edgebench.measure import QUICK
from edgebench.pipeline import RunConfig, run
from edgebench.pytest_plugin import session_target
from edgebench.report import read_rows
from edgebench.targets import RPCConfig, find_target
from tests.helpers import free_port, need_board, need_rootfs

pytestmark = pytest.mark.arm
BOARD_DIR = str(board.board_dir())  # read before conftest points EDGEBENCH_CACHE elsewhere




@pytest.fixture(scope="module")
def board_target(request):
    """The session's board (--target / --rpc-*), else the emulated board on 127.0.0.1:9091."""
    target = session_target(request.config)
    return need_board(target if target.rpc is not None else find_target("arm"))


@pytest.fixture(scope="module")
def farm_target():
    return need_board(find_target("arm-farm"))


def _run(target, tmp_path: Path, models, variants=("fp32",), runtimes=("tvm",), logs=None,
         log=None, resume=True):
    cfg = RunConfig(models=models, target=target.path, variants=variants, runtimes=runtimes,
                    trials=0, output=tmp_path / "rows.csv", measure=QUICK, resume=resume,
                    log=log or (logs.append if logs is not None else lambda _m: None))
    return run(cfg, target_override=target)


def test_cross_compiled_cnn_runs_on_board_and_matches_pytorch(board_target, tmp_path):
    logs: list[str] = []
    df = _run(board_target, tmp_path, ["digits-cnn"], runtimes=("tvm", "pytorch"), logs=logs)
    assert list(df["runtime"]) == ["tvm"]  # peers do not run on a board: skipped, said so
    assert any("skipping runtime pytorch: only the TVM runtime runs on a board" in m
               for m in logs)
    row = df.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["verify_err"] < 1e-4 and row["accuracy"] > 0.95
    assert str(row["board"]).endswith(board_target.rpc.address)
    assert row["p50_ms"] > 0 and row["peak_rss_mb"] > row["model_rss_mb"] > 0
    if board_target.name == "arm":
        assert bool(row["emulated"]) is True
    assert "EMULATED" in (tmp_path / "rows.md").read_text() or not row["emulated"]


def test_sparse_kernels_cross_compiled_run_on_the_board(board_target, tmp_path):
    """Issue 5 on aarch64: the BSR kernels built for the board give PyTorch's outputs there."""
    variants = ("prune=unstructured:0.9+sparse", "prune=block:16x1:0.9+sparse")
    df = _run(board_target, tmp_path, ["digits-mlp"], variants)
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert (df["prune_kind"] == "sparse-kernel").all()
    assert df["sparse_layers"].str.contains("remote target: chosen by sparsity threshold").all()
    assert (df["verify_err"] < 1e-4).all()  # outputs equal the pruned PyTorch model


def test_tracker_spreads_rows_over_two_boards(farm_target, tmp_path):
    variants = ("fp32", "prune=unstructured:0.5", "prune=unstructured:0.9", "prune=nm:2:4")
    df = _run(farm_target, tmp_path, ["digits-mlp"], variants)
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert df["board"].nunique() == 2, df["board"].tolist()
    assert df["emulated"].all()


def test_tracker_without_free_board_of_key_times_out(farm_target):
    start = time.monotonic()
    with pytest.raises(BoardError, match="no free board of key 'no-such-board' at tracker"):
        request_board(replace(farm_target.rpc, key="no-such-board"), wait_s=2)
    assert time.monotonic() - start < 15


def test_unreachable_board_stops_the_run_naming_host_port(tmp_path):
    """Probed before anything is built or tuned for it (a board that dies later fails its
    row: test_server_killed_mid_run...)."""
    port = free_port()
    target = replace(find_target("arm"), rpc=RPCConfig(host="127.0.0.1", port=port,
                                                       connect_timeout=2))
    with pytest.raises(BoardError, match=f"board 127.0.0.1:{port} unreachable"):
        _run(target, tmp_path, ["digits-mlp"])
    assert not (tmp_path / "rows.csv").exists() or len(read_rows(tmp_path / "rows.csv")) == 0


def test_pytest_target_without_board_fails_with_one_line(tmp_path):
    port = free_port()
    toml = tmp_path / "gone.toml"
    toml.write_text(find_target("arm").path.read_text().replace("port = 9091", f"port = {port}")
                    .replace("connect_timeout = 5", "connect_timeout = 2"))
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--target={toml}", str(tmp_path / "test_x.py")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = [ln for ln in out.splitlines() if "unreachable" in ln]
    assert len(lines) == 1 and f"board 127.0.0.1:{port} unreachable" in lines[0], out
    assert "Traceback" not in out


def test_library_for_another_architecture_is_refused():
    import tvm_ffi

    x86_lib = next((Path(tvm_ffi.__file__).parent / "lib").glob("libtvm_ffi*.so"))
    with pytest.raises(BoardError, match="built for x86_64 but the board is aarch64"):
        check_artifact_arch(x86_lib, "aarch64")


def test_server_killed_mid_run_fails_that_row_and_resume_keeps_the_rest(board_target, tmp_path,
                                                                       monkeypatch):
    """A board of our own (not the shared one) is killed right after the 2nd row's upload."""
    monkeypatch.setenv("EDGEBENCH_BOARD_DIR", BOARD_DIR)
    need_rootfs()
    port = free_port()
    target = replace(find_target("arm"), rpc=RPCConfig(host="127.0.0.1", port=port,
                                                       connect_timeout=3))
    variants = ("fp32", "prune=unstructured:0.9", "prune=nm:2:4")
    server = board.start_server(port)
    try:
        board.wait_ready([server], 120)
        measuring: list[str] = []

        def log(msg: str) -> None:
            if msg.endswith(": export"):  # a row starts
                measuring.append(msg)
            if ": uploaded" in msg and len(measuring) == 2:
                server.stop()  # the board dies between upload and run of row 2

        df = _run(target, tmp_path, ["digits-mlp"], variants, log=log)
        status = dict(zip(df["variant"], df["status"], strict=True))
        errors = dict(zip(df["variant"], df["error"], strict=True))
        assert status == {"fp32": "ok", "prune=unstructured:0.9": "failed",
                          "prune=nm:2:4": "failed"}
        assert f"127.0.0.1:{port} failed mid-run" in errors["prune=unstructured:0.9"]
        assert f"127.0.0.1:{port} unreachable" in errors["prune=nm:2:4"]
        # The board is back: a re-run measures only what failed, the fp32 row is kept.
        server = board.start_server(port)
        board.wait_ready([server], 120)
        logs: list[str] = []
        df = _run(target, tmp_path, ["digits-mlp"], variants, logs=logs)
        assert (df["status"] == "ok").all(), df["error"].tolist()
        assert any("fp32 tvm: already measured, skipped" in m for m in logs)
    finally:
        server.stop()


def test_benchmark_fixture_on_the_session_board(edgebench_run, edgebench_target,
                                                edgebench_results):
    """`pytest --target=arm`: the plugin's fixtures compile for and run on that board."""
    if edgebench_target.rpc is None:
        pytest.skip("pass --target=arm (or another board target) to run the fixtures on a board")
    df = edgebench_run(["digits-cnn"], runtimes=("tvm",))
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert df["board"].notna().all()
    assert Path(edgebench_results).exists()
