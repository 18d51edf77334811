"""The environment a result was measured in: CPU, ISA features, threads, library versions.

int8 and vector speed depend on the instructions present, so every results file carries this
header, and each row carries the machine id so rows from different machines never share a ratio.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
from pathlib import Path

from edgebench.targets import cpu_flags

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_fp16",
             "avx_vnni", "amx_int8", "asimd", "asimddp", "fphp", "asimdhp", "sve", "i8mm")
PACKAGES = ("torch", "apache-tvm", "apache-tvm-ffi", "onnxruntime", "onnx", "executorch",
            "numpy", "torch-pruning")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def host_environment() -> dict:
    """What this machine is; `machine` is a short id that changes with host or CPU."""
    flags = cpu_flags()
    cpu = cpu_model()
    host = socket.gethostname()
    return {
        "machine": hashlib.sha1(f"{host}|{cpu}".encode()).hexdigest()[:8],
        "hostname": host,
        "cpu": cpu,
        "arch": platform.machine(),
        "isa": " ".join(f for f in ISA_FLAGS if f in flags),
        "logical_cpus": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions(),
    }
