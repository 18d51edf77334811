"""Third-party noise off by default: the CLI sets EDGEBENCH_QUIET=1 (unless `-v`) and every
process that imports edgebench, the measuring workers included, installs these filters.

Silenced: FutureWarning/DeprecationWarning (torch's pytree deprecations when a worker
unpickles an exported program, torch API deprecations) and UserWarning/log warnings from the
libraries below (torchao's "Failed to load ... cutlass", TVM's MetaSchedule notices, torch's
own log lines). Our own
warnings and every error still show.
"""

from __future__ import annotations

import logging
import os
import warnings

ENV = "EDGEBENCH_QUIET"
THIRD_PARTY = ("torch", "torchao", "torch_pruning", "executorch", "onnx", "onnxscript",
               "onnxruntime", "tvm", "tvm_ffi", "sklearn", "xgboost", "matplotlib")


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def apply() -> None:
    """Install the filters in this process (idempotent)."""
    # torch configures its own loggers when imported (resetting levels set before): its
    # TORCH_LOGS setting is the switch ("-all": errors only), e.g. the pytree Enum notice
    os.environ.setdefault("TORCH_LOGS", "-all")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in THIRD_PARTY:
        warnings.filterwarnings("ignore", category=UserWarning, module=rf"{name}(\.|$)")
        logging.getLogger(name).setLevel(logging.ERROR)


def set_for_children(quiet: bool) -> None:
    """Filter here and in every process started from here (workers read the environment)."""
    os.environ[ENV] = "1" if quiet else "0"
    if quiet:
        apply()
