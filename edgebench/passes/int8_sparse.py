"""Int8 + sparse: pruned Linear layers of the int8 lowering on the int8 BSR kernel.

For a `prune=...+quant=...+sparse` variant the int8 lowering (passes/int8.py) asks `Int8Sparse`
about each Linear before putting it on the dense dot-product kernel. A layer whose int8
weight is at least MIN_SPARSITY zero and pruned in 16x1, 8x1 or 4x1 blocks (read from the
zero pattern, as the FP32 pass does) goes on kernels/int8_sparse.py instead (vpdpbusd on
x86; 4x1 sdot tiles on aarch64 +dotprod, the bias then gaining sdot's 128 * sum(w)), with
the same bias (zero points folded) and the same fused epilogue: bit exact either way.
`+sparse=all` converts every such layer; `+sparse` keeps it sparse only if `select` (the
measured choice, compile/sparse_choice.py) says the sparse kernel is faster than the dense
int8 kernel on the target. Unstructured zeros (no blocks) stay on the dense kernel with the
reason in the row: the 4 columns of a tile would each need their own row of 16 weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from torch import fx
from tvm import relax

from edgebench.kernels.int8_conv import FIXED
from edgebench.kernels.int8_sparse import (
    INSTRUCTION,
    ROWS,
    bias_shift,
    int8_bsr_kernel,
    to_int8_bsr,
)
from edgebench.passes.int8_parts import (
    Epilogue,
    LoweredLayer,
    bias_fits,
    const,
    epilogue_args,
    linear_on_dot,
)
from edgebench.passes.sparse_weights import MIN_SPARSITY, SparseLayer, pick_block, weight_sparsity
from edgebench.quantize.scheme import LayerQuant

BLOCKS = tuple((r, 1) for r in ROWS)


@dataclass
class KernelCase:
    """One way to run a layer, for timing it alone: a PrimFunc and its arguments (x first,
    filled with random uint8 by the timer) and its output."""

    func: object
    args: list[np.ndarray]
    out_shape: tuple[int, ...]
    out_dtype: str


Select = Callable[[SparseLayer, KernelCase, KernelCase], bool]  # (layer, dense, sparse)


@dataclass
class Int8Sparse:
    """The `+sparse` decision for an int8 lowering, and its record (`layers`: the
    sparse_layers column). select=None converts every candidate (`+sparse=all`)."""

    select: Select | None = None
    min_sparsity: float = MIN_SPARSITY
    layers: list[SparseLayer] = field(default_factory=list)

    def linear(self, importer, node: fx.Node, la: LayerQuant, w: np.ndarray,
               bias_eff: np.ndarray) -> relax.Expr | None:
        """A static layer (requantize or float epilogue) on the int8 BSR kernel, emitted
        through `importer`; or None: it stays on the dense path, and its record says why."""
        refuse = ""
        if not (linear_on_dot(la, node) and bias_fits(bias_eff)):
            refuse = "not on the int8 dot-product kernels (int8 input or bias overflow)"
        x = None
        if not refuse and importer.isa is not None:
            (qx,) = la.inputs
            assert qx is not None
            x = importer.as_int(node.args[0], qx, la.name)
        ep = epilogue_args(la, w.shape[0], f64=importer.f64)
        done = self._run(importer, x, w, bias_eff, ep, refuse)
        if done is None:
            return None
        y, kernel, symbol = done
        kind = "float-out" if la.output is None else "int8"
        importer.lowered.append(LoweredLayer(
            node.name, la.op, kind, kernel, symbol,
            instruction=INSTRUCTION[importer.isa.name]))
        return y

    def accumulators(self, importer, q: relax.Expr, w: np.ndarray
                     ) -> tuple[relax.Expr, str, str] | None:
        """A dynamic layer's raw int32 sum(q * w) on the int8 BSR kernel: (accumulators,
        kernel name, function name), or None (dense path, record says why)."""
        return self._run(importer, q, w, np.zeros(w.shape[0], np.int64),
                         Epilogue("int32", 0, 0, 0, FIXED, []))

    def _run(self, importer, x: relax.Expr | None, w: np.ndarray, bias: np.ndarray,
             ep: Epilogue, refuse: str = "") -> tuple[relax.Expr, str, str] | None:
        """Record the candidate; if it goes sparse, emit the kernel call on x (uint8 [..., K])
        and return (y [..., N], kernel name, function name)."""
        n, k = w.shape
        isa = importer.isa.name if importer.isa else "vnni"
        layer = SparseLayer(len(self.layers), "linear", (n, k), weight_sparsity(w),
                            pick_block(w, BLOCKS))
        self.layers.append(layer)
        bias = bias + bias_shift(w, isa)
        if importer.isa is None:
            layer.reason = ("no int8 dot-product kernels on this target (x86 AVX512-VNNI or "
                            "aarch64 +dotprod)")
        elif refuse:
            layer.reason = refuse
        elif layer.sparsity < self.min_sparsity:
            layer.reason = f"sparsity below {self.min_sparsity}"
        elif layer.block == (1, 1):
            layer.reason = ("no 16x1/8x1/4x1 blocks (unstructured zeros or rows not a "
                            "multiple of 4): no int8 sparse kernel for it")
        elif not bias_fits(bias):
            layer.reason = "bias + 128 * sum(w) overflows int32 (sdot's x - 128)"
        if layer.reason or x is None:
            return None
        if isa == "sdot":  # one NEON register: 4 rows (a 16x1 or 8x1 pattern is also 4x1)
            layer.block = (4, 1)
        lead = [int(d) for d in x.ty.shape][:-1]
        m = int(np.prod(lead))
        bsr = to_int8_bsr(w, layer.block[0])
        out = ep.out
        func = int8_bsr_kernel(m, bsr, out, ep.zp, ep.lo, ep.hi, isa, ep.requant)
        tail = [bsr.data, bsr.indices, bsr.indptr, bias.astype(np.int32), *ep.arrays]
        if self.select is not None and isa == "sdot":
            layer.reason = "aarch64 (a board): chosen by sparsity threshold, not timed"
        elif self.select is not None:
            sparse = KernelCase(func, [np.zeros((m, k), np.uint8), *tail], (m, n), out)
            if not self.select(layer, _dense_case(m, w, bias, ep), sparse):
                layer.reason = layer.reason or "dense int8 measured faster"
                return None
        layer.converted = True
        name = f"int8_bsr_{isa}_{layer.block[0]}x1_{layer.index}"
        gv = importer.block_builder.add_func(func.with_attr("global_symbol", name), name)
        if len(lead) != 1:
            x = importer.emit(relax.op.reshape(x, (m, k)))
        args = [x, *(const(a, str(a.dtype)) for a in tail)]
        y = importer.emit(relax.call_tir(gv, args, relax.TensorType((m, n), out)))
        if len(lead) != 1:
            y = importer.emit(relax.op.reshape(y, (*lead, n)))
        return y, f"{isa}-bsr{layer.block[0]}x1", gv.name_hint


def _dense_case(m: int, w: np.ndarray, bias_eff: np.ndarray, ep: Epilogue) -> KernelCase:
    """The same layer on the dense vpdpbusd kernel, as passes/int8.py builds it (a 1 x m
    image, channels padded to 4 in and 16 out)."""
    from edgebench.kernels.int8_conv import X86_VNNI, ConvShape, conv_dot_kernel, pack_weights

    n, k = w.shape
    kp, cp = -(-n // 16) * 16, -(-k // 4) * 4
    shape = ConvShape(1, 1, m, cp, kp, 1, 1, (1, 1))
    bias = np.zeros(kp, np.int32)
    bias[:n] = bias_eff
    padded = []
    for a in ep.arrays:
        p = np.ones(kp, a.dtype)
        p[:n] = a
        padded.append(p)
    return KernelCase(conv_dot_kernel(X86_VNNI, shape, ep.out, ep.zp, ep.lo, ep.hi,
                                      requant=ep.requant),
                      [np.zeros((1, 1, m, cp), np.uint8),
                       pack_weights(w.reshape(n, k, 1, 1), cp, kp), bias, *padded],
                      (1, 1, m, kp), ep.out)
