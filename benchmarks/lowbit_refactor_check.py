"""Part 1 check: the unified dot-product builder (kernels/int8_conv.py conv_dot_kernel) against
the three-prim-func kernels it replaced (read from git at BASE): the same TIR (modulo function
names) and the same assembly (modulo debug line info) for both ISAs, and the ResNet-18
3x3 64->64 56x56 layer timed old/new side by side (interleaved rounds, this process's core).

    python benchmarks/lowbit_refactor_check.py [BASE]   (default 48364fe, main before the refactor)
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tvm

from edgebench.kernels import int8_conv, int8_conv_arm
from edgebench.kernels.int8_conv import ConvShape
from edgebench.targets import find_target

BASE = sys.argv[1] if len(sys.argv) > 1 else "48364fe"
ROOT = Path(__file__).resolve().parents[1]


def load_old(name: str, path: str):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASE}:{path}"], check=True,
                         capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp()) / f"{name}.py"
    tmp.write_text(src)
    spec = importlib.util.spec_from_file_location(name, tmp)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


old_x86 = load_old("old_int8_conv", "edgebench/kernels/int8_conv.py")
old_arm = load_old("old_int8_conv_arm", "edgebench/kernels/int8_conv_arm.py")
SHAPES = [ConvShape(1, 58, 58, 64, 64, 3, 3, (1, 1)), ConvShape(1, 11, 9, 12, 16, 3, 3, (2, 2)),
          ConvShape(1, 1, 5, 64, 48, 1, 1, (1, 1)), ConvShape(1, 7, 7, 4, 32, 2, 2, (1, 1), (2, 2)),
          ConvShape(1, 1, 1, 2048, 2048, 1, 1, (1, 1)),
          ConvShape(1, 30, 30, 256, 512, 3, 3, (2, 2))]
OUTS = [("uint8", 3, 3, 200), ("int8", -5, -128, 127), ("float32", 0, 0, 0), ("int32", 0, 0, 0)]
PAIRS = {"x86-native": (old_x86.conv_vnni_kernel, int8_conv.conv_vnni_kernel),
         "arm-dotprod": (old_arm.conv_sdot_kernel, int8_conv_arm.conv_sdot_kernel)}


def tir(f, s, oc) -> str:
    return re.sub(r"def conv_\w+\(", "def F(", f(s, *oc).script())


def asm(target, f) -> list[str]:
    funcs = {f"k{i}_{j}": f(s, *oc).with_attr("global_symbol", f"k{i}_{j}")
             for i, s in enumerate(SHAPES) for j, oc in enumerate(OUTS)}
    text = tvm.compile(tvm.IRModule(funcs), target=target).mod.inspect_source("asm")
    return [line for line in text.splitlines() if not line.lstrip().startswith((".loc", ".file"))]


tir_diffs = sum(tir(o, s, oc) != tir(n, s, oc) for o, n in PAIRS.values()
                for s in SHAPES for oc in OUTS)
print(f"TIR differing: {tir_diffs} of {2 * len(SHAPES) * len(OUTS)}")
for name, (o, n) in PAIRS.items():
    a, b = asm(find_target(name).tvm_target(), o), asm(find_target(name).tvm_target(), n)
    diff = [d for d in difflib.unified_diff(a, b, lineterm="", n=0)
            if d[:1] in "+-" and d[:3] not in ("+++", "---")]
    print(f"{name}: {len(a)} asm lines, {len(diff)} differing (debug line info excluded)")

# the ResNet-18 layer, requantized uint8 output, old and new in alternating rounds
s = SHAPES[0]
target = find_target("x86-native").tvm_target()
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (1, s.h, s.w, s.c), dtype=np.uint8)
w = rng.integers(-128, 128, (s.k, s.c, 3, 3)).astype(np.int8)
args = [x, int8_conv.pack_weights(w, s.c, s.k), rng.integers(-5000, 5000, s.k).astype(np.int32),
        np.full(s.k, 2**30, np.int64), np.full(s.k, 40, np.int64)]
dev = tvm.cpu()
targs = [tvm.runtime.tensor(a, dev) for a in args]
outs, timers = [], []
for f in PAIRS["x86-native"]:
    lib = tvm.compile(tvm.IRModule({"k": f(s, "uint8", 0, 0, 255).with_attr("global_symbol", "k")}),
                      target=target).mod
    y = tvm.runtime.tensor(np.zeros((1, s.oh, s.ow, s.k), np.uint8), dev)
    lib["k"](*targs, y)
    outs.append(y.numpy())
    timers.append((lib.time_evaluator("k", dev, number=20, repeat=1), y))
assert np.array_equal(outs[0], outs[1]), "old and new kernels disagree"
times = [[], []]
for _ in range(15):
    for i, (t, y) in enumerate(timers):
        times[i].append(t(*targs, y).mean * 1e3)
old, new = (float(np.median(t)) for t in times)
print(f"3x3 64->64 56x56 layer, median of 15 alternating rounds: old {old:.3f} ms, "
      f"new {new:.3f} ms, new/old {new / old:.3f}; outputs identical")
