"""Lower a QuantDescription to integer Relax: int8 x int8 -> int32 compute, not fake-quant.

Relax has no QNN dialect and the Relax var names do not carry the torch.export node names the
description is keyed by, so the lowering runs while importing: TVM's public
`from_exported_program` walks the BN-folded FP32 graph (the one the description names, exported
at batch 1, no decomposition) with this module's converter for every op (`custom_convert_map`),
which emits the nodes the description runs in integer arithmetic itself and hands every other
node (the ops the description keeps in FP32) to TVM's own converter on dequantized inputs, so
they stay FP32. Which of our kernels runs an integer layer is the registry's answer
(kernels/registry.py: an int8 `Layer` per conv/linear, pool, add and input quantize); this
module only imports and wires.

The arithmetic is reference.py's, op for op, so the compiled model matches the integer oracle
bit for bit:
  quantize    q = clamp(round_half_even(x * float32(1 / s)) + z, qmin, qmax)   (float32)
  conv/linear acc = sum(q_x * w) + (bias_q - z_x * sum(w))  in int32 (u8 x s8: zero points
              folded into the bias ahead of time; padding uses q = z_x, i.e. real zero)
  requantize  y = clamp(z_y + ((p + 2**(n-1) - 1 + ((p >> n) & 1)) >> n), lo, hi),
              p = int64(acc) * M0 (floor shift plus the odd bit = round half to even)
  add         the same shift on (q_a - z_a) * M0_a + (q_b - z_b) * M0_b
Tensors stay uint8/int8 between integer ops; they are dequantized only into FP32 ops and at
the outputs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import torch
import tvm
from torch import fx
from tvm import relax
from tvm.relax.frontend.torch import from_exported_program

from edgebench.compile.asm import functions_using
from edgebench.kernels import fp32_rowwise as rowwise
from edgebench.kernels import int8_quantize, registry
from edgebench.kernels.int8_add import AddQuant, Int8Add
from edgebench.kernels.int8_conv import QUANTIZE, ConvShape, conv_dot_kernel, dot_isa
from edgebench.kernels.int8_pool import PoolShape
from edgebench.kernels.int8_quantize import InputQuant
from edgebench.kernels.layer import Epilogue, Int8Out, Layer, vector_lanes
from edgebench.passes.int8_parts import (
    LoweredLayer,
    bias_fits,
    bn_affine,
    const,
    epilogue_args,
    linear_on_dot,
)
from edgebench.passes.int8_sparse import Int8Sparse
from edgebench.quantize.arith import INT32_MAX, INT32_MIN, MIN_SCALE, inv_scale
from edgebench.quantize.scheme import ActQParams, LayerQuant, QuantDescription
from edgebench.report.row import Int8Layers

__all__ = ["Int8LoweringError", "LoweredLayer", "Lowering", "bn_affine", "epilogue_args",
           "export_float", "fast_gelu", "functions_using", "glue_trials", "lower_int8"]


class Int8LoweringError(RuntimeError):
    """The description asks for an integer op this lowering cannot express."""


NHWC_FROM_NCHW = (0, 2, 3, 1)
NCHW_FROM_NHWC = (0, 3, 1, 2)
aten = torch.ops.aten


@dataclass(frozen=True)
class QuantizeChain:
    """The FP32 ops after a float-out conv that its kernel runs in its QUANTIZE epilogue
    (kernels/int8_conv.py), CREPE's block: ReLU -> [BatchNorm] -> [(P x 1) max pool] ->
    [pad] -> [permute(0, 2, 1, 3) -> flatten(1) of a width-1 image] -> an int8 conv/linear
    whose input quantize ends the chain. `last` is the node whose quantized value (qparams
    `qp`, NHWC unless `flat`) the kernel writes; `affine` the BatchNorm's (scale, shift)."""

    nodes: tuple[fx.Node, ...]
    qp: ActQParams
    ep: Epilogue
    affine: tuple[np.ndarray, np.ndarray] | None
    flat: bool

    @property
    def last(self) -> fx.Node:
        return self.nodes[-1]

    def out(self, la: LayerQuant) -> Int8Out:
        """What the kernel is specialized on: rule 1 into the consumer's qparams."""
        qp = self.qp
        return Int8Out(qp.dtype, qp.zero_point, qp.qmin, qp.qmax, QUANTIZE,
                       float(inv_scale(qp.scale)))

    def arrays(self, la: LayerQuant, k: int, kp: int) -> list[np.ndarray]:
        """The kernel's float32 [out_scale; bn_scale; bn_shift] over kp channels (padded
        channels: scale 1, shift 0; their accumulators are 0 and they are sliced off)."""
        assert la.out_scale is not None
        parts = [la.out_scale.numpy(), *(self.affine or ())]
        out = []
        for i, values in enumerate(parts):
            a = np.full(kp, 0.0 if i == 2 else 1.0, np.float32)
            a[:k] = np.broadcast_to(np.asarray(values, np.float32).reshape(-1), (k,))
            out.append(a)
        return [np.concatenate(out)]


@dataclass
class Lowering:
    """The lowered module plus, per output, the int8 scale it was dequantized from (None:
    the output is computed in float) and what each layer became."""

    mod: object
    output_lsb: list[float | None]
    layers: list[LoweredLayer] = field(default_factory=list)

    def layer_facts(self) -> Int8Layers:
        """(node, kind[/kernel(instruction check)]) per conv/linear/add/pool: the row's
        int8_layers."""
        return Int8Layers.of((la.node, la.fact()) for la in self.layers
                             if la.kind != "int8-move")

    def summary(self) -> str:
        return self.layer_facts().text()

    def check_asm(self, asm: str) -> list[LoweredLayer]:
        """Mark each layer on our kernels by whether its function's assembly contains its
        dot-product instruction; return the layers whose code lacks it."""
        using = {i: functions_using(asm, i) for i in {la.instruction for la in self.layers}}
        missing = []
        for la in self.layers:
            if la.symbol:
                la.dot_product = la.symbol in using[la.instruction]
                if not la.dot_product:
                    missing.append(la)
        return missing


def _conv_attrs(node: fx.Node) -> dict:
    args = [*node.args, None, None, None, None][3:7]

    def pair(v, default: int) -> tuple[int, int]:
        if v is None:
            return (default, default)
        v = list(v) if isinstance(v, list | tuple) else [v]
        return (int(v[0]), int(v[-1]))

    return {"strides": pair(args[0], 1), "padding": pair(args[1], 0),
            "dilation": pair(args[2], 1), "groups": int(args[3] or 1)}


def _dtype(expr: relax.Expr) -> str:
    return str(expr.ty.dtype)


class Int8Converter:
    """The converter TVM's importer calls for every op of the graph (`convert`): the
    description's integer entries become integer code (on our kernels where the registry has
    one for the target), every other op goes to TVM's own converter on float inputs."""

    def __init__(self, description: QuantDescription, target=None,
                 sparse: Int8Sparse | None = None) -> None:
        self.target = target  # None: no kernels of ours, TVM's own int8 ops throughout
        self.isa = dot_isa(target)  # the dot product of our conv kernels (None: none here)
        self.f64 = target is not None and target.arch == "x86_64"  # float64 requantize
        self.sparse = sparse  # `+sparse`: pruned linears on the int8 BSR kernel (int8_sparse)
        # int8 tensors our kernels produce/consume stay NHWC between them; every other
        # consumer gets the torch layout (NCHW) back
        self.nhwc: set[fx.Node] = set()
        self.kernels: dict[tuple, relax.GlobalVar] = {}
        self.entries = {la.node: la for la in description.layers}
        self.qp: dict[fx.Node, ActQParams | None] = {}
        self.float_cache: dict[fx.Node, relax.Expr] = {}
        self.int_cache: dict[tuple[fx.Node, ActQParams], relax.Expr] = {}
        self.done: set[str] = set()
        self.lowered: list[LoweredLayer] = []
        self.output_lsb: list[float | None] | None = None
        self.lsb: dict[fx.Node, float] = {}
        self.ep = None  # the program (convert_map): its parameter and buffer values
        self.importer = None  # TVM's ExportedProgramImporter, known at its first call
        self.tvm_ops: dict[str, Callable] = {}  # TVM's own converters, bound to it

    # ---- what TVM's importer sees ----
    def convert_map(self, ep) -> dict[str, Callable]:
        """`custom_convert_map` for every op of the program: all go through `convert`."""
        self.ep = ep
        return {n.target.__name__: self.convert for n in ep.graph.nodes
                if n.op == "call_function"}

    def convert(self, node: fx.Node, importer) -> relax.Expr:
        """One op (TVM stores the result as env[node]); after the last one before the output,
        the outputs are made float (dequantized) and their integer scales recorded."""
        if self.importer is None:
            self.importer = importer
            self.tvm_ops = importer.create_convert_map()  # its converters, not ours
        self._call(node)
        if node.next.op == "output":
            outs = node.next.args[0]
            flat = outs if isinstance(outs, tuple | list) else (outs,)
            self.output_lsb = [q.scale if (q := self.qp.get(n)) else self.lsb.get(n)
                               for n in flat]
            for n in flat:
                self.env[n] = self.as_float(n)
        return self.env[node]

    @property
    def env(self) -> dict:
        return self.importer.env

    @property
    def block_builder(self) -> relax.BlockBuilder:
        return self.importer.block_builder

    def choose(self, layer: Layer) -> ModuleType | None:
        """The registry's kernel family for an int8 layer on this target (None: TVM's op)."""
        return None if self.target is None else registry.choose(layer, self.target)

    def _call(self, node: fx.Node) -> None:
        if node.name in self.done:  # an activation fused into its int8 producer
            return
        la = self.entries.get(node.name)
        if la is None or not la.integer:
            self._float_op(node)
            if la is not None:
                self.lowered.append(LoweredLayer(node.name, la.op, "fp32"))
            return
        self.out_nhwc = False
        out = self._integer(node, la)
        fused = la.fused[0] if la.fused and la.output is not None else None
        target = node
        if fused is not None:
            target = next(u for u in node.users if u.name == fused)
            self.done.add(fused)
            self.env[node], self.qp[node] = out, la.output
            if self.out_nhwc:
                self.nhwc.add(node)
        if self.out_nhwc:
            self.nhwc.add(target)
        self.env[target] = out
        self.qp[target] = la.output if _dtype(out) in ("uint8", "int8") else None
        if la.out_scale is not None and la.output is None:  # float out: one accumulator step
            self.lsb[target] = float(la.out_scale.max())

    def _float_op(self, node: fx.Node) -> None:
        """An FP32 op: TVM's own converter, on dequantized inputs."""
        saved = {}
        for arg in node.all_input_nodes:
            if self.qp.get(arg) is not None:
                saved[arg] = self.env[arg]
                self.env[arg] = self.as_float(arg)
        try:
            self.env[node] = self.tvm_ops[node.target.__name__](node)
        finally:
            self.env.update(saved)
        self.qp[node] = None

    # ---- conversions between the float and integer domains (rules 1 and 2) ----
    def as_float(self, n: fx.Node) -> relax.Expr:
        qp = self.qp.get(n)
        if qp is None:
            return self.env[n]
        if n not in self.float_cache:
            q = relax.op.astype(self.torch_layout(n), "int32")
            d = relax.op.subtract(q, const(qp.zero_point, "int32"))
            self.float_cache[n] = self.emit(relax.op.multiply(
                relax.op.astype(d, "float32"), const(np.float32(qp.scale), "float32")))
        return self.float_cache[n]

    def as_int(self, n: fx.Node, want: ActQParams, layer: str,
               nhwc: bool = False) -> relax.Expr:
        """n's value as integers with qparams `want`, NCHW (torch layout) or NHWC."""
        qp = self.qp.get(n)
        if qp is not None and qp != want:
            raise Int8LoweringError(f"{layer}: input {n.name} has qparams {qp}, "
                                    f"expected {want}")
        key = (n, want, nhwc)
        if key not in self.int_cache:
            if qp is None:
                q = quantize_expr(self.env[n], want)
                if nhwc:
                    q = relax.op.permute_dims(q, NHWC_FROM_NCHW)
                self.int_cache[key] = self.emit(q)
            elif nhwc == (n in self.nhwc):
                return self.env[n]
            else:
                self.int_cache[key] = self.emit(relax.op.permute_dims(
                    self.env[n], NHWC_FROM_NCHW if nhwc else NCHW_FROM_NHWC))
        return self.int_cache[key]

    def torch_layout(self, n: fx.Node) -> relax.Expr:
        if n not in self.nhwc:
            return self.env[n]
        key = (n, self.qp[n], False)
        if key not in self.int_cache:
            self.int_cache[key] = self.emit(relax.op.permute_dims(self.env[n], NCHW_FROM_NHWC))
        return self.int_cache[key]

    def emit(self, expr: relax.Expr) -> relax.Expr:
        return self.block_builder.emit(expr)

    def _kernel(self, key: tuple, kind: str, build: Callable[[], object]) -> relax.GlobalVar:
        """Our kernel for `key`, built and added to the module once (as int8_<kind>_<n>),
        shared by every layer with the same key."""
        if key not in self.kernels:
            name = f"int8_{kind}_{len(self.kernels)}"
            self.kernels[key] = self.block_builder.add_func(
                build().with_attr("global_symbol", name), name)
        return self.kernels[key]

    # ---- integer entries ----
    def _integer(self, node: fx.Node, la: LayerQuant) -> relax.Expr:
        op = la.op
        if op in ("conv2d", "linear"):
            if la.scheme == "dynamic":
                return self._dynamic_linear(node, la)
            return self._compute(node, la)
        if op == "embedding":
            return self._embedding(node, la)
        if op == "add":
            return self._add(node, la)
        (qi,) = la.inputs
        assert qi is not None
        src = node.args[0]
        # NHWC stays NHWC through elementwise clamps, max pool and the pools it can sum
        keep = src in self.nhwc and (la.clamp is not None or op in (
            "max_pool2d", "adaptive_avg_pool2d"))
        q = self.as_int(src, qi, la.name, nhwc=keep)
        if op in ("adaptive_avg_pool2d", "avg_pool2d", "mean"):
            return self._avg_pool(node, la, q, qi, keep)
        self.lowered.append(LoweredLayer(node.name, op, "int8-move"))
        if la.clamp is not None:  # an unfused ReLU/ReLU6/clamp on an int8 tensor
            self.out_nhwc = keep
            return self.emit(_clip(q, *la.clamp, _dtype(q)))
        if keep:
            self.out_nhwc = True
            return self._max_pool(node, q)
        # max pool and shape ops move the integers unchanged: TVM's converter on the int tensor
        saved = self.env[node.args[0]]
        self.env[node.args[0]] = q
        try:
            return self.tvm_ops[node.target.__name__](node)
        finally:
            self.env[node.args[0]] = saved

    def _compute(self, node: fx.Node, la: LayerQuant) -> relax.Expr:
        (qx,) = la.inputs
        assert qx is not None and la.weight_q is not None and la.bias_q is not None
        w = la.weight_q.to(torch.int64).numpy()
        channels = w.shape[0]
        bias = la.bias_q.to(torch.int64).numpy().reshape(channels)
        attrs = _conv_attrs(node) if la.op == "conv2d" else None
        if attrs is not None:
            # sum over the weights one output channel sees: its group's input channels only
            wsum = w.reshape(channels, -1).sum(1)
        else:
            wsum = w.sum(1)
        bias_eff = bias - qx.zero_point * wsum
        if np.any(bias_eff < INT32_MIN) or np.any(bias_eff > INT32_MAX):
            raise Int8LoweringError(f"{la.name}: folded int32 bias overflows")
        if self.sparse is not None and attrs is None and (
                y := self.sparse.linear(self, node, la, w, bias_eff)) is not None:
            return y
        layer = self._layer(node, la, w, attrs)
        family = self.choose(layer) if layer is not None else None
        if family is not None and bias_fits(bias_eff + self.isa.bias_shift(w)):
            chain = self._quantize_chain(node, la, layer, family)
            if chain is not None:
                layer = dataclasses.replace(layer, epilogue=chain.ep, quant=chain.out(la))
            folded = self._rows_as_channels(node, la, layer, w)
            if folded is not None:
                layer, w, x_in = folded
                return self._on_kernel(node, la, w, bias_eff, layer, family, chain, x_in)
            return self._on_kernel(node, la, w, bias_eff, layer, family, chain)
        x = self.as_int(node.args[0], qx, la.name)
        acc, kernel = self._default_compute(la, x, w, bias_eff, attrs), "relax"
        shape = (1, channels, 1, 1) if la.op == "conv2d" else (channels,)
        if la.output is None:  # float output: float32(acc) * out_scale[c]
            assert la.out_scale is not None
            self.lowered.append(LoweredLayer(node.name, la.op, "float-out", kernel,
                                             weights=_stored(la, 8), weight_bytes=w.size))
            return self.emit(relax.op.multiply(
                relax.op.astype(acc, "float32"),
                const(la.out_scale.numpy().reshape(shape), "float32")))
        assert la.multiplier is not None and la.shift is not None and la.clamp is not None
        self.lowered.append(LoweredLayer(node.name, la.op, "int8", kernel,
                                         weights=_stored(la, 8), weight_bytes=w.size))
        m0 = la.multiplier.numpy().reshape(-1)
        n = la.shift.numpy().reshape(-1)
        if m0.size == 1:
            m0, n = np.full(channels, m0[0]), np.full(channels, n[0])
        return self.emit(requantize_expr(acc, m0.reshape(shape), n.reshape(shape),
                                         la.output.zero_point, *la.clamp, la.output.dtype))

    def _default_compute(self, la: LayerQuant, x: relax.Expr, w: np.ndarray,
                         bias_eff: np.ndarray, attrs: dict | None) -> relax.Expr:
        """TVM's own conv2d/matmul in int32 (u8/s8 inputs), zero points folded into the bias."""
        (qx,) = la.inputs
        assert qx is not None
        channels = w.shape[0]
        if attrs is None:
            acc = relax.op.matmul(x, const(w.T, "int8"), out_dtype="int32")
            return self.emit(relax.op.add(acc, const(bias_eff, "int32")))
        ph, pw = attrs["padding"]
        if ph or pw:  # pad with the zero point: real zero, as the oracle's zero padding
            x = self.emit(relax.op.nn.pad(x, [0, 0, 0, 0, ph, ph, pw, pw],
                                          pad_value=float(qx.zero_point)))
        acc = relax.op.nn.conv2d(x, const(w, "int8"), strides=attrs["strides"], padding=0,
                                 dilation=attrs["dilation"], groups=attrs["groups"],
                                 out_dtype="int32")
        return self.emit(relax.op.add(acc, const(bias_eff.reshape(1, channels, 1, 1),
                                                  "int32")))

    def _layer(self, node: fx.Node, la: LayerQuant, w: np.ndarray,
               attrs: dict | None) -> Layer | None:
        """The registry's description of a static conv/linear: torch shapes (NCHW input; a
        linear's rows as the width of a 1-row image), uint8/int8 activations, the bits its
        weights can be stored in, its epilogue. None: no layer our kernels could take."""
        (qx,) = la.inputs
        if qx is None or la.weight_q is None:
            return None
        spec = epilogue_args(la, w.shape[0], f64=self.f64).spec
        shape = [int(d) for d in node.args[0].meta["val"].shape]
        if attrs is None:
            if not linear_on_dot(la, node):
                return None
            return Layer("linear", w.shape[1], w.shape[0], 1, int(np.prod(shape[:-1])),
                         dtype=qx.dtype, weight_bits=_weight_bits(la, w), quant=spec)
        if len(shape) != 4:
            return None
        n, c, h, wd = shape
        groups = attrs["groups"]
        return Layer("conv2d", c, w.shape[0], h, wd, n, tuple(w.shape[2:]), attrs["strides"],
                     attrs["padding"], attrs["dilation"], groups, qx.dtype,
                     weight_bits=_weight_bits(la, w) if groups == 1 else 8, quant=spec)

    def _on_kernel(self, node: fx.Node, la: LayerQuant, w: np.ndarray, bias_eff: np.ndarray,
                   layer: Layer, family: ModuleType, chain: QuantizeChain | None = None,
                   x_in: relax.Expr | None = None) -> relax.Expr:
        """The layer on the registry's `family` (a dot-product conv/linear, AMX tiles or the
        depthwise dot product), requantize or float epilogue fused; conv input and output
        NHWC, a linear as a 1x1 conv over its rows. Ternary and binary layers whose weights
        are in their value set keep them packed (2 / 1 bits). With a `chain`, the kernel
        runs the FP32 ops after it and writes the next int8 layer's input (`_chain_out`).
        x_in: the NHWC integer input as `layer` sees it (`_rows_as_channels`)."""
        (qx,) = la.inputs
        assert qx is not None
        target = self.target
        s = family.shape(layer, target)
        cp, extra_w = family.padded_input(layer, target)
        bits, k, kp = layer.weight_bits, w.shape[0], s.k
        quantize = None
        if layer.kind == "linear":  # rows are pixels of a 1 x M image
            x = self.as_int(node.args[0], qx, la.name)
            lead = [int(d) for d in x.ty.shape][:-1]
            x = relax.op.reshape(x, (1, 1, layer.w, layer.c))
            c, pad = layer.c, (0, 0)
        else:
            src, (n, c, h, wd), pad = node.args[0], (layer.n, layer.c, layer.h, layer.w), \
                layer.padding
            # a float input (the model's): quantized, made NHWC and padded by one kernel
            if x_in is None and self.qp.get(src) is None and not layer.depthwise and bits != 1:
                q = InputQuant(n, c, h, wd, pad[0], pad[1], extra_w, cp,
                               float(inv_scale(qx.scale)), qx.zero_point, qx.qmin, qx.qmax,
                               qx.dtype)
                if self.choose(Layer("quantize", c, cp, h, wd, n, dtype="float32",
                                     quant=q)) is int8_quantize:
                    quantize = q
            if quantize is None:
                x = x_in if x_in is not None else self.as_int(src, qx, la.name, nhwc=True)
        if quantize is not None:
            gv = self._kernel(("quantize", quantize), int8_quantize.KERNEL,
                              lambda: int8_quantize.emit(Layer("quantize", c, cp,
                                                               quant=quantize), target))
            x = relax.call_tir(gv, [self.env[node.args[0]]],
                               relax.TensorType(quantize.out_shape, qx.dtype))
        else:
            extra = cp - c if bits != 1 else 0  # extra channels: zero weights see the zp
            if any(pad) or extra:
                x = relax.op.nn.pad(x, [0, 0, pad[0], pad[0], pad[1], pad[1], 0, extra],
                                    pad_value=float(qx.zero_point))
            if cp - c - extra:  # binary's extra weights are +1: their channels must hold 0
                x = relax.op.nn.pad(x, [0, 0, 0, 0, 0, 0, 0, cp - c], pad_value=0.0)
            if extra_w:  # the tile kernel reads a few columns past the last pixel's taps
                x = relax.op.nn.pad(x, [0, 0, 0, 0, 0, extra_w, 0, 0],
                                    pad_value=float(qx.zero_point))
        x = self.emit(x)
        packed, bias = family.pack(layer, target, w, bias_eff)
        if not bias_fits(bias):  # binary's +1 padding adds to sdot's 128 * sum(w)
            raise Int8LoweringError(f"{la.name}: the kernel's folded bias overflows int32")
        ep = epilogue_args(la, k, kp, f64=self.f64)
        arrays, out_dtype, out_shape = ep.arrays, ep.out, (s.n, s.oh, s.ow, kp)
        if chain is not None:
            top, bottom, left, right = chain.ep.borders
            arrays, out_dtype = chain.arrays(la, k, kp), chain.qp.dtype
            out_shape = (s.n, s.oh // chain.ep.pool + top + bottom, s.ow + left + right, kp)
        args = [x, const(packed, str(packed.dtype)), const(bias, "int32"),
                *(const(a, str(a.dtype)) for a in arrays)]
        name = family.KERNEL + (f"_w{bits}" if bits < 8 else "")
        gv = self._kernel((family.NAME, s, layer.quant, layer.epilogue, bits), name,
                          lambda: family.emit(layer, target))
        y = self.emit(relax.call_tir(gv, args, relax.TensorType(out_shape, out_dtype)))
        if kp != k:
            y = self.emit(relax.op.strided_slice(y, axes=[3], begin=[0], end=[k]))
        kind = "float-out" if la.output is None and chain is None else "int8"
        self.lowered.append(LoweredLayer(
            node.name, la.op, kind, family.LABEL, gv.name_hint,
            instruction=registry.instruction(family, target), weights=_stored(la, bits),
            weight_bytes=packed.nbytes))
        if chain is not None:
            return self._chain_out(chain, y)
        if layer.kind == "linear":
            return self.emit(relax.op.reshape(y, (*lead, k)))
        if la.output is None:  # float output goes to FP32 ops: torch layout
            return self.emit(relax.op.permute_dims(y, NCHW_FROM_NHWC))
        self.out_nhwc = True
        return y

    def _rows_as_channels(self, node: fx.Node, la: LayerQuant, layer: Layer, w: np.ndarray
                          ) -> tuple[Layer, np.ndarray, relax.Expr] | None:
        """A one-channel conv down a width-1 column whose stride and kernel height are
        multiples of 4 (CREPE's first conv: 512 x 1, stride 4, on the raw frame) as the same
        conv on 4 channels: 4 consecutive rows are one 32-bit word, the bytes one dot-product
        lane reduces, so x[n, h, 1, 1] is x[n, h / 4, 1, 4] (a free reshape) and w[k, 0, kh]
        is w'[k, kh % 4, kh // 4], stride / 4. Otherwise its input would be padded from 1 to 4
        channels: 4x the work, 3/4 of it on zeros. None where it does not apply."""
        (qx,) = la.inputs
        kh, kw = layer.kernel
        sh = layer.stride[0]
        if (layer.kind != "conv2d" or layer.c != 1 or layer.groups != 1 or layer.w != 1
                or kw != 1 or layer.padding != (0, 0) or layer.dilation != (1, 1)
                or sh % 4 or kh % 4 or layer.h % 4 or layer.weight_bits != 8
                or qx is None or qx.dtype != "uint8"):
            return None
        x = self.as_int(node.args[0], qx, la.name, nhwc=True)
        x = self.emit(relax.op.reshape(x, (layer.n, layer.h // 4, 1, 4)))
        k = w.shape[0]
        w4 = np.ascontiguousarray(w.reshape(k, kh // 4, 4).transpose(0, 2, 1)
                                  .reshape(k, 4, kh // 4, 1))
        folded = dataclasses.replace(layer, c=4, h=layer.h // 4, kernel=(kh // 4, 1),
                                     stride=(sh // 4, 1))
        return folded, w4, x

    def _quantize_chain(self, node: fx.Node, la: LayerQuant, layer: Layer,
                        family: ModuleType) -> QuantizeChain | None:
        """The FP32 chain after a float-out conv its kernel can run (QuantizeChain), or None:
        each op the only user of the one before, none of them an integer entry, and an int8
        static conv/linear consuming the last."""
        if (la.output is not None or layer.kind != "conv2d"
                or not getattr(family, "QUANTIZE_EPILOGUE", False)):
            return None

        def only_user(n: fx.Node) -> fx.Node | None:
            users = list(n.users)
            return users[0] if len(users) == 1 and users[0].op == "call_function" else None

        shape = [int(d) for d in node.meta["val"].shape]  # the conv's NCHW output
        relu = only_user(node)
        if relu is None or relu.target is not aten.relu.default:
            return None
        nodes, affine, pool, borders, flat = [relu], None, 1, (0, 0, 0, 0), False
        nxt = only_user(relu)
        if nxt is not None and nxt.target is aten.batch_norm.default:
            affine = self._bn(nxt)
            if affine is None:
                return None
            nodes.append(nxt)
            nxt = only_user(nxt)
        if nxt is not None and nxt.target is aten.max_pool2d.default:
            kernel, stride, padding, dilation, _ = _pool_args(nxt)
            p = kernel[0]
            if (kernel != (p, 1) or stride != kernel or padding != (0, 0)
                    or dilation != (1, 1) or shape[3] != 1 or shape[2] % p):
                return None
            pool = p
            nodes.append(nxt)
            nxt = only_user(nxt)
        if nxt is not None and nxt.target is aten.pad.default:
            pads = [int(v) for v in nxt.args[1]]
            mode = nxt.args[2] if len(nxt.args) > 2 else nxt.kwargs.get("mode", "constant")
            value = nxt.args[3] if len(nxt.args) > 3 else nxt.kwargs.get("value")
            if len(pads) != 4 or min(pads) < 0 or mode != "constant" or value not in (None, 0,
                                                                                      0.0):
                return None
            borders = (pads[2], pads[3], pads[0], pads[1])
            nodes.append(nxt)
            nxt = only_user(nxt)
        if (nxt is not None and nxt.target is aten.permute.default and shape[3] == 1
                and [int(d) for d in nxt.args[1]] == [0, 2, 1, 3] and not any(borders)):
            # (n, c, h, 1) -> (n, h, c, 1) -> (n, h * c): the NHWC order, a reshape
            flatten = only_user(nxt)
            if (flatten is None or flatten.target is not aten.flatten.using_ints
                    or list(flatten.args[1:]) not in ([1], [1, -1], [1, 3])):
                return None
            nodes += [nxt, flatten]
            nxt, flat = only_user(flatten), True
        consumer = self.entries.get(nxt.name) if nxt is not None else None
        if nxt is None or consumer is None or consumer.op not in ("conv2d", "linear") \
                or consumer.scheme == "dynamic" or nxt.args[0] is not nodes[-1]:
            return None
        (qp,) = consumer.inputs
        if qp is None or any(self.entries[n.name].integer for n in nodes
                             if n.name in self.entries):
            return None
        ep = Epilogue("relu", pad=borders[0::2], pad_end=borders[1::2],
                      affine=affine is not None, pool=pool)
        return QuantizeChain(tuple(nodes), qp, ep, affine, flat)

    def _bn(self, node: fx.Node) -> tuple[np.ndarray, np.ndarray] | None:
        """An eval BatchNorm's (scale, shift) (bn_affine), None unless its statistics and
        parameters are constants of the program."""
        args = [*node.args, None, None, None, None, None, None, None, None][:8]
        if args[5]:  # training
            return None
        values = [None if a is None else self._state(a) for a in args[1:5]]
        if any(v is None for v, a in zip(values, args[1:5], strict=True) if a is not None):
            return None
        if values[2] is None or values[3] is None:
            return None
        return bn_affine(*values, float(args[7]))

    def _state(self, node: object) -> np.ndarray | None:
        """The value of a parameter or buffer input of the program (None: not one)."""
        if not isinstance(node, fx.Node) or node.op != "placeholder":
            return None
        sig = self.ep.graph_signature
        key = sig.inputs_to_parameters.get(node.name) or sig.inputs_to_buffers.get(node.name)
        value = self.ep.state_dict.get(key, self.ep.constants.get(key)) if key else None
        return None if value is None else value.detach().float().numpy()

    def _chain_out(self, chain: QuantizeChain, y: relax.Expr) -> relax.Expr:
        """Record the kernel's output as the quantized value of the chain's last node (the
        int8 input its consumer reads, NHWC), every op of the chain done."""
        k = int(chain.nodes[0].meta["val"].shape[1])  # the conv's real output channels
        if int(y.ty.shape[3]) != k:
            y = self.emit(relax.op.strided_slice(y, axes=[3], begin=[0], end=[k]))
        last = chain.last
        if chain.flat:
            value = self.emit(relax.op.reshape(y, (int(y.ty.shape[0]), -1)))
        else:
            value = y
            self.nhwc.add(last)
        for n in chain.nodes:
            self.done.add(n.name)
            self.env[n] = value
            if n.name in self.entries:
                self.lowered.append(LoweredLayer(n.name, self.entries[n.name].op, "fused"))
        self.qp[last] = chain.qp
        return y

    def _add(self, node: fx.Node, la: LayerQuant) -> relax.Expr:
        """Requantized integer add on the registry's kernel (kernels/int8_add.py); TVM's ops
        (the same int64 expression) where it has none (the shapes broadcast)."""
        qa, qb = la.inputs
        assert qa is not None and qb is not None and la.output is not None
        assert la.multiplier is not None and la.shift is not None and la.clamp is not None
        nhwc = all(a in self.nhwc for a in node.args[:2])
        a = self.as_int(node.args[0], qa, la.name, nhwc)
        b = self.as_int(node.args[1], qb, la.name, nhwc)
        self.out_nhwc = nhwc
        self.lowered.append(LoweredLayer(node.name, "add", "int8"))
        shape = [int(d) for d in a.ty.shape]
        q = AddQuant(qa.zero_point, qb.zero_point, int(la.multiplier[0]),
                     int(la.multiplier[1]), int(la.shift[0]), la.output.zero_point, *la.clamp)
        out = la.output.dtype
        layer = Layer("add", shape[-1], shape[-1], dtype=_dtype(a), shape=tuple(shape),
                      quant=Int8Add(q, tuple(int(d) for d in b.ty.shape), _dtype(b), out))
        family = self.choose(layer)
        if family is None:
            da = relax.op.subtract(relax.op.astype(a, "int64"), const(qa.zero_point, "int64"))
            db = relax.op.subtract(relax.op.astype(b, "int64"), const(qb.zero_point, "int64"))
            p = relax.op.add(relax.op.multiply(da, const(int(la.multiplier[0]), "int64")),
                             relax.op.multiply(db, const(int(la.multiplier[1]), "int64")))
            return self.emit(_shift_clamp(p, np.int64(la.shift[0]), la.output.zero_point,
                                          *la.clamp, la.output.dtype))
        gv = self._kernel((family.NAME, layer), family.KERNEL,
                          lambda: family.emit(layer, self.target))
        return self.emit(relax.call_tir(gv, [a, b], relax.TensorType(shape, out)))

    def _max_pool(self, node: fx.Node, q: relax.Expr) -> relax.Expr:
        """Max pool on NHWC integers: the registry's kernel (kernels/int8_pool.py) where it
        fits, else TVM's (uint8 pads with 0, int8 with -128: never above a real element, so
        exact)."""
        kernel, stride, padding, dilation, ceil = _pool_args(node)
        n, h, w, c = (int(d) for d in q.ty.shape)
        s = PoolShape(n, h, w, c, kernel, stride, padding, ceil)
        dtype = _dtype(q)
        layer = Layer("max_pool2d", c, c, h, w, n, kernel, stride, padding, dilation,
                      dtype=dtype, quant=s)
        family = self.choose(layer)
        if family is None:
            return self.emit(relax.op.nn.max_pool2d(q, kernel, stride, padding, dilation, ceil,
                                                    layout="NHWC"))
        gv = self._kernel((family.NAME, layer), family.KERNEL,
                          lambda: family.emit(layer, self.target))
        return self.emit(relax.call_tir(gv, [q], relax.TensorType((n, s.oh, s.ow, c), dtype)))

    def _avg_pool(self, node: fx.Node, la: LayerQuant, q: relax.Expr,
                  qi: ActQParams, nhwc: bool) -> relax.Expr:
        assert la.output is not None and la.multiplier is not None and la.shift is not None
        d = relax.op.subtract(relax.op.astype(q, "int32"), const(qi.zero_point, "int32"))
        shape = [int(s) for s in q.ty.shape]
        if la.op == "adaptive_avg_pool2d" and nhwc:
            oh, ow = (int(v) for v in node.args[1])
            n, h, w, c = shape
            r = relax.op.reshape(d, (n, oh, h // oh, ow, w // ow, c))
            acc = relax.op.sum(r, axis=[2, 4])
            self.out_nhwc = True
        elif la.op == "adaptive_avg_pool2d":
            oh, ow = (int(v) for v in node.args[1])
            n, c, h, w = shape
            r = relax.op.reshape(d, (n, c, oh, h // oh, ow, w // ow))
            acc = relax.op.sum(r, axis=[3, 5])
        elif la.op == "mean":
            dims = node.args[1] if len(node.args) > 1 else None
            keep = bool(node.args[2]) if len(node.args) > 2 else bool(node.kwargs.get("keepdim"))
            axes = list(range(len(shape))) if dims is None else [int(a) % len(shape)
                                                                 for a in dims]
            acc = relax.op.sum(d, axis=axes, keepdims=keep)
        else:  # avg_pool2d, no padding: windows that tile the input are a reshape + sum
            k = list(node.args[1])
            kh, kw = (k[0], k[0]) if len(k) == 1 else k
            st = list(node.args[2]) if len(node.args) > 2 and node.args[2] else [kh, kw]
            sh, sw = (st[0], st[0]) if len(st) == 1 else st
            n, c, h, w = shape
            if (sh, sw) != (kh, kw) or h % kh or w % kw or any(
                    a for a in node.args[3:4] for a in (a if isinstance(a, list) else [a])):
                raise Int8LoweringError(f"{la.name}: integer avg_pool2d is lowered only for "
                                        "non-overlapping windows without padding")
            r = relax.op.reshape(d, (n, c, h // kh, kh, w // kw, kw))
            acc = relax.op.sum(r, axis=[3, 5])
        self.lowered.append(LoweredLayer(node.name, la.op, "int8"))
        return self.emit(requantize_expr(self.emit(acc), int(la.multiplier[0]),
                                         int(la.shift[0]), la.output.zero_point,
                                         la.output.qmin, la.output.qmax, la.output.dtype))

    def _embedding(self, node: fx.Node, la: LayerQuant) -> relax.Expr:
        """Rule 10: int8 rows gathered, then float32(w_q) * s_w[id] (weights stay int8)."""
        assert la.weight_q is not None and la.out_scale is not None
        ids = relax.op.astype(self.as_float(node.args[1]), "int64")
        if self.target is not None and vector_lanes(self.target):  # one kernel of ours
            return self._embedding_kernel(node, la, self.emit(ids))
        rows = relax.op.take(const(la.weight_q.numpy(), "int8"), ids, axis=0)
        scale = relax.op.take(const(la.out_scale.numpy(), "float32"), ids, axis=0)
        self.lowered.append(LoweredLayer(node.name, "embedding", "int8"))
        return self.emit(relax.op.multiply(relax.op.astype(rows, "float32"),
                                           relax.op.expand_dims(scale, -1)))

    def _embedding_kernel(self, node: fx.Node, la: LayerQuant, ids: relax.Expr) -> relax.Expr:
        """Rule 10 on kernels/fp32_rowwise.py's gather: int8 rows times their scale."""
        vocab, d = (int(v) for v in la.weight_q.shape)
        shape = [int(v) for v in ids.ty.shape]
        n = int(np.prod(shape))
        gv = self._kernel(("embedding", vocab, d, n), "embedding",
                          lambda: rowwise.take_scaled_rows_kernel(vocab, d, n, "int64"))
        y = self.emit(relax.call_tir(gv, [const(la.weight_q.numpy(), "int8"),
                                          const(la.out_scale.numpy(), "float32"),
                                          relax.op.reshape(ids, (n,))],
                                     relax.TensorType((n, d), "float32")))
        self.lowered.append(LoweredLayer(node.name, "embedding", "int8"))
        return self.emit(relax.op.reshape(y, (*shape, d)))

    def _dynamic_linear(self, node: fx.Node, la: LayerQuant) -> relax.Expr:
        """Rule 8: uint8 qparams of the live input (one set per sample: batch 1 here), then
        acc = sum(q * w) - z * sum(w) in int32 (our VNNI kernel when available), and
        y = float32(acc) * (s_x * s_w[c]) + b[c] in float32."""
        assert la.weight_q is not None and la.bias_float is not None
        x = self.as_float(node.args[0])
        shape = [int(d) for d in x.ty.shape]
        if shape[0] != 1:
            raise Int8LoweringError(f"{la.name}: dynamic int8 is lowered for batch 1 only")
        f32 = "float32"
        lo = relax.op.minimum(relax.op.min(x), const(0.0, f32))
        hi = relax.op.maximum(relax.op.max(x), const(0.0, f32))
        scale = self.emit(relax.op.divide(relax.op.subtract(hi, lo), const(255.0, f32)))
        scale = self.emit(relax.op.where(
            relax.op.greater(scale, const(0.0, f32)),
            relax.op.maximum(scale, const(MIN_SCALE, f32)), const(1.0, f32)))
        zp = self.emit(_clip(relax.op.negative(relax.op.round(relax.op.divide(lo, scale))),
                             0, 255, f32))
        inv = relax.op.divide(const(1.0, f32), scale)
        q = relax.op.add(relax.op.round(relax.op.multiply(x, inv)), zp)
        q = self.emit(relax.op.astype(_clip(q, 0, 255, f32), "uint8"))
        w = la.weight_q.to(torch.int64).numpy()
        sparse = self.sparse.accumulators(self, q, w) if self.sparse is not None else None
        if sparse is not None:
            acc, kernel, self.last_symbol = sparse
        elif self.isa is not None:
            acc, kernel = self._vnni_int32(q, w), self.isa.name
        else:
            acc, kernel = self.emit(relax.op.matmul(q, const(w.T, "int8"),
                                                    out_dtype="int32")), "relax"
        zsum = relax.op.multiply(relax.op.astype(zp, "int32"), const(w.sum(1), "int32"))
        acc = relax.op.subtract(acc, zsum)
        s = relax.op.multiply(scale, const(np.asarray(la.weight_scale, np.float32), f32))
        y = relax.op.add(relax.op.multiply(relax.op.astype(acc, f32), s),
                         const(la.bias_float.numpy(), f32))
        self.lowered.append(LoweredLayer(node.name, la.op, "dynamic", kernel,
                                         self.last_symbol if kernel != "relax" else "",
                                         **({"instruction": self.isa.instruction}
                                            if self.isa else {})))
        return self.emit(y)

    def _vnni_int32(self, q: relax.Expr, w: np.ndarray) -> relax.Expr:
        """int32 accumulators sum(q * w) of a linear on the target's dot-product kernel (rows
        as pixels; never AMX tiles: the dynamic form keeps the raw accumulators)."""
        dot = self.isa
        lead = [int(d) for d in q.ty.shape][:-1]
        m, c = int(np.prod(lead)), w.shape[1]
        k = w.shape[0]
        kp, cp = -(-k // dot.lanes) * dot.lanes, -(-c // 4) * 4
        x = relax.op.reshape(q, (1, 1, m, c))
        if cp != c:
            x = relax.op.nn.pad(x, [0, 0, 0, 0, 0, 0, 0, cp - c])
        x = self.emit(x)
        shape = ConvShape(1, 1, m, cp, kp, 1, 1, (1, 1))
        gv = self._kernel((shape, "int32", 0, 0, 0, False), f"conv_{dot.name}",
                          lambda: conv_dot_kernel(dot, shape, "int32"))
        self.last_symbol = gv.name_hint
        w4 = w.reshape(k, c, 1, 1)
        bias = np.zeros(kp, np.int64)
        bias[:k] = dot.bias_shift(w4)
        y = self.emit(relax.call_tir(gv, [
            x, const(dot.pack_weights(w4, cp, kp), "int8"),
            const(bias, "int32")], relax.TensorType((1, 1, m, kp), "int32")))
        if kp != k:
            y = self.emit(relax.op.strided_slice(y, axes=[3], begin=[0], end=[k]))
        return self.emit(relax.op.reshape(y, (*lead, k)))


def _weight_bits(la: LayerQuant, w: np.ndarray) -> int:
    """Bits our dot-product kernel stores the layer's weights in: 2 for a ternary layer whose
    int8 weights are all in {-1, 0, 1}, 1 for a binary one all in {-1, 1}, else 8."""
    from edgebench.kernels.int8_conv import packable_bits

    if la.weight_bits not in (1, 2):
        return 8
    return la.weight_bits if packable_bits(w) <= la.weight_bits else 8


def _stored(la: LayerQuant, bits: int) -> str:
    """The int8_layers weight label: only in ternary/binary models (which layer stays int8)."""
    from edgebench.kernels.int8_conv import WEIGHT_BITS

    return WEIGHT_BITS[bits] if la.weight_bits in (1, 2) else ""


INTEGER_GLUE_TRIALS = 1
_FLOAT_DTYPE = re.compile(r'"b?float\d+"|T\.b?float\d+\(')  # a float buffer or value in TVMScript


def glue_trials(task_mod, trials: int, small: int | None = None) -> int:
    """The MetaSchedule budget of one task of an int8 module (tuning.tune's task_trials). Our
    kernels are not tuned at all. Glue whose tensors all have <= SMALL_GLUE elements gets 0:
    TVM's default code, no tuning (the digits models' quantize/dequantize/pads: the main job's
    int8 rows measured as fast untuned as tuned, results/newcomer/main-job-trials0.csv, while
    each tuning round costs ~30-60 s). Larger integer data movement (pads, requantized adds,
    integer casts) gets 1 trial: MetaSchedule's search stalls on those (rounds of ~70 s without
    a new candidate) and they cost little. Anything larger computing in float (the encoder's
    layer norms, softmax, GELU and attention matmuls between int8 linears) gets the full
    budget: on one trial the encoder's softmax took 45 ms a call."""
    script = task_mod.script()  # (no buffer_map in Python)
    if _largest_buffer(script) <= (SMALL_GLUE if small is None else small):
        return 0
    floats = _FLOAT_DTYPE.search(script) is not None
    return trials if floats else min(trials, INTEGER_GLUE_TRIALS)


SMALL_GLUE = 16384  # elements: a glue function this small is not worth a tuning round
_BUFFER_SHAPE = re.compile(r"T\.Buffer\(\(([^\"]*?)\),\s*\"")


def _largest_buffer(script: str) -> int:
    """Elements of the largest buffer a PrimFunc's TVMScript declares (inf if none)."""
    sizes = []
    for m in _BUFFER_SHAPE.finditer(script):
        dims = [d.strip().removeprefix("T.int64(").removesuffix(")")
                for d in m.group(1).split(",") if d.strip()]
        if not all(d.isdigit() for d in dims):
            return 1 << 62  # a symbolic dimension: not known to be small
        sizes.append(int(np.prod([int(d) for d in dims])) if dims else 1)
    return max(sizes) if sizes else 1 << 62


def _pool_args(node: fx.Node) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int],
                                       tuple[int, int], bool]:
    """aten.max_pool2d(x, kernel, stride=kernel, padding=0, dilation=1, ceil_mode) as pairs
    (kernel, stride, padding, dilation) and ceil_mode."""
    args = [*node.args, None, None, None, None, None][1:6]

    def pair(v, default):
        if v is None or (isinstance(v, list | tuple) and not v):
            return default
        v = list(v) if isinstance(v, list | tuple) else [v]
        return (int(v[0]), int(v[-1]))

    kernel = pair(args[0], None)
    return (kernel, pair(args[1], kernel), pair(args[2], (0, 0)), pair(args[3], (1, 1)),
            bool(args[4] or False))


def quantize_expr(x: relax.Expr, qp: ActQParams) -> relax.Expr:
    """Rule 1 in float32: clamp(round_half_even(x * inv) + z, qmin, qmax) -> uint8/int8."""
    inv = const(inv_scale(qp.scale), "float32")
    r = relax.op.round(relax.op.multiply(x, inv))
    y = relax.op.add(r, const(np.float32(qp.zero_point), "float32"))
    return relax.op.astype(_clip(y, qp.qmin, qp.qmax, "float32"), qp.dtype)


def _clip(x: relax.Expr, lo: int, hi: int, dtype: str) -> relax.Expr:
    return relax.op.minimum(relax.op.maximum(x, const(lo, dtype)), const(hi, dtype))


def _shift_clamp(p: relax.Expr, n, zp: int, lo: int, hi: int, dtype: str) -> relax.Expr:
    """clamp(zp + round_half_even(p / 2**n), lo, hi) for int64 p: floor shift of p plus
    2**(n-1) - 1 plus the odd bit of floor(p / 2**n) rounds ties to even, no compare needed."""
    n = np.asarray(n, dtype=np.int64)
    half = const((np.int64(1) << (n - 1)) - 1, "int64")
    nc = const(n, "int64")
    odd = relax.op.bitwise_and(relax.op.right_shift(p, nc), const(1, "int64"))
    t = relax.op.right_shift(relax.op.add(relax.op.add(p, half), odd), nc)
    t = relax.op.add(t, const(zp, "int64"))
    return relax.op.astype(_clip(t, lo, hi, "int64"), dtype)


def requantize_expr(acc: relax.Expr, m0, n, zp: int, lo: int, hi: int,
                    dtype: str) -> relax.Expr:
    """Rule 3: int32 acc -> clamp(zp + round_half_even(int64(acc) * M0 / 2**n), lo, hi)."""
    p = relax.op.multiply(relax.op.astype(acc, "int64"), const(m0, "int64"))
    return _shift_clamp(p, n, zp, lo, hi, dtype)


def export_float(model: torch.nn.Module, example: torch.Tensor):
    """The batch-1 torch.export of the BN-folded FP32 model: the node names the description
    uses (the quantizer's own export differs only in its dynamic batch axis)."""
    with torch.no_grad():
        return torch.export.export(model, (example,))


def lower_int8(ep, description: QuantDescription, target=None,
               sparse: Int8Sparse | None = None) -> Lowering:
    """torch.export program of the float model + its description -> integer Relax module,
    through TVM's public importer with our converter for every op. `target` (a Target) says
    which of our kernels the layers run on (kernels/registry.py: vpdpbusd or AMX tiles on
    x86, sdot on aarch64 +dotprod, the integer glue); None: TVM's own int8 ops throughout.
    sparse: pruned linears on the int8 BSR kernel where it decides so (its `layers` record
    each candidate)."""
    converter = Int8Converter(description, target, sparse)
    mod = from_exported_program(ep, run_ep_decomposition=False,
                                custom_convert_map=converter.convert_map(ep))
    if converter.output_lsb is None:
        raise Int8LoweringError("the graph's output does not follow an op")
    return Lowering(mod, converter.output_lsb, converter.lowered)


def fast_gelu():
    """A Relax pass: nn.gelu as x * (1 + erf(x / sqrt 2)) / 2 on topi's fast_erf (a rational
    polynomial that LLVM vectorizes). TVM's GELU legalizes to topi.erf, which stays a scalar
    call per element: the encoder's int8 row spent 14 ms a call (4 of its 68 ms of kernels) in
    one fused GELU task after 8 tuning trials. The floats between int8 layers are verified
    against the reference within the int8 tolerance, which fast_erf's few-ulp error keeps."""
    from tvm import topi
    from tvm.relax import PyExprMutator, expr_functor

    def te_gelu(x):
        return x * (0.5 + topi.fast_erf(x * 0.5**0.5) * 0.5)

    @expr_functor.mutator
    class _Mutator(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if getattr(call.op, "name", "") == "relax.nn.gelu" and \
                    str(call.args[0].ty.dtype) == "float32":
                return self.builder_.call_te(te_gelu, call.args[0], primfunc_name_hint="gelu")
            return call

    @tvm.transform.module_pass(opt_level=0, name="FastGelu")
    def transform(mod, _ctx):
        mutator = _Mutator(mod)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                mutator.builder_.update_func(gv, mutator.visit_expr(func))
        return mutator.builder_.get()

    return transform
