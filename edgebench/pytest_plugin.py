"""pytest plugin: options + fixtures + a results file, as pytest-benchmark does.

`pytest --target=NAME_OR_TOML` picks the target the benchmark fixtures compile for and run on;
`--edgebench-results` is the CSV they append to; `--edgebench-trials` the tuning budget per task.
Registered through the `pytest11` entry point, so any project can use these fixtures.

A board target (`--target=arm`, `--target=rpi4`, or any `--rpc-host` / `--rpc-tracker`) is
probed once at start-up: an unreachable board stops the session with one line naming the
address tried, rather than a skip (it would hide a dead board) or a trace per test.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgebench")
    group.addoption("--target", default=None,
                    help="edgebench target name or .toml path (default: x86-native)")
    group.addoption("--rpc-tracker", default=None, help="host:port of a TVM RPC tracker")
    group.addoption("--rpc-key", default=None, help="device key at the tracker")
    group.addoption("--rpc-host", default=None, help="host:port of a TVM RPC server (a board)")
    group.addoption("--edgebench-trials", type=int, default=None,
                    help="MetaSchedule trials per task for benchmark fixtures")
    group.addoption("--edgebench-results", default=None,
                    help="CSV the benchmark fixtures append to (default: a temp file)")


def session_target(config: pytest.Config):
    """The Target named by --target (with --rpc-* overriding its RPC settings)."""
    from dataclasses import replace

    from edgebench.targets import RPCConfig, find_target

    opt = config.getoption
    target = find_target(opt("--target") or "x86-native")
    if opt("--rpc-host") or opt("--rpc-tracker"):
        if opt("--rpc-tracker"):
            rpc = RPCConfig(tracker=opt("--rpc-tracker"), key=opt("--rpc-key") or target.name)
        else:
            host, _, port = opt("--rpc-host").rpartition(":")
            rpc = RPCConfig(host=host, port=int(port))
        target = replace(target, rpc=rpc)
    return target


def pytest_configure(config: pytest.Config) -> None:
    opt = config.getoption
    if not (opt("--target") or opt("--rpc-host") or opt("--rpc-tracker")):
        return
    from edgebench.targets import TargetError

    try:
        target = session_target(config)
    except (TargetError, ValueError) as e:
        raise pytest.UsageError(f"edgebench: {e}") from None
    if target.rpc is not None:
        from edgebench.execute.rpc import BoardError, probe_board

        try:
            probe_board(target)
        except BoardError as e:
            raise pytest.UsageError(f"edgebench: target '{target.name}': {e}") from None


@pytest.fixture(scope="session")
def edgebench_target(request: pytest.FixtureRequest):
    """The Target named by --target (with --rpc-* overriding its RPC settings)."""
    return session_target(request.config)


@pytest.fixture(scope="session")
def edgebench_results(request: pytest.FixtureRequest, tmp_path_factory) -> Path:
    """Where benchmark rows go: --edgebench-results, or a per-session temp CSV."""
    path = request.config.getoption("--edgebench-results")
    return Path(path) if path else tmp_path_factory.mktemp("edgebench") / "results.csv"


@pytest.fixture(scope="session")
def edgebench_run(edgebench_target, edgebench_results, request: pytest.FixtureRequest):
    """Call with models/variants/runtimes; runs them on the session's target, returns rows."""
    from edgebench.measure import QUICK
    from edgebench.pipeline import RunConfig, run

    trials = request.config.getoption("--edgebench-trials")

    def _run(models, variants=("fp32",), runtimes=("tvm",), **kwargs):
        kwargs.setdefault("measure", QUICK)
        cfg = RunConfig(models=models, target=edgebench_target.path, variants=variants,
                        runtimes=runtimes, trials=trials if trials is not None else 0,
                        output=edgebench_results, log=lambda _msg: None, **kwargs)
        return run(cfg, target_override=edgebench_target)

    return _run
