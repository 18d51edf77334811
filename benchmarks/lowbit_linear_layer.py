"""The MLP's 2048 -> 2048 layer at batch 1 alone on the vpdpbusd kernel: int8 vs packed
ternary / binary weights, with NK = 4 accumulators (the blocking now) and NK = 1 (the blocking
before 71f8988, which halved NK for one-pixel blocks), timed in interleaved rounds on this
process's core; each output checked against numpy first.

    taskset -c 0 python benchmarks/lowbit_linear_layer.py > results/lowbit/linear_layer.txt
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tvm

from edgebench.kernels.int8_conv import X86_VNNI, ConvShape, conv_dot_kernel
from edgebench.targets import find_target

C = K = 2048
ROUNDS, NUMBER = 15, 200
s = ConvShape(1, 1, 1, C, K, 1, 1, (1, 1))
target = find_target("x86-native").tvm_target()
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (1, 1, 1, C), dtype=np.uint8)
ternary = rng.integers(-1, 2, (K, C, 1, 1)).astype(np.int8)
binary = np.where(ternary == 0, 1, ternary).astype(np.int8)
dev = tvm.cpu()
rows = []
for isa in (X86_VNNI, dataclasses.replace(X86_VNNI, min_pixels=1, nk_choices=(1,))):
    for bits in (8, 2, 1):
        w = binary if bits == 1 else ternary
        f = conv_dot_kernel(isa, s, "int32", bits=bits).with_attr("global_symbol", "k")
        lib = tvm.compile(tvm.IRModule({"k": f}), target=target).mod
        packed = isa.pack_weights(w, C, K, bits)
        args = [tvm.runtime.tensor(a, dev) for a in (x, packed, np.zeros(K, np.int32))]
        y = tvm.runtime.tensor(np.zeros((1, 1, 1, K), np.int32), dev)
        lib["k"](*args, y)
        want = x.reshape(-1).astype(np.int64) @ w.reshape(K, C).T.astype(np.int64)
        assert np.array_equal(y.numpy().reshape(-1), want), (bits, isa.blocking(s))
        name = f"NK={isa.blocking(s)[1]} weights={'int8' if bits == 8 else f'{bits}-bit'}"
        rows.append((name, packed.nbytes, lib.time_evaluator("k", dev, number=NUMBER, repeat=1),
                     args, y))
times: dict[str, list[float]] = {r[0]: [] for r in rows}
for _ in range(ROUNDS):
    for name, _size, timer, args, y in rows:
        times[name].append(timer(*args, y).mean * 1e6)
base = np.median(times[rows[0][0]])
print(f"1x{C} -> {K} linear, median of {ROUNDS} interleaved rounds x {NUMBER} calls")
print("| blocking | weights | weight bytes | us | vs NK=4 int8 |")
print("|---|---|---|---|---|")
for name, size, *_ in rows:
    nk, wts = name.split(" ")
    t = float(np.median(times[name]))
    print(f"| {nk} | {wts.split('=')[1]} | {size:,} | {t:.1f} | {base / t:.2f}x |")
