"""FP16 compile: the model computes in float16 on targets with FP16 arithmetic.

The FP32 (BN-folded) graph is imported as usual, then TVM's `ToMixedPrecision` with
`out_dtype="float16"` rewrites it: conv2d/matmul take float16 inputs and accumulate in float16
(what `fmla v.8h` / `vfmadd231ph` do; accumulating in float32 makes the multiply-adds FP32 on
converted values, FP16 storage rather than compute, which the check below refuses; it is
also why deep nets drift further from PyTorch's FP16, see results/fp16), elementwise ops
(bias add, ReLU, residual adds, pools) follow their float16 inputs, and `FoldConstant` turns
the cast weights into float16 constants, so the library stores half the bytes. TVM's policy
keeps reductions that lose precision in float16 (mean, softmax, layer norm, their sums) in
float32; the function still takes and returns float32 (cast at the edges), so runtimes and
verification are unchanged.

Without FP16 arithmetic (x86 without avx512fp16, Arm without +fullfp16) LLVM would compute
every float16 op in float32 between conversions: the pipeline refuses those rows instead of
reporting an FP32 computation as FP16. The built assembly of every kernel is read to prove
the conv/matmul kernels multiply-add in float16 (`check_fp16_asm`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgebench.compile.asm import function_bodies

# The target feature that gives FP16 arithmetic, per architecture (LLVM's names).

# Kernels that must compute in float16 for the row to count as FP16.
_REQUIRED = re.compile(r"conv|matmul|dense")
_ARM_FP_ARITH = {"fadd", "fsub", "fmul", "fmulx", "fdiv", "fmla", "fmls", "fmadd", "fmsub",
                 "fnmadd", "fnmsub", "fnmul", "fmax", "fmin", "fmaxnm", "fminnm", "faddp",
                 "fmaxp", "fminp", "fmaxnmp", "fminnmp", "fabd", "fsqrt", "fabs", "fneg",
                 "fcmgt", "fcmge", "fcmeq", "fcmle", "fcmlt", "fcmp", "fcmpe"}
_ARM_HALF = re.compile(r"^(v\d+\.(8h|4h)|h\d+)$")
# The multiply(-add)s: what a conv/matmul kernel must do in FP16 (a float16 bias add or ReLU
# after FP32 multiply-adds is FP16 storage, not FP16 compute).
_MULTIPLY = re.compile(r"^(f(n)?(mla|mls|madd|msub|mul|mulx)|v(f(n)?m(add|sub)\d{3}|mul)(ph|sh))$")
_X86_HALF = re.compile(
    r"^v(f(n)?m(add|sub)(132|213|231)|add|sub|mul|div|max|min|sqrt|cmp|u?comi)(ph|sh)$")


def fp16_passes() -> list:
    """Relax passes (after BN folding, before legalization) that make the graph float16."""
    from tvm import relax

    return [clip_as_min_max(), relax.transform.ToMixedPrecision(out_dtype="float16"),
            relax.transform.FoldConstant()]


def clip_as_min_max():
    """`clip(x, lo, hi)` (ReLU6) -> `minimum(maximum(x, lo), hi)` with tensor constants:
    TVM 0.27's ToMixedPrecision fails on clip's scalar (FloatImm) bounds ("Expected
    TensorType, but got T.float64"); maximum/minimum follow their input's float16."""
    import tvm
    from tvm import relax

    clip = tvm.ir.Op.get("relax.clip")
    scalar = (tvm.tirx.FloatImm, tvm.tirx.IntImm)

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if call.op != clip or not all(isinstance(a, scalar) for a in call.args[1:]):
                return call
            dtype = str(call.args[0].ty.dtype)
            lo, hi = (relax.const(float(a.value), dtype) for a in call.args[1:])
            return relax.op.minimum(relax.op.maximum(call.args[0], lo), hi)

    @tvm.transform.module_pass(opt_level=0, name="ClipAsMinMax")
    def rewrite(mod, _ctx):
        mutator = Rewrite(mod)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                mutator.builder_.update_func(gv, mutator.visit_expr(func))
        return mutator.builder_.get()

    return rewrite


def half_instructions(lines: list[str], arch: str) -> set[str]:
    """The FP16 arithmetic (and compares) in a function body, as `mnemonic.8h` /
    `mnemonic.4h` (vector) or `mnemonic h` (scalar half) on aarch64, the `...ph` / `...sh`
    mnemonics on x86. Conversions (fcvt, vcvtph2ps) do not count: they are what an FP32
    computation on float16 storage looks like."""
    found = set()
    for line in lines:
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        op = parts[0]
        if arch == "aarch64" and op in _ARM_FP_ARITH and len(parts) > 1:
            match = _ARM_HALF.match(parts[1])
            if match:
                found.add(f"{op}.{match.group(2)}" if match.group(2) else f"{op} h")
        elif arch == "x86_64" and _X86_HALF.match(op):
            found.add(op)
    return found


@dataclass
class FP16Kernel:
    """One compiled kernel: whether it must compute in float16, what its buffers are, and
    the FP16 arithmetic found in its assembly."""

    name: str
    required: bool  # conv/matmul: the row fails without FP16 multiply-adds here
    half_buffers: bool  # takes or produces float16 tensors
    instructions: set[str] = field(default_factory=set)

    @property
    def multiplies(self) -> bool:
        """FP16 multiply(-add) instructions in the body."""
        return any(_MULTIPLY.match(re.split(r"[. ]", i)[0]) for i in self.instructions)

    @property
    def ok(self) -> bool:
        return not self.required or (self.half_buffers and self.multiplies)

    def describe(self) -> str:
        return f"{self.name}={self.fact()}"

    def fact(self) -> str:
        """What its assembly computes in (its fp16_kernels entry after the name)."""
        if not self.half_buffers:
            return "fp32"
        shown = " ".join(sorted(self.instructions, key=lambda i: (not i.endswith("h"), i)))
        if self.required and not self.multiplies:
            return "fp16(NO fp16 multiply-add" + (f": {shown})" if shown else ")")
        return f"fp16({shown or 'no fp16 arithmetic'})"


@dataclass
class FP16Check:
    """Every kernel of an FP16 build and what its assembly computes in (the fp16_kernels
    column)."""

    kernels: list[FP16Kernel]

    @property
    def missing(self) -> list[FP16Kernel]:
        return [k for k in self.kernels if not k.ok]

    def summary(self) -> str:
        return ";".join(k.describe() for k in self.kernels)

    def error(self) -> str:
        return ("FP16 build has conv/matmul kernels without FP16 multiply-adds: "
                + ", ".join(k.describe() for k in self.missing))


def _kernel_dtypes(module) -> dict[str, set[str]]:
    """Per kernel called from `main` (in execution order), the dtypes of its tensors."""
    import tvm
    from tvm import relax

    dtypes: dict[str, set[str]] = {}

    def visit(e) -> None:
        if (isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op)
                and e.op.name == "relax.call_tir"):
            outs = e.ty.fields if hasattr(e.ty, "fields") else [e.ty]
            types = [a.ty for a in e.args[1].fields] + list(outs)
            dtypes.setdefault(e.args[0].name_hint, set()).update(
                str(t.dtype) for t in types if hasattr(t, "dtype"))

    relax.analysis.post_order_visit(module["main"], visit)
    return dtypes


def check_fp16_asm(module, asm: str, arch: str) -> FP16Check:
    """Each kernel of the built (fused) module, with the FP16 arithmetic in its assembly."""
    bodies = function_bodies(asm)
    return FP16Check([FP16Kernel(name, bool(_REQUIRED.search(name)), "float16" in dtypes,
                                 half_instructions(bodies.get(name, []), arch))
                      for name, dtypes in _kernel_dtypes(module).items()])
