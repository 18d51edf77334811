"""Integer add of two quantized tensors (the residual add): reference.py's rule,
clamp(zp + round_half_even(((a - za) * Ma + (b - zb) * Mb) / 2**n), lo, hi), one vector of
elements at a time, every constant baked into the code.

Why our own: as Relax glue the int64 expression got one MetaSchedule trial (see
results/int8/README.md) and took 0.15 ms on a 56x56x64 tensor, 3% of ResNet-18's int8 run
for each of its two largest adds; here the shifts are immediates and the loop is one plain
vector loop over the flattened tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.kernels.int8_conv import OPAQUE, round_shift
from edgebench.kernels.layer import Layer, int8_reason

LANES = 16  # elements per vector step (int64 math: LLVM splits it into zmm halves)


@dataclass(frozen=True)
class AddQuant:
    """The add's integers: input zero points, their multipliers on one shift, the output's
    zero point and clamp (a fused ReLU raises lo)."""

    za: int
    zb: int
    ma: int
    mb: int
    shift: int
    zp: int
    lo: int
    hi: int


def add_kernel(shape: tuple[int, ...], a_dtype: str, b_dtype: str, out: str, q: AddQuant):
    """TIR PrimFunc (a[shape] a_dtype, b[shape] b_dtype, y[shape] out): the requantized sum,
    computed over flat views of the three buffers (no reshape calls around it in the VM)."""
    from tvm.script import tirx as T

    shape = tuple(int(d) for d in shape)
    size = int(np.prod(shape))
    body_steps, tail = divmod(size, LANES)

    def value(a, b, i):
        p = ((T.Cast("int64", a[i]) - T.int64(q.za)) * T.int64(q.ma)
             + (T.Cast("int64", b[i]) - T.int64(q.zb)) * T.int64(q.mb))
        t = round_shift(T, p, T.int64(q.shift)) + T.int64(q.zp)
        return T.Cast(out, T.max(T.min(t, T.int64(q.hi)), T.int64(q.lo)))

    @T.prim_func
    def add_q(a_nd: T.Buffer(shape, a_dtype), b_nd: T.Buffer(shape, b_dtype),
              y_nd: T.Buffer(shape, out)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": OPAQUE})
        a = T.decl_buffer((size,), a_dtype, data=a_nd.data)
        b = T.decl_buffer((size,), b_dtype, data=b_nd.data)
        y = T.decl_buffer((size,), out, data=y_nd.data)
        for s in range(body_steps):
            for lane in T.vectorized(LANES):
                y[s * LANES + lane] = value(a, b, s * LANES + lane)
        for t in range(tail):
            y[body_steps * LANES + t] = value(a, b, body_steps * LANES + t)

    return add_q


# ---- the registry's interface (kernels/registry.py): layer.shape/dtype are operand a's ----
NAME = "int8_add"
INSTRUCTION = None  # plain vector integer code: no instruction to check
KERNEL = "add"


@dataclass(frozen=True)
class Int8Add:
    """An add's layer.quant: its integers, operand b's shape and dtype, the output dtype."""

    q: AddQuant
    b_shape: tuple[int, ...]
    b_dtype: str
    out: str


def fits(layer: Layer, target) -> str | None:
    reason = int8_reason(layer, ("add",))
    if reason:
        return reason
    return "the operands broadcast" if layer.quant.b_shape != layer.shape else None


def emit(layer: Layer, target):
    a = layer.quant
    return add_kernel(layer.shape, layer.dtype, a.b_dtype, a.out, a.q)


def pack(layer: Layer, target, *_) -> list:
    return []
