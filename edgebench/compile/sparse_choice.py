"""Per-layer sparse-or-dense choice by measurement (the break-even of issue 5).

A sparse kernel only pays above some sparsity that depends on the layer's shape, the block
shape and the machine (Relay's x86 sparse_dense lost to dense below ~30-50%). So for each
candidate layer edgebench times both on the target: the dense layer is the MetaSchedule-tuned
kernel (its best measured time from the tuning database, tuning it first if the database lacks
it: the model's dense build needs that kernel anyway), the sparse one is our kernel compiled
alone and timed on the target's cores. The layer goes sparse only if it is faster.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from edgebench.compile.tuning import Progress, database_dir, tune
from edgebench.kernels.sparse_conv import conv_geometry, sparse_conv_kernel, to_conv_bsr
from edgebench.kernels.sparse_dense import sparse_dense_kernel, to_bsr
from edgebench.passes.sparse_weights import SparseLayer, _Chain, _static_shape
from edgebench.targets import Target


@contextlib.contextmanager
def _pinned(cores: tuple[int, ...]) -> Iterator[None]:
    old = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, set(cores) & os.sched_getaffinity(0) or old)
        yield
    finally:
        os.sched_setaffinity(0, old)


def _layer_module(chain: _Chain):
    """The dense layer alone as a Relax module: the same fused task as in the whole model."""
    from tvm import relax

    x = relax.Var("x", relax.TensorType(_static_shape(chain.x), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            if chain.op == "dense":
                y = bb.emit(relax.op.matmul(x, relax.const(np.ascontiguousarray(chain.weight.T))))
            else:
                y = bb.emit(relax.op.nn.conv2d(x, relax.const(chain.weight),
                                               strides=chain.attrs["strides"],
                                               padding=chain.attrs["padding"]))
            if chain.bias is not None:
                bias = relax.const(chain.bias.reshape(chain.bias_shape))
                y = bb.emit(relax.op.add(bias, y) if chain.bias_first else relax.op.add(y, bias))
            if chain.act == "relu":
                y = bb.emit(relax.op.nn.relu(y))
            elif chain.act == "relu6":
                y = bb.emit(relax.op.clip(y, 0.0, 6.0))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return bb.get()


class MeasuredChoice:
    """select() for SparsifyWeights: sparse where measured faster than the tuned dense layer."""

    def __init__(self, target: Target, trials: int, lanes: int = 16,
                 progress: Progress | None = None) -> None:
        self.target = target
        self.trials = trials
        self.lanes = lanes
        self.progress = progress

    def dense_us(self, chain: _Chain) -> float | None:
        from edgebench.compile import _prepare

        tvm_target = self.target.tvm_target()
        fused = _prepare(_layer_module(chain), tvm_target, (), self.target.conv_layout)
        _db, report = tune(fused, tvm_target, database_dir(str(tvm_target)),
                           max(self.trials, 1), self.target.threads, self.target.cores,
                           self.progress)
        times = [t["weight"] * t["best_us"] for t in report.task_times if t["best_us"]]
        return sum(times) if times else None

    def sparse_us(self, layer: SparseLayer, chain: _Chain) -> float:
        import tvm

        shape = _static_shape(chain.x)
        rng = np.random.default_rng(0)
        if chain.op == "dense":
            m = int(np.prod(shape[:-1]))
            w = to_bsr(chain.weight, layer.block, self.lanes)
            kernel = sparse_dense_kernel(m, w, chain.act)
            x = rng.standard_normal((m, shape[-1])).astype("float32")
            out = np.zeros((m, chain.weight.shape[0]), "float32")
        else:
            geo = conv_geometry(shape, chain.weight.shape, chain.attrs["strides"],
                                chain.attrs["padding"])
            w = to_conv_bsr(chain.weight, layer.block, geo)
            kernel = sparse_conv_kernel(geo, w, chain.act)
            x = rng.standard_normal((geo.n, geo.c, geo.hp, geo.wp)).astype("float32")
            out = np.zeros(geo.out_shape, "float32")
        lib = tvm.compile(tvm.IRModule({"main": kernel.with_attr("global_symbol", "main")}),
                          target=self.target.tvm_target())
        dev = tvm.cpu()
        bias = np.zeros(chain.weight.shape[0], "float32")
        args = [tvm.runtime.tensor(a, dev) for a in (x, w.data, w.indices, w.indptr, bias, out)]
        with _pinned(self.target.cores):
            timer = lib.mod.time_evaluator("main", dev, number=10, repeat=5, min_repeat_ms=50)
            timer(*args)  # warm-up
            return timer(*args).median * 1e6

    def __call__(self, layer: SparseLayer, chain: _Chain) -> bool:
        if self.target.rpc is not None or self.target.cross_compiler:
            layer.reason = "remote target: chosen by sparsity threshold, not timed"
            return True
        layer.dense_us = self.dense_us(chain)
        layer.sparse_us = self.sparse_us(layer, chain)
        if layer.dense_us is None:
            layer.reason = "no tuned dense time (trials 0): kept sparse by threshold"
            return True
        return layer.sparse_us < layer.dense_us
