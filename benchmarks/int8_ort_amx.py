"""Does ONNX Runtime's MLAS take its AMX u8s8 GEMM path on this host? Measured, not assumed:
an int8 MatMulInteger (u8 256x1024 by s8 1024x1024) timed in this process, then in a child
with deny_amx.so preloaded (Linux refuses the tile permission, so MLAS cannot use AMX);
also whether the process holds the AMX permission (ARCH_GET_XCOMP_PERM) after ORT ran.

    python benchmarks/int8_ort_amx.py
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1] / "results" / "int8" / "amx"
M, K, N = 256, 1024, 1024


def amx_permitted() -> bool:
    mask = ctypes.c_uint64(0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(158, 0x1022, ctypes.byref(mask))  # ARCH_GET_XCOMP_PERM
    return bool(mask.value >> 18 & 1)


def measure() -> None:
    before = amx_permitted()  # before onnxruntime is loaded (MLAS asks when it loads)
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (K, N), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [M, K])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [M, N])],
        [helper.make_tensor("w", TensorProto.INT8, [K, N], w.tobytes(), raw=True)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, (M, K), dtype=np.uint8)
    y = sess.run(None, {"a": a})[0]
    assert np.array_equal(y, a.astype(np.int64) @ w.astype(np.int64))
    best = float("inf")
    for _ in range(30):
        t = time.perf_counter()
        sess.run(None, {"a": a})
        best = min(best, time.perf_counter() - t)
    label = "deny_amx.so preloaded" if os.environ.get("LD_PRELOAD") else "as installed"
    print(f"ORT {ort.__version__} {label}: MatMulInteger {M}x{K}x{N} best {best * 1e3:.3f} ms "
          f"= {M * K * N / best / 1e9:.0f} GMAC/s; AMX permitted before import/after run: "
          f"{before}/{amx_permitted()}", flush=True)
    del onnx


if __name__ == "__main__":
    measure()
    if "--child" not in sys.argv:
        shim = Path(tempfile.mkdtemp()) / "deny_amx.so"
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", shim, HERE / "deny_amx.c",
                        "-ldl"], check=True)
        subprocess.run([sys.executable, __file__, "--child"], check=True,
                       env={**os.environ, "LD_PRELOAD": str(shim)})
