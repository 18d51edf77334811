"""Initializers for MetaSchedule's builder and runner worker processes (kept import-light).

TVM's builder imports `tvm.s_tir.tensor_intrin`, whose package __init__ registers the CUDA and
ROCm intrinsics too: 27 s per builder batch on this host, more than the builds themselves. CPU
targets need only the x86 and Arm intrinsics, so we register those alone.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

_PKG = "tvm.s_tir.tensor_intrin"


def register_cpu_intrinsics() -> None:
    """Import the x86 and Arm tensor intrinsics without the package's CUDA/ROCm ones."""
    if _PKG in sys.modules:
        return
    import tvm.s_tir

    pkg = types.ModuleType(_PKG)
    pkg.__path__ = [str(Path(tvm.s_tir.__file__).parent / "tensor_intrin")]
    sys.modules[_PKG] = pkg
    for sub in ("x86", "arm_cpu"):
        importlib.import_module(f"{_PKG}.{sub}")


def pin_runner() -> None:
    """Pin a runner worker to the cores named in EDGEBENCH_TUNE_CORES (set by the tuner)."""
    register_cpu_intrinsics()
    cores = os.environ.get("EDGEBENCH_TUNE_CORES")
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cores.split(",")})


def cross_export(mod) -> str:
    """MetaSchedule builder export for a board: a shared library linked by the cross compiler
    in EDGEBENCH_CROSS_CC (the default exports a .tar that the board would have to link with a
    compiler of its own, which boards and the emulated one lack)."""
    import tempfile

    from tvm.support import cc

    path = os.path.join(tempfile.mkdtemp(), "tvm_tmp_mod.so")
    mod.export_library(path, fcompile=cc.cross_compiler(os.environ["EDGEBENCH_CROSS_CC"]))
    return path


def direct_session(host: str, port: int, key: str, session_timeout: int, _rpc_config=None):
    """MetaSchedule runner session for a board reached directly (its RPCConfig knows only
    trackers)."""
    from tvm import rpc

    return rpc.connect(host, port, key, session_timeout=session_timeout)


def tracker_session(rpc, sessions_log: str = "", _rpc_config=None):
    """MetaSchedule runner session on a free board of the tracker's key (edgebench's request,
    which waits at most session_timeout and knows which board it got); the board's name is
    appended to `sessions_log`, so the tuner can say how many candidates each board timed."""
    from edgebench.execute.rpc import request_board

    session, name = request_board(rpc)
    if sessions_log:
        fd = os.open(sessions_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name}\n".encode())  # one small O_APPEND write: atomic per line
        finally:
            os.close(fd)
    return session


def alloc_host_random(session, device, args_info, alloc_repeat: int):
    """MetaSchedule RPC runner arguments filled with host-made random data: the default asks
    the board for tvm.contrib.random, which the runtime-only TVM a board runs does not have."""
    import numpy as np
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common

    rng = np.random.default_rng(0)

    def fill(arr) -> None:
        dtype = np.dtype(str(arr.dtype))
        shape = tuple(int(d) for d in arr.shape)
        data = (rng.uniform(-1, 1, shape) if dtype.kind == "f"
                else rng.integers(0, 2 if dtype.kind == "b" else 8, shape))
        arr.copyfrom(np.asarray(data).astype(dtype))

    return alloc_argument_common(fill, device, args_info, alloc_repeat)
