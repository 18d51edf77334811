"""The NHWC sparse conv against our dense conv, one ResNet-18 layer at a time: both bare
kernels on the same padded NHWC tensors, timed interleaved on the target's cores
(compile/sparse_choice.time_kernels), with register tile / channel block alternatives.

    flock /tmp/core1.lock python benchmarks/sparse_nhwc_layers.py \
        "[(64, 64, 56, 3, 1, 0.8, [(7, 64), (7, 17)])]"

Each case: (C, K, H=W, kernel, stride, sparsity, [(TP, CB), ...]); printed: times (us) and
GMAC/s on the non-zeros (for the dense kernel too: its speed on the sparse layer's work).
"""

from __future__ import annotations

import ast
import dataclasses
import sys

import numpy as np

from edgebench.compile.sparse_choice import time_kernels
from edgebench.kernels import fp32_conv
from edgebench.kernels import fp32_sparse_conv as sparse
from edgebench.kernels.layer import Layer
from edgebench.targets import find_target

TARGET = find_target("results/accuracy/x86-core1.toml", 1)


def case(c, k, hw, kern, stride, sp, tiles) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, c, kern, kern)).astype(np.float32)
    w[rng.random(w.shape) < sp] = 0
    b = np.zeros(k, np.float32)
    layer = Layer("conv2d", c, k, hw, hw, 1, (kern, kern), (stride, stride),
                  (kern // 2, kern // 2), sparsity=sp)
    s = sparse.shape(layer, TARGET)
    x = rng.standard_normal((1, s.h, s.w, c)).astype(np.float32)
    y = np.zeros((1, s.oh, s.ow, s.k), np.float32)
    cases = {"dense": (fp32_conv.emit(layer, TARGET), [x, *fp32_conv.pack(layer, TARGET, w, b), y])}
    for t in tiles:
        st = dataclasses.replace(s, tile=t)
        cases[f"sparse{t}"] = (sparse.sparse_conv_kernel(st),
                               [x, *sparse.pack_csr(w, st), sparse.pad_bias(b, k, s.k), y])
    us = time_kernels(TARGET, cases)
    print(c, k, hw, kern, stride, sp, "auto tile", (s.blocking(), s.channel_block()),
          {n: round(t) for n, t in us.items()},
          "GMAC/s", {n: round(s.macs / t / 1e3, 1) for n, t in us.items()}, flush=True)


if __name__ == "__main__":
    for args in ast.literal_eval(sys.argv[1]):
        case(*args)
