"""Import: PyTorch module -> torch.export -> Relax IRModule (weights bound as constants).

Weights stay compile-time constants so that our passes (BatchNorm folding, and later the sparse
and int8 rewrites) can read them; failures name the op and the layer the user must change.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import tvm


class FrontendError(RuntimeError):
    """The model cannot be exported by torch.export or imported by TVM's Relax frontend."""


def export_program(model: torch.nn.Module, example: torch.Tensor, name: str = "model"):
    """torch.export with a readable error; the result feeds TVM, ONNX and ExecuTorch alike."""
    try:
        with torch.no_grad():
            return torch.export.export(model, (example,))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FrontendError(f"model '{name}': torch.export failed: {first}") from e


def _layers_using(ep, op_names: list[str]) -> list[str]:
    """'op in layer (Type)' for each unsupported op, from the exported graph's module stacks."""
    found: dict[str, str] = {}
    graphs = [ep.graph]
    try:
        graphs.append(ep.run_decompositions().graph)
    except Exception:  # decomposition itself may fail on exotic ops; the raw graph still helps
        pass
    for graph in graphs:
        for node in graph.nodes:
            name = getattr(node.target, "__name__", str(node.target))
            if node.op != "call_function" or name not in op_names or name in found:
                continue
            stack = node.meta.get("nn_module_stack") or {}
            if stack:
                path, cls = list(stack.values())[-1]
                cls_name = getattr(cls, "__name__", str(cls)).rsplit(".", 1)[-1]
                found[name] = f"op '{name}' in layer '{path or '<root>'}' ({cls_name})"
            else:
                found[name] = f"op '{name}' (no layer recorded)"
    return [found.get(op, f"op '{op}'") for op in op_names]


def to_relax(ep, name: str = "model") -> tvm.IRModule:
    """Relax IRModule with one function `main(input) -> tuple of outputs`."""
    from tvm.relax.frontend.torch import from_exported_program

    try:
        mod = from_exported_program(ep)
    except AssertionError as e:
        match = re.search(r"Unsupported function types \[(.*)\]", str(e))
        if not match:
            raise FrontendError(f"model '{name}': TVM's Relax frontend failed: {e}") from e
        ops = [s.strip().strip("'\"") for s in match.group(1).split(",")]
        raise FrontendError(
            f"model '{name}': TVM cannot import {'; '.join(_layers_using(ep, ops))}"
        ) from e
    except Exception as e:
        raise FrontendError(f"model '{name}': TVM's Relax frontend failed: "
                            f"{type(e).__name__}: {str(e).strip().splitlines()[-1]}") from e
    return wrap_negative_take_indices(mod)


def wrap_negative_take_indices(mod: tvm.IRModule) -> tvm.IRModule:
    """A copy of `mod` with constant negative `take` indices made positive.

    TVM 0.27's importer turns `x[:, -1]` (aten.select with a negative index) into
    `R.take(x, R.const(-1), axis)` in take's default mode "fast", which never wraps an index:
    the built code reads the memory just before `x` (a GRU's last step gave different garbage
    on every run). Python's `i + n` for a known axis length `n` is what torch means.
    """
    import numpy as np
    import tvm
    from tvm import relax

    take = tvm.ir.Op.get("relax.take")

    @relax.expr_functor.mutator
    class _Wrap(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if call.op != take or str(call.attrs.mode) != "fast" or \
                    not isinstance(call.args[1], tvm.ir.expr.Constant):
                return call
            shape = getattr(call.args[0].ty, "shape", None)
            if not isinstance(shape, relax.ShapeExpr) or \
                    not all(isinstance(d, tvm.tirx.IntImm) for d in shape.values):
                return call
            dims = [int(d) for d in shape.values]
            n = int(np.prod(dims)) if call.attrs.axis is None else dims[int(call.attrs.axis)]
            idx = call.args[1].value.numpy()
            if not (idx < 0).any():
                return call
            fixed = relax.const(np.where(idx < 0, idx + n, idx).astype(idx.dtype))
            return relax.op.take(call.args[0], fixed, call.attrs.axis, "fast")

    out = mod.clone()
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            out[gv] = _Wrap(mod).visit_expr(func)
    return out


def import_model(model: torch.nn.Module, example: torch.Tensor, name: str = "model"):
    """Model -> Relax IRModule; the one entry point the compile step uses."""
    return to_relax(export_program(model, example, name), name)
