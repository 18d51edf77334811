"""The measured FP32 FMA peak of one core: a probe kernel of independent register FMAs.

Why measured, not computed: the clock under AVX-512 load and how many 512-bit FMAs a core
retires per cycle differ by CPU (a Zen 4 splits each zmm FMA over two 256-bit units), and on
a shared machine the time a core really gives us is what a kernel's efficiency should be
judged against. The probe keeps ACCUMULATORS vector chains (more than FMA latency x ports on
any x86 core) busy with register operands only, so nothing but FMA throughput limits it.
"""

from __future__ import annotations

from edgebench.kernels.fp32_conv import ATTRS, fma

ACCUMULATORS = 24
STEPS = 4096  # FMA rounds per call: ~100k FMAs, long enough to time, short enough to repeat


def fma_probe_kernel(lanes: int = 16, steps: int = STEPS):
    """TIR PrimFunc (a[lanes] f32, y[lanes] f32): ACCUMULATORS chains of `steps` FMAs each
    (acc = acc * a + a), summed into y so nothing is dead code. MACs per call:
    probe_macs(lanes, steps)."""
    from tvm.script import tirx as T

    A, L = ACCUMULATORS, lanes
    vec = f"float32x{L}"

    @T.prim_func
    def fma_probe(a: T.Buffer((L,), "float32"), y: T.Buffer((L,), "float32")):
        T.func_attr(ATTRS)
        acc = T.alloc_buffer((A * L,), "float32", scope="global")
        for i in T.unroll(A):
            acc[T.ramp(i * L, 1, L)] = a.vload([0], vec) + T.broadcast(T.Cast("float32", i), L)
        for _ in range(steps):
            for i in T.unroll(A):
                acc[T.ramp(i * L, 1, L)] = fma(T, acc.vload([i * L], vec), a.vload([0], vec),
                                               a.vload([0], vec), L)
        for lane in T.vectorized(L):
            y[lane] = T.float32(0)
        for i in range(A):
            for lane in T.vectorized(L):
                y[lane] = y[lane] + acc[i * L + lane]

    return fma_probe


def probe_macs(lanes: int = 16, steps: int = STEPS) -> int:
    return ACCUMULATORS * lanes * steps


def measure_peak(target, lanes: int = 16, repeat: int = 7) -> float:
    """FP32 GMAC/s of one core on `target` (a tvm.target.Target for this host): the best of
    `repeat` timings of the probe (run it pinned, like every timing here)."""
    import numpy as np
    import tvm

    lib = tvm.compile(fma_probe_kernel(lanes), target=target)
    a = tvm.runtime.tensor(np.full(lanes, 0.5, np.float32))
    y = tvm.runtime.tensor(np.zeros(lanes, np.float32))
    timer = lib.mod.time_evaluator("fma_probe", tvm.cpu(), number=50, repeat=repeat)
    return probe_macs(lanes) / min(timer(a, y).results) / 1e9
