"""Per-layer sparse-or-dense choice by measurement (the break-even of issue 5).

A sparse kernel only pays above some sparsity that depends on the layer's shape, the block
shape and the machine (Relay's x86 sparse_dense lost to dense below ~30-50%). So each candidate
layer is built alone twice, dense and on our sparse kernel, and both are timed back to back on
the target's cores. The layer goes sparse only if faster. Dense is what the model's build runs:
our FP32 kernels (passes/fp32.py) where the target has them, so neither side needs tuning;
else MetaSchedule from the database (tuned first if the database lacks it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from edgebench.compile.tuning import Progress, apply_database, tune
from edgebench.kernels.layer import vector_lanes
from edgebench.passes.sparse_weights import LayerChain, SparseLayer, _static_shape
from edgebench.targets import Target


@contextlib.contextmanager
def _pinned(cores: tuple[int, ...]) -> Iterator[None]:
    old = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, set(cores) & os.sched_getaffinity(0) or old)
        yield
    finally:
        os.sched_setaffinity(0, old)


def _layer_module(chain: LayerChain):
    """The dense layer alone as a Relax module: the same fused task as in the whole model."""
    from tvm import relax

    x = relax.Var("x", relax.TensorType(_static_shape(chain.x), "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            if chain.op == "dense":
                y = bb.emit(relax.op.matmul(x, relax.const(np.ascontiguousarray(chain.weight.T)),
                                            out_dtype="float32"))
            else:
                y = bb.emit(relax.op.nn.conv2d(x, relax.const(chain.weight),
                                               strides=chain.attrs["strides"],
                                               padding=chain.attrs["padding"],
                                               out_dtype="float32"))
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
    """select() for SparsifyWeights: sparse where measured faster than the tuned dense layer.

    Both sides are the layer alone, built the way the model is (tuning database applied, VM
    call), and timed back to back on the target's cores, so the ratio is taken in one run.
    """

    def __init__(self, target: Target, trials: int, lanes: int = 16,
                 progress: Progress | None = None) -> None:
        self.target = target
        self.trials = trials
        self.lanes = lanes
        self.progress = progress

    @property
    def ours(self) -> bool:
        """Does the target run dense FP32 layers on our kernels (no tuning)?"""
        return bool(vector_lanes(self.target))

    def _timed(self, chain: LayerChain, passes: list) -> float:
        """Microseconds per call of the layer module after `passes` (then our FP32 lowering,
        or MetaSchedule tuning where the target has no kernels of ours), built."""
        import tvm
        from tvm import relax

        from edgebench.compile import _prepare, target_database_dir
        from edgebench.passes.fp32 import Fp32Kernels

        tvm_target = self.target.tvm_target()
        if self.ours:
            passes = [*passes, Fp32Kernels(self.target)]
        fused = _prepare(_layer_module(chain), tvm_target, passes, self.target.conv_layout)
        if self.trials > 0 and not self.ours:
            work_dir = target_database_dir(self.target)
            tune(fused, tvm_target, work_dir, self.trials, self.target.threads,
                 self.target.cores, self.progress)
            fused, _missing = apply_database(fused, tvm_target, work_dir, self.progress)
        vm = relax.VirtualMachine(tvm.compile(fused, target=tvm_target), tvm.cpu())
        x = np.random.default_rng(0).standard_normal(_static_shape(chain.x)).astype("float32")
        with _pinned(self.target.cores):
            timer = vm.time_evaluator("main", tvm.cpu(), number=10, repeat=5, min_repeat_ms=50)
            arg = tvm.runtime.tensor(x)
            timer(arg)  # warm-up
            return timer(arg).median * 1e6

    def nhwc(self, layer: SparseLayer, conv, sparse_family, dense_family, weight: np.ndarray,
             bias: np.ndarray) -> bool:
        """select() for the FP32 lowering's sparse conv (passes/fp32.py): both families'
        kernels of the layer, with its final weight and epilogue, on the same padded NHWC
        tensors (so no layout copy favours either), timed as bare PrimFuncs."""
        if self.target.rpc is not None or self.target.cross_compiler_name:
            layer.reason = "remote target: chosen by sparsity threshold, not timed"
            return True
        rng = np.random.default_rng(0)
        cases = {}
        for name, family in (("dense", dense_family), ("sparse", sparse_family)):
            s = family.shape(conv, self.target)
            (ph, pw), k = conv.epilogue.pad, s.k
            x = rng.standard_normal((s.n, s.h, s.w, s.cx or s.c)).astype("float32")
            res = ([rng.standard_normal((s.n, s.oh, s.ow, k)).astype("float32")]
                   if conv.epilogue.residual else [])
            cases[name] = (family.emit(conv, self.target),
                           [x, *family.pack(conv, self.target, weight, bias), *res,
                            np.zeros((s.n, s.oh + 2 * ph, s.ow + 2 * pw, k), "float32")])
        times = time_kernels(self.target, cases)
        layer.dense_us, layer.sparse_us = times["dense"], times["sparse"]
        return layer.sparse_us < layer.dense_us

    def dense_us(self, chain: LayerChain) -> float:
        return self._timed(chain, [])

    def sparse_us(self, layer: SparseLayer, chain: LayerChain) -> float:
        from edgebench.passes.sparse_weights import SparsifyWeights

        return self._timed(chain, [SparsifyWeights(0.0, block=layer.block, lanes=self.lanes)])

    def __call__(self, layer: SparseLayer, chain: LayerChain) -> bool:
        if self.target.rpc is not None or self.target.cross_compiler_name:
            layer.reason = "remote target: chosen by sparsity threshold, not timed"
            return True
        layer.dense_us = self.dense_us(chain)
        layer.sparse_us = self.sparse_us(layer, chain)
        if self.trials == 0 and not self.ours:
            layer.reason = "untuned dense (trials 0)"
        return layer.sparse_us < layer.dense_us


class Int8MeasuredChoice:
    """select() for passes/int8_sparse.Int8Sparse: the int8 BSR kernel where it is measured
    faster than the dense vpdpbusd kernel of the same layer.

    Both are hand-scheduled kernels (nothing to tune), so each is timed as the bare PrimFunc,
    built into one library and timed in interleaved rounds on the target's cores."""

    rounds = 3

    def __init__(self, target: Target) -> None:
        self.target = target

    def __call__(self, layer: SparseLayer, dense, sparse) -> bool:
        if self.target.rpc is not None or self.target.cross_compiler_name:
            layer.reason = "remote target: chosen by sparsity threshold, not timed"
            return True
        rng = np.random.default_rng(0)
        cases = {name: (case.func, [rng.integers(0, 256, case.args[0].shape, dtype=np.uint8),
                                    *case.args[1:], np.zeros(case.out_shape, case.out_dtype)])
                 for name, case in (("dense", dense), ("sparse", sparse))}
        times = time_kernels(self.target, cases, self.rounds)
        layer.dense_us, layer.sparse_us = times["dense"], times["sparse"]
        return layer.sparse_us < layer.dense_us


def time_kernels(target: Target, cases: dict[str, tuple[object, list[np.ndarray]]],
                 rounds: int = 3) -> dict[str, float]:
    """Median microseconds per call of each bare PrimFunc on its arguments (outputs
    included): built into one library, timed in interleaved rounds on the target's cores, so
    their ratio is taken under the same load."""
    import tvm

    lib = tvm.compile(tvm.IRModule({k: f.with_attr("global_symbol", k)
                                    for k, (f, _) in cases.items()}),
                      target=target.tvm_target()).mod
    dev = tvm.cpu()
    args = {k: [tvm.runtime.tensor(a, dev) for a in a_] for k, (_, a_) in cases.items()}
    timers = {k: lib.time_evaluator(k, dev, number=20, repeat=5, min_repeat_ms=20)
              for k in cases}
    times: dict[str, list[float]] = {k: [] for k in cases}
    with _pinned(target.cores):
        for k in cases:  # warm-up
            timers[k](*args[k])
        for _ in range(rounds):
            for k in cases:
                times[k].append(timers[k](*args[k]).median * 1e6)
    return {k: float(np.median(t)) for k, t in times.items()}
