"""Relax pass: run layers with sparse constant weights on our sparse kernels.

Contract: every `matmul(x, W)` (Linear) and NCHW `conv2d(x, W)` (groups 1, dilation 1) whose
weight is a compile-time constant, together with its single-use bias `add` and ReLU/ReLU6 if
present, becomes one `call_tir` to a BSR kernel from `edgebench.kernels`, with the weight
converted to BSR ahead of time. A layer is converted when `select(layer)` says so (by default:
weight sparsity >= `min_sparsity`); everything else is left untouched for the dense path.
The layers seen and converted are recorded in `self.layers` for the result rows.

Relax has no sparse op (Relay's `sparse_dense` and its BSR conversion went with Relay), so this
pass and its kernels are edgebench's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import tvm
from tvm import relax

from edgebench.kernels.sparse_conv import conv_geometry, sparse_conv_kernel, to_conv_bsr
from edgebench.kernels.sparse_dense import block_fits, sparse_dense_kernel, to_bsr

# Largest first: the first block shape that stores no more than `block_waste` extra zeros wins.
DENSE_BLOCKS = ((16, 1), (8, 1), (4, 4), (4, 1), (1, 1))
CONV_BLOCKS = ((4, 1), (1, 1))
MIN_SPARSITY = 0.3  # below this no layer is even tried sparse (Relay's break-even: 30-50%)
TOKENS_AS_PIXELS = 16  # from this many rows of x, a Linear runs as a 1x1 conv over x^T


@dataclass
class SparseLayer:
    """One candidate layer: what it is, how sparse, and what the pass did with it."""

    index: int
    op: str  # "dense" | "conv2d"
    shape: tuple[int, ...]  # weight as PyTorch stores it: [out, in] or [out, in, kh, kw]
    sparsity: float
    block: tuple[int, int] = (1, 1)
    converted: bool = False
    reason: str = ""
    sparse_us: float | None = None
    dense_us: float | None = None

    @property
    def label(self) -> str:
        return f"{self.op}#{self.index}[{'x'.join(map(str, self.shape))}]"

    def fact(self) -> str:
        """What the pass made of it (its sparse_layers entry after the label)."""
        t = (f" sparse {self.sparse_us:.1f}us vs dense {self.dense_us:.1f}us"
             if self.sparse_us is not None and self.dense_us is not None else "")
        kind = f"sparse {self.block[0]}x{self.block[1]}" if self.converted else "dense"
        return f"s={self.sparsity:.3f} {kind}{t}" + (f" ({self.reason})" if self.reason else "")

    def describe(self) -> str:
        return f"{self.label} {self.fact()}"


@dataclass
class LayerChain:
    """One Linear/conv layer as the sparse choice sees it: input, PyTorch-layout weight, bias
    and activation (what the rewrite replaces and MeasuredChoice times both ways)."""

    x: relax.Expr
    weight: np.ndarray  # PyTorch layout, see SparseLayer.shape
    op: str
    bias: np.ndarray | None = None
    act: str = "none"
    attrs: dict = field(default_factory=dict)
    bias_first: bool = False  # add(bias, y) as torch.export wrote it (keeps the dense task's hash)
    bias_shape: tuple[int, ...] = ()


def pick_block(w2d: np.ndarray, blocks, block_waste: float = 0.05) -> tuple[int, int]:
    """The largest block shape whose BSR form stores at most (1 + block_waste) x the non-zeros:
    a weight pruned in 16x1 blocks gets the 16x1 kernel, an unstructured one 1x1."""
    nnz = max(int(np.count_nonzero(w2d)), 1)
    for r, c in blocks:
        if not block_fits(w2d.shape, (r, c)):
            continue
        n, k = w2d.shape
        nz_blocks = np.count_nonzero(np.abs(w2d).reshape(n // r, r, k // c, c).sum(axis=(1, 3)))
        if nz_blocks * r * c <= nnz * (1 + block_waste):
            return (r, c)
    return (1, 1)


def _const(expr) -> np.ndarray | None:
    return expr.value.numpy() if isinstance(expr, tvm.ir.expr.Constant) else None


def _static_shape(expr) -> tuple[int, ...] | None:
    sinfo = expr.ty
    if not isinstance(sinfo, relax.TensorType) or sinfo.shape is None:
        return None
    try:
        return tuple(int(d) for d in sinfo.shape)
    except TypeError:
        return None


def find_chains(func: relax.Function) -> dict[relax.Var, LayerChain]:
    """Layer chains (head op + single-use bias add + activation) keyed by their last var."""
    uses: Counter = Counter()
    bindings = [b for block in func.body.blocks for b in block.bindings]
    for b in bindings:
        uses.update(relax.analysis.free_vars(b.value))
    uses.update(relax.analysis.free_vars(func.body.body))
    chains: dict[relax.Var, LayerChain] = {}
    for b in bindings:
        v = b.value
        if not isinstance(v, relax.Call) or not isinstance(v.op, tvm.ir.Op):
            continue
        name = v.op.name
        if name == "relax.matmul" and len(v.args) == 2:
            w = _const(v.args[1])
            xs = _static_shape(v.args[0])
            if w is not None and w.ndim == 2 and w.dtype == np.float32 and xs is not None \
                    and str(v.ty.dtype) == "float32":
                chains[b.var] = LayerChain(v.args[0], np.ascontiguousarray(w.T), "dense")
        elif name == "relax.nn.conv2d":
            w = _const(v.args[1])
            a = v.attrs
            if w is not None and w.dtype == np.float32 and int(a.groups) == 1 \
                    and a.data_layout == "NCHW" and a.kernel_layout == "OIHW" \
                    and all(int(d) == 1 for d in a.dilation) and _static_shape(v.args[0]) \
                    and str(v.ty.dtype) == "float32":
                chains[b.var] = LayerChain(v.args[0], w, "conv2d", attrs={
                    "strides": tuple(int(s) for s in a.strides),
                    "padding": tuple(int(p) for p in a.padding)})
        elif name in _AFFINE and len(v.args) == 2:
            for first, (src, other) in enumerate(((v.args[0], v.args[1]),
                                                   (v.args[1], v.args[0]))):
                c = chains.get(src) if isinstance(src, relax.Var) else None
                const = _const(other)
                if c is None or uses[src] != 1 or c.act != "none" or const is None or \
                        (first and name in ("relax.subtract", "relax.divide")):
                    continue
                folded = _fold_affine(c, name, const, bool(first))
                if folded is not None:
                    del chains[src]
                    chains[b.var] = folded
                    break
        elif name in ("relax.nn.relu", "relax.clip"):
            src = v.args[0]
            c = chains.get(src) if isinstance(src, relax.Var) else None
            if c is None or uses[src] != 1 or c.act != "none":
                continue
            act = "relu"
            if name == "relax.clip":
                lo, hi = (float(a.value) for a in v.args[1:3])
                if (lo, hi) != (0.0, 6.0):
                    continue
                act = "relu6"
            del chains[src]
            chains[b.var] = replace(c, act=act)
    return chains


_AFFINE = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide")


def _fold_affine(c: LayerChain, op: str, const: np.ndarray, const_first: bool) -> LayerChain | None:
    """The chain with `y op const` (`const op y` if const_first) folded into its weight and
    bias, if const is one value per output channel (or one value): the bias add, and an
    unfolded BatchNorm's affine ops (they would otherwise stay TVM ops, i.e. tuning tasks,
    after the sparse kernel)."""
    n = c.weight.shape[0]
    want = (n,) if c.op == "dense" else (1, n, 1, 1)
    if const.dtype != np.float32 or (const.size != 1 and (
            const.size != n or const.shape[-len(want):] != want[-const.ndim:])):
        return None
    vals = np.broadcast_to(const.reshape(-1), (n,)).astype(np.float32)
    if op == "relax.add" and c.bias is None and const.size == n:
        # a plain bias add, kept as torch.export wrote it (the dense task's hash)
        return replace(c, bias=vals, bias_first=const_first,
                       bias_shape=const.shape)
    bias = c.bias if c.bias is not None else np.zeros(n, np.float32)
    shape = (-1,) + (1,) * (c.weight.ndim - 1)
    if op in ("relax.multiply", "relax.divide"):
        scale = vals if op == "relax.multiply" else 1.0 / vals
        weight = (c.weight * scale.reshape(shape)).astype(np.float32)
        return replace(c, weight=weight, bias=(bias * scale).astype(np.float32),
                       bias_shape=want, bias_first=False)
    bias = bias + vals if op == "relax.add" else bias - vals
    return replace(c, bias=bias.astype(np.float32), bias_shape=want, bias_first=False)


def weight_sparsity(w: np.ndarray) -> float:
    return 1.0 - np.count_nonzero(w) / max(w.size, 1)


@tvm.transform.module_pass(opt_level=0, name="SparsifyWeights")
class SparsifyWeights:
    """Rewrite sparse constant-weight layers into calls to the BSR kernels (see module doc).

    select(layer) -> bool decides per layer (the measured break-even choice plugs in here);
    block=None picks the block shape from the weight's zero pattern. ops: the layer kinds it
    takes ("dense", "conv2d"); where our FP32 lowering runs, convs are left to its NHWC sparse
    conv (kernels/fp32_sparse_conv.py) and only Linear layers come here.
    """

    def __init__(self, min_sparsity: float = MIN_SPARSITY,
                 select: Callable[[SparseLayer, LayerChain], bool] | None = None,
                 block: tuple[int, int] | None = None, lanes: int = 16,
                 ops: tuple[str, ...] = ("dense", "conv2d")) -> None:
        self.ops = ops
        self.min_sparsity = min_sparsity
        self.select = select
        self.block = block
        self.lanes = lanes
        self.layers: list[SparseLayer] = []

    def candidates(self, mod: tvm.IRModule) -> list[tuple[SparseLayer, LayerChain, relax.Var]]:
        """Every layer the pass could convert, in program order, with its sparsity and the
        var its chain ends in (the binding the rewrite replaces)."""
        out = []
        for _gv, func in mod.functions_items():
            if not isinstance(func, relax.Function):
                continue
            for end, c in find_chains(func).items():
                if c.op not in self.ops:
                    continue
                blocks = DENSE_BLOCKS if c.op == "dense" else CONV_BLOCKS
                w2d = c.weight.reshape(c.weight.shape[0], -1)
                block = self.block or pick_block(w2d, blocks)
                out.append((SparseLayer(len(out), c.op, tuple(c.weight.shape),
                                        weight_sparsity(c.weight), block), c, end))
        return out

    def transform_module(self, mod: tvm.IRModule, ctx) -> tvm.IRModule:
        chosen = {}
        self.layers = []
        # constants first: a decomposed BatchNorm divides by sqrt(var + eps), which must be
        # one constant to fold into the layer
        mod = relax.transform.FoldConstant()(mod)
        for layer, chain, end in self.candidates(mod):
            if layer.sparsity < self.min_sparsity:
                layer.reason = f"sparsity below {self.min_sparsity}"
            elif not block_fits(chain.weight.reshape(chain.weight.shape[0], -1).shape,
                                layer.block):
                layer.reason = f"block {layer.block} does not tile the weight"
            elif self.select is None or self.select(layer, chain):
                layer.converted = True
                chosen[end] = (layer, chain)
            elif not layer.reason:
                layer.reason = "dense measured faster"
            self.layers.append(layer)
        if not chosen:
            return mod
        rewriter = _Rewriter(mod, chosen, self.lanes)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
        out = rewriter.builder_.get()
        return relax.transform.DeadCodeElimination()(out)


@relax.expr_functor.mutator
class _Rewriter(relax.PyExprMutator):
    def __init__(self, mod, ends: dict, lanes: int) -> None:
        super().__init__(mod)
        self.ends = ends  # chain's last var -> (layer, chain)
        self.lanes = lanes

    def visit_var_binding_(self, binding) -> None:
        hit = self.ends.get(binding.var)
        if hit is None:
            return super().visit_var_binding_(binding)
        layer, chain = hit
        x = self.visit_expr(chain.x)
        new = self._dense(layer, chain, x) if chain.op == "dense" else self._conv(layer, chain, x)
        # The chain may end in a dataflow block's output var: keep it visible after the block.
        emit = (self.builder_.emit if isinstance(binding.var, relax.DataflowVar)
                else self.builder_.emit_output)
        self.set_var_remap(binding.var, emit(new, binding.var.name))

    def _add(self, kernel, name: str):
        return self.builder_.add_func(kernel.with_attr("global_symbol", name), name)

    def _bias(self, chain: LayerChain) -> relax.Constant:
        n = chain.weight.shape[0]
        return relax.const(chain.bias if chain.bias is not None else np.zeros(n, "float32"))

    def _dense(self, layer: SparseLayer, chain: LayerChain, x: relax.Expr) -> relax.Expr:
        shape = _static_shape(x)
        n, k = chain.weight.shape
        m = int(np.prod(shape[:-1]))
        if len(shape) != 2:
            x = self.builder_.emit(relax.op.reshape(x, (m, k)))
        if layer.block in ((1, 1), (4, 1)) and m >= TOKENS_AS_PIXELS:
            out = self._tokens_as_pixels(layer, chain, x, m)
        else:
            bsr = to_bsr(chain.weight, layer.block, self.lanes)
            gv = self._add(sparse_dense_kernel(m, bsr, chain.act), f"sparse_dense_{layer.index}")
            args = [x, relax.const(bsr.data), relax.const(bsr.indices),
                    relax.const(bsr.indptr), self._bias(chain)]
            out = relax.call_tir(gv, args, relax.TensorType((m, n), "float32"))
        if len(shape) != 2:
            out = relax.op.reshape(self.builder_.emit(out), (*shape[:-1], n))
        return out

    def _tokens_as_pixels(self, layer: SparseLayer, chain: LayerChain, x: relax.Expr, m: int):
        """Many rows of x (a transformer's tokens): run the layer as a 1x1 sparse conv over
        x^T, so the tokens are the vector lanes and no gather is needed (the 1x1 gather kernel
        measured 3-25x slower than dense at 128 tokens)."""
        n, k = chain.weight.shape
        xt = self.builder_.emit(relax.op.reshape(relax.op.permute_dims(x), (1, k, 1, m)))
        w4 = chain.weight.reshape(n, k, 1, 1)
        conv = replace(chain, x=xt, weight=w4, op="conv2d",
                       attrs={"strides": (1, 1), "padding": (0, 0, 0, 0)})
        y = self.builder_.emit(self._conv(layer, conv, xt))  # (1, n, 1, m)
        return relax.op.permute_dims(relax.op.reshape(y, (n, m)))

    def _conv(self, layer: SparseLayer, chain: LayerChain, x: relax.Expr) -> relax.Expr:
        shape = _static_shape(x)
        geo = conv_geometry(shape, chain.weight.shape, chain.attrs["strides"],
                            chain.attrs["padding"])
        if any(geo.pad):
            top, left, bottom, right = geo.pad
            x = self.builder_.emit(relax.op.nn.pad(
                x, [0, 0, 0, 0, top, bottom, left, right]))
        w = to_conv_bsr(chain.weight, layer.block, geo)
        gv = self._add(sparse_conv_kernel(geo, w, chain.act), f"sparse_conv2d_{layer.index}")
        args = [x, relax.const(w.data), relax.const(w.indices), relax.const(w.indptr),
                self._bias(chain)]
        out = relax.call_tir(gv, args, relax.TensorType(geo.out_shape, "float32"))
        if geo.ow_padded != geo.ow:  # the kernel computes whole vectors; drop the extra columns
            out = relax.op.strided_slice(self.builder_.emit(out), axes=[3], begin=[0],
                                         end=[geo.ow])
        return out
