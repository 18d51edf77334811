"""Lower a BN-folded FP32 Relax graph onto our kernels (kernels/registry.py): conv2d,
depthwise conv and linear become call_tir of our hand-scheduled kernels with prepacked
constant weights; the per-channel affine ops after them (bias, an unfolded BatchNorm),
ReLU/ReLU6 and a residual add are fused into the kernel's epilogue, and so are a BatchNorm
after the activation (a scale/shift), a (P x 1) max pool of a conv tiled down its columns and
a zero pad in front of the next conv (CREPE's blocks); activations stay NHWC
(channels padded to whole vectors) between our kernels, converted only at the boundaries, and
the glue between them (pad, max pool, global mean) runs on small kernels of ours. Everything
else stays TVM's op (then MetaSchedule's task), on the torch layout.

How: one walk over `main`'s dataflow block in order. A conv/linear is kept pending (not yet
emitted) while the ops that follow it fold into it: constants into its weights and bias (only
while the pending value has a single use), an activation or a residual into its epilogue. A
value is emitted the first time something needs it in a form (NHWC for our kernels, torch
layout for TVM's ops and the outputs).

An int8 module (passes/int8.py's lowering; the pipeline runs this pass over it too): the
call_tir of our int8 kernels are opaque torch-layout values to the walk, integer data stays on
TVM's ops (the float kernels take float32 only), and the float glue between the int8 layers
goes onto our kernels as in an FP32 build. The int8 lowering's quantizes (multiply by 1/s,
round, + z, clamp, cast) are found before the walk (`quantize_chains`): a layer norm, GELU or
transpose whose value only feeds one stores its integers itself, anything else gets one
quantize kernel (kernels/fp32_rowwise.py `Quant`).

FP16 (`dtype="float16"`, the `quant=fp16` build where the target computes in FP16): the same
walk with our kernels, weights and NHWC values in float16 (`fmla v.8h` / `vfmadd231ph`,
accumulating in float16 as passes/fp16.py does); values in torch layout stay float32, so
the boundary kernels cast (NCHW float32 -> NHWC float16 and back, a float32 linear input to
float16) and everything left to TVM (and attention's batched matmuls) computes as in FP32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from edgebench.compile.asm import function_bodies, mnemonic
from edgebench.kernels import fp32_glue as glue
from edgebench.kernels import fp32_rowwise as rowwise
from edgebench.kernels import registry
from edgebench.kernels.layer import Epilogue, Layer, vector_lanes, vectors
from edgebench.passes.sparse_weights import SparseLayer, weight_sparsity
from edgebench.report.row import Fp32Layers


@dataclass
class KernelUse:
    """One layer our lowering put on a kernel (for the fp32_layers column and the asm check)."""

    node: str  # the Relax binding it replaced
    family: str  # registry family name, or "glue"
    symbol: str  # its function in the built library
    instruction: str | None = None  # what its assembly must contain (None: glue)
    register: str = "zmm"
    fma: bool | None = None  # the check's result
    macs: int = 0  # multiply-adds per call (padded channels included: the kernel's work)
    layer: str = ""  # a sparse layer's label (sparse_layers' `conv2d#i[...]`, its sparsity)
    op: str = ""  # a glue kernel's kind (layer_norm, softmax, transpose, ...)
    quant: str = ""  # its kind again if it stores quantized integers (an int8 layer's input)


@dataclass
class Fp32Lowering:
    """What the pass did to one module."""

    kernels: list[KernelUse] = field(default_factory=list)
    relax_ops: list[str] = field(default_factory=list)  # ops left to TVM (MetaSchedule)
    not_lowered: str = ""  # why the whole graph stayed on TVM's ops (none of ours ran)
    sparse: list[SparseLayer] = field(default_factory=list)  # +sparse: each candidate conv

    def layer_facts(self) -> Fp32Layers:
        """Layers per kernel family, those without their FMA and the ops TVM kept: the row's
        fp32_layers."""
        return Fp32Layers.of((k.family for k in self.kernels),
                             [k.node for k in self.kernels if k.fma is False],
                             self.relax_ops, self.not_lowered)

    def summary(self) -> str:
        return self.layer_facts().text()

    def check_asm(self, asm: str) -> list[KernelUse]:
        """Mark each compute kernel by whether its body has the FMA on its vector registers;
        return those that lack it."""
        bodies = function_bodies(asm)
        missing = []
        for k in self.kernels:
            if k.instruction is None:
                continue
            lines = bodies.get(k.symbol, [])
            k.fma = any(_is_fma(mnemonic(ln), k.instruction) and k.register in ln
                        for ln in lines)
            if not k.fma:
                missing.append(k)
        return missing


def _is_fma(m: str, instruction: str) -> bool:
    """vfmadd231ps (ph) and its operand-order twins (132/213: LLVM picks by register reuse);
    NEON's fmla as it is."""
    return m == instruction or (m.startswith("vfmadd") and m.endswith(instruction[-2:])
                                and instruction.startswith("vfmadd"))


class FallBack(Exception):
    """This binding stays TVM's op."""


@dataclass
class Nhwc:
    """A value our kernels produced: NHWC [n, h, w, cp] (or a linear's rows [m, cp]) with c
    real channels (the rest are 0)."""

    expr: relax.Expr
    c: int
    rows: bool = False
    plain: relax.Expr | None = None  # its torch-layout form, once emitted

    @property
    def shape(self) -> list[int]:
        return [int(d) for d in self.expr.ty.shape]


@dataclass
class Pending:
    """A conv/linear not yet emitted, and what has been folded into it so far."""

    layer: Layer
    family: object
    src: object  # the input value (Nhwc or a relax expr in torch layout)
    weight: np.ndarray  # [K, C, KH, KW] (conv) or [K, C] (linear)
    bias: np.ndarray
    node: str
    act: str | None = None
    residual: Nhwc | None = None
    out_shape: tuple[int, ...] = ()  # torch layout
    dense: object = None  # a sparse candidate (+sparse): the dense family it is timed against
    # after the activation: a per-channel (scale, shift) (a BatchNorm after the ReLU), then
    # the max over `pool` consecutive rows (a (pool x 1) max pool)
    affine: tuple[np.ndarray, np.ndarray] | None = None
    pool: int = 1


def _ints(v) -> tuple[int, ...]:
    return tuple(int(x) for x in v)


def _const(expr) -> np.ndarray | None:
    return expr.value.numpy() if isinstance(expr, tvm.ir.expr.Constant) else None


# ops whose handlers move or index data of any dtype (views, the embedding's ids, int casts)
_ANY_DTYPE = frozenset({"relax.reshape", "relax.expand_dims", "relax.broadcast_to",
                        "relax.astype", "relax.take"})


def _float_args(call) -> bool:
    """Every tensor argument of the call is float32 (the values our float kernels take)."""
    return all(str(a.ty.dtype) == "float32" for a in getattr(call, "args", ())
               if isinstance(getattr(a, "ty", None), relax.TensorType))


def _op(call) -> str:
    return call.op.name if isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op) \
        else ""


class Lowerer:
    def __init__(self, mod: tvm.IRModule, target, record: Fp32Lowering,
                 options: frozenset[str] = frozenset(), dtype: str = "float32",
                 select=None) -> None:
        self.bb = relax.BlockBuilder(mod)
        self.target = target
        self.options = options  # the variant's opt-in kernel families (registry.OPTIONS)
        self.dtype = dtype  # what our conv/depthwise/linear kernels and NHWC values hold
        self.prefix = "fp16" if dtype == "float16" else "fp32"
        self.select = select  # +sparse: sparse or dense per layer (None: every candidate)
        self.record = record
        self.vals: dict[relax.Var, object] = {}
        self.uses: dict[relax.Var, int] = {}
        self.kernels: dict[tuple, relax.GlobalVar] = {}
        # an int8 module's quantizes (see quantize_chains): the cast's var -> (float source,
        # Quant); the chain's inner bindings (skipped); a cast whose integers the source's
        # producer already stored -> that tensor
        self.quants: dict[relax.Var, tuple[relax.Expr, rowwise.Quant]] = {}
        self.skip: set[relax.Var] = set()
        self.keep: set[relax.Var] = set()  # quantize steps left to TVM's ops
        self.stored: dict[relax.Var, relax.Expr] = {}
        self.quant_src: dict[relax.Var, relax.Var] = {}  # float source -> its cast
        self.users: dict[relax.Var, list[relax.Var]] = {}
        self.defs: dict[relax.Var, relax.Expr] = {}

    # ---- emission helpers ----
    def emit(self, expr: relax.Expr) -> relax.Expr:
        return self.bb.emit(expr)

    def kernel(self, key: tuple, kind: str, build) -> relax.GlobalVar:
        if key not in self.kernels:
            name = f"{self.prefix}_{kind}_{len(self.kernels)}"
            self.kernels[key] = self.bb.add_func(build().with_attr("global_symbol", name), name)
        return self.kernels[key]

    def call(self, gv, args, shape, dtype: str = "float32") -> relax.Expr:
        return self.emit(relax.call_tir(gv, args, relax.TensorType(list(shape), dtype)))

    def glue(self, key: tuple, build, args, shape, node: str,
             dtype: str = "float32") -> relax.Expr:
        gv = self.kernel(key, "glue", build)
        quant = any(isinstance(part, rowwise.Quant) for part in key)
        self.record.kernels.append(KernelUse(node, "glue", gv.name_hint, op=key[0],
                                             quant=key[0] if quant else ""))
        return self.call(gv, args, shape, dtype)

    def view(self, x: relax.Expr, shape) -> relax.Expr:
        """x (a row-major tensor) seen with another shape of the same size: no copy, no
        kernel (relax's reshape would be a TIR function, hence a tuning task)."""
        shape = [int(d) for d in shape]
        if [int(d) for d in x.ty.shape] == shape:
            return x
        return self.emit(relax.op.memory.view(x, relax.ShapeExpr(shape)))

    def rowwise(self, key: tuple, build, args, flat: tuple, out_shape, node: str,
                dtype: str = "float32", flat_out: tuple | None = None) -> relax.Expr:
        """A kernel of kernels/fp32_rowwise.py on flat views: args[0] seen as `flat` (its
        other args as they are), the result (`flat_out`, default `flat`) seen as out_shape."""
        y = self.glue(key, build, [self.view(args[0], flat), *args[1:]], flat_out or flat,
                      node, dtype)
        return self.view(y, out_shape)

    # ---- forms of a value ----
    def value(self, expr: relax.Expr):
        return self.vals.get(expr, expr) if isinstance(expr, relax.Var) else expr

    def resolve(self, expr: relax.Expr):
        """The value of expr with a pending conv/linear emitted (once)."""
        v = self.value(expr)
        if isinstance(v, Pending):
            v = self.emit_pending(v)
            self.vals[expr] = v
        return v

    def plain(self, expr: relax.Expr) -> relax.Expr:
        """The value of `expr` in torch layout (emitting conversions as needed)."""
        v = self.resolve(expr)
        if isinstance(v, _Padded):
            if v.plain is None:
                x = self.plain(v.src)
                shape = _ints(x.ty.shape)
                top, bottom, left, right = v.borders
                pads = ((0, 0), (0, 0), (top, bottom), (left, right))
                out = (shape[0], shape[1], shape[2] + top + bottom, shape[3] + left + right)
                n = int(np.prod(shape))
                v.plain = self.rowwise(("pad", shape, pads),
                                       lambda: rowwise.pad_kernel(shape, pads),
                                       [self.view(x, (n,))], (n,), out, "pad",
                                       flat_out=(int(np.prod(out)),))
            return v.plain
        if isinstance(v, _Flat):
            if v.plain is None:
                v.plain = self.view(v.expr, v.shape4)
            return v.plain
        if isinstance(v, _Stored):
            raise FallBack(f"{expr.name}: only its quantized integers were stored")
        if isinstance(v, _Scaled):
            if v.plain is None:
                x = self.plain(v.src)
                shape = _ints(x.ty.shape)
                n = int(np.prod(shape))
                v.plain = self.rowwise(("scale", n, v.scale),
                                       lambda: rowwise.scale_kernel(n, v.scale), [x], (n,),
                                       shape, "scale")
            return v.plain
        if not isinstance(v, Nhwc):
            return v
        if v.plain is None:
            shape = v.shape
            if v.rows:
                m, cp = shape
                v.plain = v.expr if cp == v.c and self.dtype == "float32" else self.glue(
                    ("crop", m, cp, v.c), lambda: glue.crop_kernel(m, cp, v.c, self.dtype),
                    [v.expr],
                    (m, v.c), "crop")
            else:
                n, h, w, cp = shape
                v.plain = self.glue(("to_nchw", n, h, w, cp, v.c),
                                    lambda: glue.to_nchw_kernel(n, h, w, cp, v.c, self.dtype),
                                    [v.expr],
                                    (n, v.c, h, w), "to_nchw")
        return v.plain

    def nhwc(self, expr: relax.Expr, cp: int | None = None,
             pad: tuple[int, int, int, int] = (0, 0, 0, 0), node: str = "") -> relax.Expr:
        """An NHWC (padded) tensor of the value for one of our kernels: channels cp (default
        whatever it carries), `pad` (top, bottom, left, right) zero rows/columns around (a
        pad op in front adds its own)."""
        v = self.value(expr)
        if isinstance(v, _Padded):
            pad = tuple(a + b for a, b in zip(pad, v.borders, strict=True))
            key = (cp, pad)
            if key not in v.nhwc:
                v.nhwc[key] = self.nhwc(v.src, cp, pad, node)
            return v.nhwc[key]
        if any(pad) and isinstance(v, Pending) and self.uses.get(expr, 0) == 1 \
                and getattr(v.family, "PADDED_OUTPUT", False):
            # its only consumer is this padded conv: the producer writes the padded tensor
            out = self.emit_pending(v, pad)
            if cp is not None and out.shape[-1] != cp:
                raise FallBack(f"channels {out.shape[-1]} != {cp}")
            return out.expr
        v = self.resolve(expr)
        if isinstance(v, Nhwc) and not v.rows:
            n, h, w, have = v.shape
            if cp is not None and cp != have:
                raise FallBack(f"channels {have} != {cp}")
            if not any(pad):
                return v.expr
            top, bottom, left, right = pad
            return self.glue(("pad", n, h, w, have, pad),
                             lambda: glue.pad_kernel(n, h, w, have, pad, self.dtype),
                             [v.expr], (n, h + top + bottom, w + left + right, have), node,
                             self.dtype)
        x = self.plain(expr)
        shape = [int(d) for d in x.ty.shape]
        if len(shape) != 4:
            raise FallBack("not a 4-D tensor")
        n, c, h, w = shape
        cp = c if cp is None else cp
        top, bottom, left, right = pad
        return self.glue(("to_nhwc", n, c, h, w, pad, cp),
                         lambda: glue.to_nhwc_kernel(n, c, h, w, pad, cp, self.dtype), [x],
                         (n, h + top + bottom, w + left + right, cp), node, self.dtype)

    # ---- our kernels ----
    def emit_pending(self, p: Pending, pad: tuple[int, int, int, int] = (0, 0, 0, 0)) -> Nhwc:
        """Emit the pending conv/linear; with `pad` (top, bottom, left, right), into a
        zero-bordered output (a padded value standing for nothing else: only the consumer
        that asked for it reads it)."""
        top, bottom, left, right = pad
        ep = Epilogue(p.act, p.residual is not None, (top, left), (bottom, right),
                      p.affine is not None, p.pool)
        layer = Layer(**{**p.layer.__dict__, "epilogue": ep})
        family = p.family
        if layer.kind == "linear":
            v = self.resolve(p.src)
            x = v.expr if isinstance(v, Nhwc) and v.rows else self.half(self.plain(p.src))
        else:
            ph, pw = layer.padding
            x = self.nhwc(p.src, layer.cp if not layer.depthwise else
                          family.shape(layer, self.target).c, (ph, ph, pw, pw), p.node)
        label = ""
        if p.dense is not None:  # decided after its producers: in program order
            family = self.sparse_or_dense(p, layer)
            rec = self.record.sparse[-1]
            label = f"{rec.label} s={rec.sparsity:.2f}" if rec.converted else ""
        packed = (family.pack(layer, self.target, p.weight, p.bias) if p.affine is None
                  else family.pack(layer, self.target, p.weight, p.bias, affine=p.affine))
        s = family.shape(layer, self.target)
        out = (layer.w, s.k) if layer.kind == "linear" else \
            (layer.n, s.oh // p.pool, s.ow, s.k if hasattr(s, "k") else s.c)
        args = [x, *(relax.const(a, "int32") if a.dtype == np.int32 else
                     relax.const(a.astype(self.dtype), self.dtype) for a in packed)]
        if p.residual is not None:
            if p.residual.shape != list(out):
                raise FallBack("residual shape")
            args.append(p.residual.expr)
        if any(pad):
            out = (out[0], out[1] + top + bottom, out[2] + left + right, out[3])
        key = (family.NAME, s, layer.epilogue)
        gv = self.kernel(key, family.NAME.removeprefix("fp32_"),
                         lambda: family.emit(layer, self.target))
        vec = vectors(self.target, layer.dtype)
        self.record.kernels.append(KernelUse(p.node, family.NAME, gv.name_hint,
                                             vec.instruction, vec.register, macs=s.macs,
                                             layer=label))
        return Nhwc(self.call(gv, args, out, self.dtype), layer.k, rows=layer.kind == "linear")

    def half(self, x: relax.Expr) -> relax.Expr:
        """A torch-layout float32 value as the lowering's dtype (FP16: a cast kernel)."""
        if self.dtype == "float32":
            return x
        shape = _ints(x.ty.shape)
        n = int(np.prod(shape))
        return self.rowwise(("cast", n, "float32", self.dtype),
                            lambda: rowwise.cast_kernel(n, "float32", self.dtype), [x], (n,),
                            shape, "to_half", dtype=self.dtype)

    def sparse_or_dense(self, p: Pending, layer: Layer):
        """A +sparse candidate, with its final weight and epilogue: the sparse family if
        `select` (timing both kernels on equal NHWC tensors) says so; recorded for the row's
        sparse_layers column."""
        rec = SparseLayer(len(self.record.sparse), "conv2d", tuple(p.weight.shape),
                          layer.sparsity)
        self.record.sparse.append(rec)
        rec.converted = self.select is None or bool(
            self.select(rec, layer, p.family, p.dense, p.weight, p.bias))
        if not rec.converted and not rec.reason:
            rec.reason = "dense measured faster"
        return p.family if rec.converted else p.dense

    # ---- the walk ----
    def run(self, func: relax.Function) -> relax.Function:
        body = func.body
        if not isinstance(body, relax.SeqExpr) or len(body.blocks) != 1 or \
                not isinstance(body.blocks[0], relax.DataflowBlock):
            raise FallBack("main is not one dataflow block")
        block = body.blocks[0]
        for b in block.bindings:
            for var in relax.analysis.free_vars(b.value):
                self.uses[var] = self.uses.get(var, 0) + 1
                self.users.setdefault(var, []).append(b.var)
        for var in relax.analysis.free_vars(body.body):
            self.uses[var] = self.uses.get(var, 0) + 1
        self.quantize_chains(block)
        with self.bb.function("fp32_main", list(func.params)):
            with self.bb.dataflow():
                for b in block.bindings:
                    if not isinstance(b, relax.VarBinding):
                        raise FallBack("match_cast binding")
                    self.binding(b.var, b.value)
                result = self.substitute(body.body)
                gv = self.bb.emit_output(result)
            self.bb.emit_func_output(gv)
        mod = self.bb.get()
        return mod["fp32_main"]

    def quantize_chains(self, block: relax.DataflowBlock) -> None:
        """Find the int8 lowering's quantizes (passes/int8.py quantize_expr: x * (1 / s),
        round, + z, max, min, cast to uint8/int8; scalar constants, each step used once) before
        the walk, so the kernel producing x (layer norm, GELU, a transpose) can store the
        integers instead of x, and the rest become one quantize kernel."""
        self.defs = defs = {b.var: b.value for b in block.bindings}
        steps = ("relax.minimum", "relax.maximum", "relax.add", "relax.round", "relax.multiply")
        for var, value in defs.items():
            if _op(value) != "relax.astype" or str(value.attrs.dtype) not in ("uint8", "int8"):
                continue
            cur, chain, consts = value.args[0], [], {}
            for step in steps:
                v = defs.get(cur)
                if v is None or _op(v) != step or self.uses.get(cur, 0) != 1:
                    break
                chain.append(cur)
                if step != "relax.round":
                    c = _const(defs.get(v.args[1], v.args[1]))
                    if c is None or c.size != 1:
                        break
                    consts[step] = float(c.reshape(-1)[0])
                cur = v.args[0]
            else:
                if cur.ty.dtype != "float32":
                    continue
                if not self.feeds_kernels(var):  # TVM's: fused with its integer consumers
                    self.keep.update(chain)
                    continue
                self.skip.update(chain)
                self.quant_src[cur] = var
                self.quants[var] = (cur, rowwise.Quant(
                    float(np.float32(consts["relax.multiply"])),
                    int(consts["relax.add"]), int(consts["relax.maximum"]),
                    int(consts["relax.minimum"]), str(value.attrs.dtype)))

    def feeds_kernels(self, var: relax.Var) -> bool:
        """Whether var's integers go only (through reshapes) into kernels of ours (call_tir):
        then its quantize is ours too, else TVM keeps it fused with its integer consumers."""
        users = self.users.get(var, [])
        return bool(users) and all(
            _op(self.defs[u]) == "relax.call_tir" or
            (_op(self.defs[u]) == "relax.reshape" and self.feeds_kernels(u)) for u in users)

    def quantized_by(self, var: relax.Var) -> tuple[list[relax.Var], rowwise.Quant] | None:
        """If var's value is only quantized (through free reshapes used once): those reshapes
        and the cast whose integers var's producer may store instead, and the Quant."""
        path = []
        while self.uses.get(var, 0) == 1:
            cast = self.quant_src.get(var)
            if cast is not None:
                return [*path, cast], self.quants[cast][1]
            (user,) = self.users[var]
            if _op(self.defs.get(user)) != "relax.reshape":
                return None
            path.append(user)
            var = user
        return None

    def rowwise_or_stored(self, var: relax.Var, key: tuple, build, args, flat: tuple,
                          shape) -> relax.Expr | _Stored:
        """A rowwise kernel for var (`build(quant)`, key + (quant,)); when var only feeds a
        quantize, the kernel stores that quantize's integers instead of var (its cast takes
        the tensor, the reshapes between are skipped)."""
        def emit(q: rowwise.Quant | None, out):
            return self.rowwise((*key, q), lambda: build(q), args, flat, out, var.name,
                                rowwise.out_dtype(q))

        found = self.quantized_by(var)
        if found is None:
            return emit(None, shape)
        path, q = found
        cast = path[-1]
        self.stored[cast] = emit(q, _ints(cast.ty.shape))
        self.skip.update(path[:-1])
        return _Stored(cast)

    def quantize(self, cast: relax.Var) -> relax.Expr:
        """A float value into an int8 layer: one quantize kernel (torch layout, flat)."""
        src, q = self.quants[cast]
        shape = _ints(cast.ty.shape)
        n = int(np.prod(shape))
        return self.rowwise(("quantize", n, q), lambda: rowwise.quantize_kernel(n, q),
                            [self.plain(src)], (n,), shape, cast.name, q.dtype)

    def binding(self, var: relax.Var, value: relax.Expr) -> None:
        if var in self.skip:  # a step of a quantize (or a reshape) its cast emits
            return
        if var in self.stored:  # its integers were stored by the producer
            self.vals[var] = self.stored.pop(var)
            return
        if var in self.quants:
            self.vals[var] = self.quantize(var)
            return
        if isinstance(value, tvm.ir.expr.Constant):
            self.vals[var] = value
            return
        op = _op(value)
        handler = {"relax.nn.conv2d": self.conv2d, "relax.matmul": self.matmul,
                   "relax.add": self.arith, "relax.subtract": self.arith,
                   "relax.multiply": self.arith, "relax.divide": self.arith,
                   "relax.nn.relu": self.act, "relax.clip": self.act,
                   "relax.nn.max_pool2d": self.max_pool, "relax.mean": self.mean,
                   "relax.reshape": self.reshape, "relax.nn.layer_norm": self.layer_norm,
                   "relax.nn.softmax": self.softmax, "relax.nn.gelu": self.gelu,
                   "relax.permute_dims": self.permute_dims,
                   "relax.broadcast_to": self.broadcast_to, "relax.take": self.take,
                   "relax.astype": self.astype, "relax.nn.pad": self.pad,
                   "relax.strided_slice": self.strided_slice,
                   "relax.expand_dims": self.expand_dims, "relax.sigmoid": self.sigmoid}.get(op)
        if (op not in _ANY_DTYPE and not _float_args(value)) or var in self.keep:
            handler = None  # integer data (an int8 module's): not for our float kernels
        if handler is not None:
            try:
                out = handler(var, value)
            except FallBack:
                out = None
            if out is not None:
                self.vals[var] = out
                return
        if op and op != "relax.call_tir":  # call_tir: an earlier pass's kernel (sparse)
            self.record.relax_ops.append(op.removeprefix("relax."))
        self.vals[var] = self.emit(self.substitute(value))

    def substitute(self, expr: relax.Expr) -> relax.Expr:
        """expr with every variable replaced by its torch-layout value."""
        if isinstance(expr, relax.Var):
            return self.plain(expr) if expr in self.vals else expr
        if isinstance(expr, relax.Tuple):
            return relax.Tuple([self.substitute(f) for f in expr.fields])
        if isinstance(expr, relax.TupleGetItem):
            return relax.TupleGetItem(self.substitute(expr.tuple_value), expr.index)
        if isinstance(expr, relax.Call):
            return relax.Call(expr.op, [self.substitute(a) for a in expr.args], expr.attrs,
                              expr.ty_args)
        return expr

    # ---- handlers: return the new value of the binding, or None / raise FallBack ----
    def conv2d(self, var, call):
        a = call.attrs
        w = _const(self.value(call.args[1]))
        if w is None or a.data_layout != "NCHW" or a.kernel_layout != "OIHW" or \
                a.out_layout != "NCHW":
            return None
        top, left, bottom, right = _ints(a.padding)
        if (top, left) != (bottom, right):
            return None
        n, c, h, wd = _ints(call.args[0].ty.shape)
        cp = self.carried(call.args[0], rows=False)
        layer = Layer("conv2d", c, int(w.shape[0]), h, wd, n, _ints(w.shape[2:]),
                      _ints(a.strides),
                      (top, left), _ints(a.dilation), int(a.groups), self.dtype, cp=cp,
                      sparsity=weight_sparsity(w) if "sparse" in self.options else 0.0)
        if layer.groups != 1 and not layer.depthwise:
            return None
        family = registry.choose(layer, self.target, self.options)
        if family is None:
            return None
        dense = None
        if family.NAME in registry.SPARSE:  # a candidate: the dense family it is timed against
            dense = registry.choose(layer, self.target, self.options - {"sparse"})
        return Pending(layer, family, call.args[0], w.astype(np.float32),
                       np.zeros(w.shape[0], np.float32), var.name,
                       out_shape=_ints(var.ty.shape), dense=dense)

    def matmul(self, var, call):
        w = _const(self.value(call.args[1]))
        x_shape = _ints(call.args[0].ty.shape)
        if w is None:
            return self.bmm(var, call)
        if w.ndim != 2 or len(x_shape) != 2:
            return None
        cp = self.carried(call.args[0], rows=True)
        layer = Layer("linear", int(w.shape[0]), int(w.shape[1]), 1, x_shape[0],
                      dtype=self.dtype, cp=cp)
        family = registry.choose(layer, self.target, self.options)
        if family is None:
            return None
        return Pending(layer, family, call.args[0], np.ascontiguousarray(w.T, np.float32),
                       np.zeros(w.shape[1], np.float32), var.name,
                       out_shape=_ints(var.ty.shape))

    def bmm(self, var, call):
        """A matmul of two activations ([..., m, k] @ [..., k, n], equal leading axes: one
        batch of their product; or 2-D) on the batched matmul family."""
        a_shape, w_shape = _ints(call.args[0].ty.shape), _ints(call.args[1].ty.shape)
        if len(a_shape) != len(w_shape) or len(a_shape) < 2 or \
                a_shape[:-2] != w_shape[:-2] or a_shape[-1] != w_shape[-2] or \
                call.args[0].ty.dtype != "float32" or call.args[1].ty.dtype != "float32":
            return None
        b = int(np.prod(a_shape[:-2]))
        (m, k), n = a_shape[-2:], w_shape[-1]
        layer = Layer("matmul", k, n, 1, m, b)
        family = registry.choose(layer, self.target)
        if family is None:
            return None
        a = self.view(self.plain(call.args[0]), (b, m, k))
        w = self.view(self.plain(call.args[1]), (b, k, n))
        s = family.shape(layer, self.target)
        gv = self.kernel((family.NAME, s), family.NAME.removeprefix("fp32_"),
                         lambda: family.emit(layer, self.target))
        vec = vectors(self.target, layer.dtype)
        self.record.kernels.append(KernelUse(var.name, family.NAME, gv.name_hint,
                                             vec.instruction, vec.register, macs=s.macs))
        return self.view(self.call(gv, [a, w], (b, m, n)), _ints(var.ty.shape))

    def carried(self, expr: relax.Expr, rows: bool) -> int | None:
        """The channels the value of expr carries in our layout (NHWC, or a linear's rows),
        padding included, once our kernels produce it; None if it is in torch layout."""
        v = self.value(expr)
        if isinstance(v, _Padded):
            return None if rows else self.carried(v.src, rows)
        if isinstance(v, Pending) and (v.layer.kind == "linear") == rows:
            s = v.family.shape(v.layer, self.target)
            return getattr(s, "k", None) or s.c
        if isinstance(v, Nhwc) and v.rows == rows:
            return v.shape[-1]
        return None

    def _fusable(self, expr) -> Pending | None:
        if not isinstance(expr, relax.Var) or self.uses.get(expr, 0) != 1:
            return None
        v = self.vals.get(expr)
        return v if isinstance(v, Pending) else None

    def _per_channel(self, p: Pending, const: np.ndarray) -> np.ndarray | None:
        """const as one value per output channel, if it broadcasts that way over the output."""
        k = p.layer.k
        shape = const.shape
        nd = len(p.out_shape)
        if const.size == 1:
            return np.full(k, float(const.reshape(-1)[0]), np.float32)
        full = (1,) * (nd - len(shape)) + shape
        axis = 1 if p.layer.kind == "conv2d" else nd - 1
        if full[axis] != k or any(d != 1 for i, d in enumerate(full) if i != axis):
            return None
        return const.reshape(k).astype(np.float32)

    def arith(self, var, call):
        op = _op(call)
        a, b = call.args
        for pend_expr, other, first in ((a, b, True), (b, a, False)):
            p = self._fusable(pend_expr)
            if p is None or p.pool > 1:
                continue
            if p.act is not None:
                out = self._post_affine(p, op, _const(self.value(other)), first)
                if out is not None:
                    return out
                continue
            const = _const(self.value(other))
            if const is not None:
                vals = self._per_channel(p, const)
                if vals is None or p.residual is not None:
                    return None
                if op == "relax.add":
                    return _replace(p, bias=p.bias + vals)
                if op == "relax.subtract" and first:
                    return _replace(p, bias=p.bias - vals)
                if op == "relax.multiply":
                    return _scaled(p, vals)
                if op == "relax.divide" and first:
                    return _scaled(p, 1.0 / vals)
                return None
            if op == "relax.add" and p.residual is None and p.layer.kind == "conv2d" \
                    and _ints(other.ty.shape) == p.out_shape:
                s = p.family.shape(p.layer, self.target)
                kp = getattr(s, "k", None) or s.c
                r = self.nhwc(other, kp, node=var.name)
                return _replace(p, residual=Nhwc(r, p.layer.k))
        return self.elementwise(var, call)

    def _post_affine(self, p: Pending, op: str, const: np.ndarray | None,
                     first: bool) -> Pending | None:
        """A per-channel constant op after the activation (a BatchNorm after ReLU): into
        the epilogue's scale and shift (exact: the same float operations in one order)."""
        if const is None or not getattr(p.family, "AFFINE_EPILOGUE", False):
            return None
        vals = self._per_channel(p, const)
        if vals is None:
            return None
        scale, shift = p.affine or (np.ones(p.layer.k, np.float32),
                                    np.zeros(p.layer.k, np.float32))
        if op == "relax.add":
            return _replace(p, affine=(scale, shift + vals))
        if op == "relax.subtract" and first:
            return _replace(p, affine=(scale, shift - vals))
        if op == "relax.multiply":
            return _replace(p, affine=(scale * vals, shift * vals))
        if op == "relax.divide" and first:
            return _replace(p, affine=(scale / vals, shift / vals))
        return None

    def elementwise(self, var, call):
        """In torch layout: a + b of one shape (either may be a constant), x * scalar
        constant (kept pending: a softmax takes the scale into its exponent)."""
        op = _op(call)
        a, b = call.args
        shape = _ints(var.ty.shape)
        if call.args[0].ty.dtype != "float32" or call.args[1].ty.dtype != "float32":
            return None
        if op == "relax.multiply":
            for src, other in ((a, b), (b, a)):
                c = _const(self.value(other))
                if c is not None and c.size == 1 and _ints(src.ty.shape) == shape:
                    return _Scaled(src, float(c.reshape(-1)[0]))
            return None
        if op != "relax.add" or _ints(a.ty.shape) != shape or _ints(b.ty.shape) != shape:
            return None
        n = int(np.prod(shape))
        xs = [self.view(self.plain(x) if _const(self.value(x)) is None
                        else relax.const(_const(self.value(x)).astype(np.float32)), (n,))
              for x in (a, b)]
        return self.rowwise(("add", n), lambda: rowwise.add_kernel(n), xs, (n,), shape,
                            var.name)

    def layer_norm(self, var, call):
        a = call.attrs
        shape = _ints(var.ty.shape)
        gamma, beta = (_const(self.value(x)) for x in call.args[1:3])
        if [int(x) % len(shape) for x in a.axes] != [len(shape) - 1] or gamma is None or \
                beta is None or not (a.center and a.scale):
            return None
        rows, d = int(np.prod(shape[:-1])), shape[-1]
        eps = float(a.epsilon)
        args = [self.plain(call.args[0]), relax.const(gamma.astype(np.float32)),
                relax.const(beta.astype(np.float32))]
        return self.rowwise_or_stored(var, ("layer_norm", rows, d, eps),
                                      lambda q: rowwise.layer_norm_kernel(rows, d, eps, q),
                                      args, (rows, d), shape)

    def softmax(self, var, call):
        shape = _ints(var.ty.shape)
        if int(call.attrs.axis) % len(shape) != len(shape) - 1:
            return None
        src, scale = call.args[0], 1.0
        v = self.value(src)
        if isinstance(v, _Scaled) and v.scale > 0 and self.uses.get(src, 0) == 1:
            src, scale = v.src, v.scale
        rows, d = int(np.prod(shape[:-1])), shape[-1]
        return self.rowwise(("softmax", rows, d, scale),
                            lambda: rowwise.softmax_kernel(rows, d, scale), [self.plain(src)],
                            (rows, d), shape, var.name)

    def gelu(self, var, call):
        shape = _ints(var.ty.shape)
        n = int(np.prod(shape))
        return self.rowwise_or_stored(var, ("gelu", n), lambda q: rowwise.gelu_kernel(n, q),
                                      [self.plain(call.args[0])], (n,), shape)

    def permute_dims(self, var, call):
        src_shape = _ints(call.args[0].ty.shape)
        nd = len(src_shape)
        axes = (tuple(int(x) % nd for x in call.attrs.axes) if call.attrs.axes is not None
                else tuple(range(nd - 1, -1, -1)))
        same = self._nhwc_order(call.args[0], axes)
        if same is not None:
            return self.view(same, _ints(var.ty.shape))
        n = int(np.prod(src_shape))
        return self.rowwise_or_stored(var, ("transpose", src_shape, axes),
                                      lambda q: rowwise.transpose_kernel(src_shape, axes, q),
                                      [self.plain(call.args[0])], (n,), _ints(var.ty.shape))

    def _nhwc_order(self, expr, axes: tuple[int, ...]) -> relax.Expr | None:
        """The NHWC tensor of a value of ours whose permutation `axes` is already its memory
        order: NCHW -> NHWC, or (0, 2, 1, 3) of a width-1 image (CREPE's flatten before the
        classifier), with no padded channels; None otherwise."""
        v = self.value(expr)
        if not isinstance(v, Nhwc | Pending) or len(axes) != 4:
            return None
        if isinstance(v, Pending) and v.layer.kind == "linear":
            return None
        v = self.resolve(expr)
        w, cp = v.shape[2:]
        if v.rows or cp != v.c or not (axes == (0, 2, 3, 1) or (axes == (0, 2, 1, 3)
                                                                and w == 1)):
            return None
        return v.expr

    def expand_dims(self, var, call):
        """A new axis of size 1: a free view of the torch-layout value."""
        return self.view(self.plain(call.args[0]), _ints(var.ty.shape))

    def sigmoid(self, var, call):
        """Into the epilogue of the conv/linear it follows (CREPE's classifier), else its own
        kernel in torch layout."""
        if call.args[0].ty.dtype != "float32":
            return None
        p = self._fusable(call.args[0])
        # a conv's padded output channels must stay 0 (sigmoid(0) = 0.5): whole vectors only;
        # a linear's padded columns are cropped before anything reads them
        if p is not None and p.act is None and p.affine is None and p.pool == 1 and \
                self.dtype == "float32" and (p.layer.kind == "linear"
                                             or p.layer.k % vector_lanes(self.target) == 0):
            return _replace(p, act="sigmoid")
        shape = _ints(var.ty.shape)
        n = int(np.prod(shape))
        return self.rowwise(("sigmoid", n), lambda: rowwise.sigmoid_kernel(n),
                            [self.plain(call.args[0])], (n,), shape, var.name)

    def broadcast_to(self, var, call):
        """A broadcast to the shape it already has (the importer's, around a matmul)."""
        if _ints(var.ty.shape) != _ints(call.args[0].ty.shape):
            return None
        return self.resolve(call.args[0])

    def take(self, var, call):
        """An embedding: rows of a constant table picked by 1-D integer ids."""
        table = _const(self.value(call.args[0]))
        ids = call.args[1]
        if table is None or table.ndim != 2 or int(call.attrs.axis) % 2 != 0 or \
                len(ids.ty.shape) != 1 or table.dtype != np.float32:
            return None
        (vocab, d), n, dtype = table.shape, int(ids.ty.shape[0]), str(ids.ty.dtype)
        return self.glue(("take", vocab, d, n, dtype),
                         lambda: rowwise.take_rows_kernel(vocab, d, n, dtype),
                         [relax.const(table), self.plain(ids)], (n, d), var.name)

    def astype(self, var, call):
        """An integer cast (token ids)."""
        src, dst = str(call.args[0].ty.dtype), str(call.attrs.dtype)
        if src != "int64" or dst not in ("int32", "int64"):  # (int8 modules: TVM fuses theirs)
            return None
        shape = _ints(var.ty.shape)
        n = int(np.prod(shape))
        return self.rowwise(("cast", n, src, dst), lambda: rowwise.cast_kernel(n, src, dst),
                            [self.plain(call.args[0])], (n,), shape, var.name, dst)

    def act(self, var, call):
        if _op(call) == "relax.nn.relu":
            act = "relu"
        else:
            lo, hi = (float(getattr(x.value, "value", x.value)) for x in call.args[1:3])
            act = {(0.0, 6.0): "relu6", (0.0, float("inf")): "relu"}.get((lo, hi))
        if act is None or call.args[0].ty.dtype != "float32":
            return None
        p = self._fusable(call.args[0])
        if p is not None and p.act is None and p.affine is None:
            return _replace(p, act=act)  # (after a fused max pool too: they commute)
        # not after a kernel of ours (e.g. a residual add of a sparse conv's output): its own
        # kernel, on our NHWC form if the value has one (FP32), else in torch layout
        v = self.resolve(call.args[0])
        if not (isinstance(v, Nhwc) and self.dtype == "float32"):
            v = None
        x = v.expr if v is not None else self.plain(call.args[0])
        shape = _ints(x.ty.shape)
        n = int(np.prod(shape))
        y = self.rowwise(("clamp", n, act), lambda: rowwise.clamp_kernel(n, act), [x], (n,),
                         shape, var.name)
        return Nhwc(y, v.c, rows=v.rows) if v is not None else y

    def as_nhwc(self, expr: relax.Expr) -> Nhwc | None:
        """The value of a 4-D float tensor in NHWC (converted from torch layout if another
        pass's kernel, e.g. a sparse conv, produced it), or None."""
        v = self.resolve(expr)
        if isinstance(v, Nhwc):
            return None if v.rows else v
        shape = _ints(expr.ty.shape)
        if len(shape) != 4 or expr.ty.dtype != "float32":
            return None
        return Nhwc(self.nhwc(expr), shape[1])

    def max_pool(self, var, call):
        a = call.attrs
        fused = self._pool_epilogue(var, call)
        if fused is not None:
            return fused
        src = self.as_nhwc(call.args[0])
        if src is None or a.layout != "NCHW" or \
                _ints(a.dilation) != (1, 1):
            return None
        top, left, bottom, right = _ints(a.padding)
        if (top, left) != (bottom, right):
            return None
        n, h, w, cp = src.shape
        s = glue.Pool(n, h, w, cp, _ints(a.pool_size), _ints(a.strides), (top, left),
                      bool(a.ceil_mode))
        if not glue.pool_fits(s):
            return None
        y = self.glue(("max_pool", s), lambda: glue.max_pool_kernel(s, self.dtype), [src.expr],
                      (n, s.oh, s.ow, cp), var.name, self.dtype)
        return Nhwc(y, src.c)

    def _pool_epilogue(self, var, call) -> Pending | None:
        """A (P x 1) max pool, stride P, of a conv tiled down its columns: the max over the
        rows its register block holds, in the conv's epilogue (CREPE's 2x1 pools)."""
        a = call.attrs
        p = self._fusable(call.args[0])
        if p is None or p.pool > 1 or p.residual is not None or a.layout != "NCHW" or \
                not getattr(p.family, "POOL_EPILOGUE", False) or a.ceil_mode or \
                _ints(a.dilation) != (1, 1) or any(_ints(a.padding)):
            return None
        (kh, kw), stride = _ints(a.pool_size), _ints(a.strides)
        s = p.family.shape(p.layer, self.target)
        if kw != 1 or kh < 2 or stride != (kh, 1) or not s.down_columns or s.oh % kh:
            return None
        return _replace(p, pool=kh, out_shape=_ints(var.ty.shape))

    def mean(self, var, call):
        shape = _ints(call.args[0].ty.shape)
        axes = sorted(int(x) % len(shape) for x in call.attrs.axis) if call.attrs.axis else []
        src = self.as_nhwc(call.args[0]) if axes == [2, 3] and len(shape) == 4 else None
        if src is None:
            return self.mean_axis(var, call)
        n, h, w, cp = src.shape
        y = self.glue(("mean", n, h, w, cp, src.c),
                      lambda: glue.global_mean_kernel(n, h, w, cp, src.c, self.dtype),
                      [src.expr],
                      (n, src.c), var.name)
        if call.attrs.keepdims:
            return _Flat(y, (n, src.c, 1, 1))
        return y

    def pad(self, var, call):
        """A constant-zero pad in torch layout (the sparse conv pass pads its NCHW input)."""
        a = call.attrs
        shape = _ints(call.args[0].ty.shape)
        widths = _ints(a.pad_width)
        if a.pad_mode != "constant" or float(a.pad_value) != 0.0 or \
                call.args[0].ty.dtype != "float32" or len(widths) != 2 * len(shape):
            return None
        pads = tuple((widths[2 * i], widths[2 * i + 1]) for i in range(len(shape)))
        if any(b < 0 or e < 0 for b, e in pads):
            return None
        if len(shape) == 4 and pads[:2] == ((0, 0), (0, 0)):
            # rows/columns only: lazily, so a conv of ours reads it in NHWC (its producer
            # writing the borders, or one NHWC pad); torch layout only if asked for
            return _Padded(call.args[0], (*pads[2], *pads[3]))
        out = _ints(var.ty.shape)
        n = int(np.prod(shape))
        return self.rowwise(("pad", shape, pads), lambda: rowwise.pad_kernel(shape, pads),
                            [self.view(self.plain(call.args[0]), (n,))], (n,), out, var.name,
                            flat_out=(int(np.prod(out)),))

    def strided_slice(self, var, call):
        """x[..., begin:end] (step 1, the last axis only): the sparse conv's padded columns."""
        shape = _ints(call.args[0].ty.shape)
        axes, begin, end = (_ints(x) for x in call.args[1:4])
        if len(call.args) > 4 or axes != (len(shape) - 1,) or \
                call.args[0].ty.dtype != "float32":
            return None
        out = _ints(var.ty.shape)
        b = begin[0] % shape[-1]
        rows, d = int(np.prod(shape[:-1])), shape[-1]
        if out[-1] != min(end[0], d) - b:
            return None
        e = b + out[-1]
        return self.rowwise(("slice", rows, d, b, e), lambda: rowwise.slice_last_kernel(
            rows, d, b, e), [self.plain(call.args[0])], (rows, d), out, var.name,
            flat_out=(rows, e - b))

    def mean_axis(self, var, call):
        """The mean over one axis of a torch-layout tensor (the encoder's mean over tokens)."""
        shape = _ints(call.args[0].ty.shape)
        axes = [int(x) % len(shape) for x in call.attrs.axis] if call.attrs.axis else []
        if len(axes) != 1 or call.args[0].ty.dtype != "float32":
            return None
        ax = axes[0]
        outer, r, d = int(np.prod(shape[:ax])), shape[ax], int(np.prod(shape[ax + 1:]))
        x = self.view(self.plain(call.args[0]), (outer, r, d))
        y = self.glue(("mean_axis", outer, r, d), lambda: rowwise.mean_axis_kernel(outer, r, d),
                      [x], (outer, d), var.name)
        return self.view(y, _ints(var.ty.shape))

    def reshape(self, var, call):
        """A reshape is a free view (a flatten after our global mean: nothing at all)."""
        src = self.value(call.args[0])
        if isinstance(src, _Flat) and _ints(var.ty.shape) == _ints(src.expr.ty.shape):
            return src.expr
        return self.view(self.plain(call.args[0]), _ints(var.ty.shape))


@dataclass
class _Flat:
    """A global mean's [n, c] result standing for its keepdims [n, c, 1, 1] shape: a
    following flatten is free; anything else gets the 4-D reshape."""

    expr: relax.Expr
    shape4: tuple[int, ...]
    plain: relax.Expr | None = None


@dataclass
class _Padded:
    """src with zero rows/columns around (borders: top, bottom, left, right), not yet
    emitted: a conv of ours takes it as its padded NHWC input (nhwc), anything else gets
    the torch-layout pad (plain)."""

    src: relax.Expr
    borders: tuple[int, int, int, int]
    plain: relax.Expr | None = None
    nhwc: dict = field(default_factory=dict)  # (cp, borders) -> its NHWC tensor


@dataclass
class _Stored:
    """A float value only quantized, whose producer stored the integers (the `cast`'s
    value) instead: nothing reads the float."""

    cast: relax.Var


@dataclass
class _Scaled:
    """src * scale (a scalar constant), not yet emitted: a softmax takes it into its
    exponent; anything else gets the scale kernel."""

    src: relax.Expr
    scale: float
    plain: relax.Expr | None = None


def _replace(p: Pending, **changes) -> Pending:
    return Pending(**{**p.__dict__, **changes})


def _scaled(p: Pending, vals: np.ndarray) -> Pending:
    shape = (-1,) + (1,) * (p.weight.ndim - 1)
    return _replace(p, weight=p.weight * vals.reshape(shape), bias=p.bias * vals)


@tvm.transform.module_pass(opt_level=0, name="Fp32Kernels")
class Fp32Kernels:
    """The Relax pass: `main` rewritten onto our FP32 kernels where the registry has one;
    `record` says what ran where (filled when the pass runs); `options` opt in to kernel
    families that trade accuracy for speed (registry.OPTIONS, e.g. {"winograd"}); with "sparse"
    (a `+sparse` variant) `select(SparseLayer, Layer, sparse_family, dense_family, weight,
    bias) -> bool` decides per candidate conv (None: every candidate goes sparse); `dtype`
    float16: the FP16 build's kernels (see the module doc)."""

    def __init__(self, target, options: frozenset[str] = frozenset(),
                 dtype: str = "float32", select=None) -> None:
        self.target = target
        self.options = frozenset(options)
        self.dtype = dtype
        self.select = select
        self.record = Fp32Lowering()

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        self.record = Fp32Lowering()
        if not vector_lanes(self.target, self.dtype):
            return mod
        mod = relax.transform.FoldConstant()(mod)
        mod = relax.transform.DeadCodeElimination(["main"])(mod)
        lowerer = Lowerer(mod, self.target, self.record, self.options, self.dtype,
                          self.select)
        try:
            func = lowerer.run(mod["main"])
        except Exception as e:
            self.record = Fp32Lowering(not_lowered=f"{type(e).__name__}: {e}"[:200])
            return mod
        out = lowerer.bb.get()
        funcs = {gv: f for gv, f in out.functions_items() if gv.name_hint != "fp32_main"}
        result = tvm.IRModule({gv: (func.with_attrs(mod["main"].attrs) if mod["main"].attrs
                                    else func) if gv.name_hint == "main" else f
                               for gv, f in funcs.items()})
        return relax.transform.DeadCodeElimination(["main"])(result)
