"""The graph quantization works on, and the plan of which ops run in int8.

Why torch.export and not fx.symbolic_trace: the description must name the ops the TVM side
sees, and TVM imports the torch.export graph (ATen ops, node names such as `conv2d_3`, weights
as `features.0.weight`). We export with a dynamic batch axis (node names are the same as the
batch-1 export the pipeline compiles, apart from shape nodes) so that calibration, QAT and
evaluation run batched, and copy the graph into a plain fx.GraphModule (trainable, no guards).

The plan is a forward data-flow pass: conv2d/linear always run int8 (their FP32 inputs get
quantized); add runs int8 when both operands are int8; pools, clamps and shape ops stay int8
when their input is; anything else is FP32 with the reason. A conv/linear whose int8 output
would only be dequantized (all consumers FP32, or the graph output) emits float instead.
Embedding lookups are weight-only: int8 rows with a per-row scale, gathered and dequantized to
float (the standard form, e.g. fbgemm's row-wise 8-bit tables; the ids are not quantized).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx

from edgebench.quantize.config import QuantConfig, QuantError

aten = torch.ops.aten
COMPUTE = {aten.conv2d.default: "conv2d", aten.linear.default: "linear"}
EMBED = {aten.embedding.default: "embedding"}
ACTIVATIONS = {aten.relu.default: "relu", aten.hardtanh.default: "hardtanh",
               aten.clamp.default: "clamp", aten.relu6.default: "relu6"}
POOLS_MAX = {aten.max_pool2d.default: "max_pool2d"}
POOLS_AVG = {aten.adaptive_avg_pool2d.default: "adaptive_avg_pool2d",
             aten.avg_pool2d.default: "avg_pool2d", aten.mean.dim: "mean"}
SHAPE_OPS = {aten.flatten.using_ints: "flatten", aten.reshape.default: "reshape",
             aten.view.default: "view", aten.transpose.int: "transpose",
             aten.permute.default: "permute", aten.squeeze.dim: "squeeze",
             aten.squeeze.dims: "squeeze", aten.unsqueeze.default: "unsqueeze",
             aten.dropout.default: "dropout", aten.clone.default: "clone",
             aten.alias.default: "alias", aten.contiguous.default: "contiguous"}


@dataclass
class Traced:
    """BN-folded float model as an fx.GraphModule (parameters shared with the model)."""

    gm: fx.GraphModule
    batched: bool


def trace(model: torch.nn.Module, example: torch.Tensor) -> Traced:
    """torch.export (dynamic batch if the model allows, else batch 1) -> plain GraphModule."""
    model.eval()
    batch = torch.export.Dim("batch")
    try:
        with torch.no_grad():
            ep = torch.export.export(model, (torch.cat([example, example]),),
                                     dynamic_shapes=({0: batch},))
        batched = True
    except Exception:
        try:
            with torch.no_grad():
                ep = torch.export.export(model, (example,))
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise QuantError(f"torch.export failed, cannot quantize: {first}") from e
        batched = False
    src = ep.module()
    with torch.no_grad():
        single = isinstance(model(example), torch.Tensor)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in src.graph.nodes:
        if node.op == "call_module" and node.target == "_guards_fn":
            continue
        if node.op == "output":
            outs = fx.map_arg(node.args[0], lambda n: env[n])
            graph.output(outs[0] if single and len(outs) == 1 else outs)
        else:
            env[node] = graph.node_copy(node, lambda n: env[n])
    gm = fx.GraphModule(model, graph)
    gm.graph.lint()
    return Traced(gm, batched)


def is_tensor_node(node: fx.Node) -> bool:
    return isinstance(node.meta.get("val"), torch.Tensor)


def _const(value: object) -> bool:
    return value is None or isinstance(value, int | float)


@dataclass
class Step:
    """The plan for one tensor-producing call_function node."""

    node: str
    op: str
    kind: str
    index: int
    inputs: list[str]
    name: str = ""
    supported: bool = True
    reason: str = ""
    int8: bool = False
    group: str | None = None  # head node this activation is fused into
    activation: tuple[str, float | None, float | None] | None = None  # fused (name, lo, hi)
    out_node: str = ""  # the node whose value is this group's output
    float_out: bool = False
    weight: str | None = None  # get_attr targets
    weight_arg: int = 1  # position of the weight among the node's args (embedding: 0)
    bias: str | None = None


@dataclass
class Plan:
    """Steps in graph order; owners[n] = node whose qparams tensor n uses (int8 tensors only)."""

    steps: dict[str, Step]
    owners: dict[str, str] = field(default_factory=dict)
    observed: list[str] = field(default_factory=list)  # nodes that get an activation quantizer
    edges: dict[str, list[str]] = field(default_factory=dict)  # FP32 producer -> int8 consumers
    dynamic: bool = False


def _classify(node: fx.Node) -> tuple[str, str]:
    """(op name, role) of an aten node, from the first op table that holds it."""
    t = node.target
    for table, role in ((COMPUTE, "compute"), (EMBED, "embed"), (ACTIVATIONS, "act"),
                        ({aten.add.Tensor: "add"}, "add"), (POOLS_MAX, "maxpool"),
                        (POOLS_AVG, "avgpool"), (SHAPE_OPS, "shape")):
        if t in table:
            return table[t], role
    name = getattr(t, "__name__", str(t))
    return name.split(".")[0], "other"


def activation_bounds(node: fx.Node) -> tuple[str, float | None, float | None] | None:
    """(name, lo, hi) of a clamp-like activation with constant bounds, else None."""
    op, kind = _classify(node)
    if kind != "act":
        return None
    if op == "relu":
        return ("relu", 0.0, None)
    if op == "relu6":
        return ("relu6", 0.0, 6.0)
    args = list(node.args[1:]) + [None] * 2
    if op == "hardtanh":
        lo = node.kwargs.get("min_val", args[0] if len(node.args) > 1 else -1.0)
        hi = node.kwargs.get("max_val", args[1] if len(node.args) > 2 else 1.0)
        name = "relu6" if (lo, hi) == (0.0, 6.0) else f"hardtanh({lo:g},{hi:g})"
    else:
        lo, hi = node.kwargs.get("min", args[0]), node.kwargs.get("max", args[1])
        name = f"clamp({lo},{hi})"
    if not (_const(lo) and _const(hi)) or (lo is None and hi is None):
        return None
    return (name, None if lo is None else float(lo), None if hi is None else float(hi))


def _support(node: fx.Node, op: str, kind: str) -> str:
    """'' if the int8 form covers this node's arguments, else why not."""
    args = node.args
    if kind == "compute":
        if not (isinstance(args[0], fx.Node) and args[0].op != "get_attr"):
            return "input is a constant"
        if not (isinstance(args[1], fx.Node) and args[1].op == "get_attr"):
            return "weight is not a parameter"
        if len(args) > 2 and args[2] is not None and not (
                isinstance(args[2], fx.Node) and args[2].op == "get_attr"):
            return "bias is not a parameter"
        if op == "conv2d" and (len(args) > 4 and isinstance(args[4], str)):
            return "string padding"
        return ""
    if kind == "embed":
        if not (isinstance(args[0], fx.Node) and args[0].op == "get_attr"):
            return "table is not a parameter"
        return ""
    if kind == "add":
        if len(args) != 2 or node.kwargs.get("alpha", 1) != 1:
            return "add with alpha"
        a, b = args
        if not all(isinstance(v, fx.Node) and is_tensor_node(v) for v in (a, b)):
            return "add of a scalar"
        if tuple(a.meta["val"].shape) != tuple(b.meta["val"].shape):
            return "broadcasting add"
        return ""
    if kind == "act":
        return "" if activation_bounds(node) else "non-constant clamp bounds"
    if kind == "maxpool":
        return ""
    if kind == "avgpool":
        shape = node.args[0].meta["val"].shape
        if op == "adaptive_avg_pool2d":
            out = args[1]
            if any(int(shape[-2 + i]) % int(out[i]) for i in range(2)):
                return "adaptive pool with uneven windows"
        elif op == "avg_pool2d":
            padding = args[3] if len(args) > 3 else 0
            ceil_mode = args[4] if len(args) > 4 else False
            divisor = args[6] if len(args) > 6 else None
            if any(int(p) for p in (padding if isinstance(padding, list | tuple)
                                     else [padding])) or ceil_mode or divisor is not None:
                return "avg_pool2d with padding, ceil_mode or divisor_override"
        elif op == "mean" and (node.kwargs.get("dtype") is not None):
            return "mean with dtype"
        return ""
    if kind == "shape":
        if op == "dropout" and (len(args) > 2 and args[2]):
            return "dropout in training mode"
        return ""
    return f"no int8 form for {op}"


def make_plan(gm: fx.GraphModule, config: QuantConfig) -> Plan:
    """Decide, node by node, what runs int8, what is fused and where tensors get quantized."""
    dynamic = config.method == "dynamic"
    nodes = list(gm.graph.nodes)
    steps: dict[str, Step] = {}
    layer_names: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.op != "call_function" or not is_tensor_node(node):
            continue
        op, kind = _classify(node)
        inputs = [a.name for a in node.all_input_nodes if is_tensor_node(a)
                  and a.op != "get_attr"]
        step = Step(node.name, op, kind, i, inputs, name=node.name, out_node=node.name)
        if kind == "compute":
            step.inputs = [node.args[0].name] if isinstance(node.args[0], fx.Node) else []
            w = node.args[1]
            b = node.args[2] if len(node.args) > 2 else None
            if isinstance(w, fx.Node) and w.op == "get_attr":
                step.weight = str(w.target)
                step.name = step.weight.rpartition(".")[0] or step.weight
                layer_names[step.name] = layer_names.get(step.name, 0) + 1
            if isinstance(b, fx.Node) and b.op == "get_attr":
                step.bias = str(b.target)
        elif kind == "embed":
            step.weight_arg, w = 0, node.args[0]
            if isinstance(w, fx.Node) and w.op == "get_attr":
                step.weight = str(w.target)
                step.name = step.weight.rpartition(".")[0] or step.weight
                layer_names[step.name] = layer_names.get(step.name, 0) + 1
        step.reason = _support(node, op, kind)
        step.supported = not step.reason
        if dynamic and op != "linear" and step.supported:
            step.supported, step.reason = False, "dynamic quantization covers Linear only"
        steps[node.name] = step
    for step in steps.values():  # a module called twice gets node-qualified names
        if layer_names.get(step.name, 0) > 1:
            step.name = f"{step.name}@{step.node}"
    keep = set(config.keep_fp32)
    unknown = keep - {s.name for s in steps.values()} - set(steps)
    if unknown:
        raise QuantError(f"keep_fp32 names no layer or node: {', '.join(sorted(unknown))}")
    for step in steps.values():
        if keep & {step.name, step.node}:
            step.supported, step.reason = False, "kept FP32 by request"

    by_name = {n.name: n for n in nodes}
    if not dynamic:  # fuse a clamp-like activation into its only producer
        for step in steps.values():
            node = by_name[step.node]
            if step.kind not in ("compute", "add") or not step.supported or len(node.users) != 1:
                continue
            user = next(iter(node.users))
            ustep = steps.get(user.name)
            if ustep and ustep.kind == "act" and ustep.supported:
                step.activation = activation_bounds(user)
                step.out_node = user.name
                ustep.group = step.node

    plan = Plan(steps, dynamic=dynamic)
    _assign(plan, by_name, float_out=set())
    float_out = {s.node for s in steps.values() if s.kind == "compute" and s.int8
                 and (dynamic or not _needs_int(plan, by_name, s.out_node))}
    _assign(plan, by_name, float_out)
    return plan


def _assign(plan: Plan, by_name: dict[str, fx.Node], float_out: set[str]) -> None:
    """Forward pass: int8 flags, qparams owners, quantize edges and observed tensors."""
    plan.owners, plan.edges, plan.observed = {}, {}, []
    for step in plan.steps.values():
        step.int8, step.float_out = False, step.node in float_out
        if step.group is not None:
            continue
        if not step.supported:
            continue
        int_in = [i for i in step.inputs if i in plan.owners]
        if step.kind == "embed":  # weight-only: float rows out, ids never quantized
            step.int8 = step.float_out = True
            continue
        if step.kind == "compute":
            step.int8 = True
        elif step.kind == "add":
            step.int8 = len(int_in) == 2
            if not step.int8:
                fp = [i for i in step.inputs if i not in plan.owners]
                step.reason = f"operand {fp[0]} is FP32"
        else:
            step.int8 = len(step.inputs) == 1 and len(int_in) == 1
            if not step.int8:
                step.reason = "input is FP32"
        if not step.int8:
            continue
        for i in step.inputs:  # FP32 operands get quantized on the edge into this op
            if i not in plan.owners and not plan.dynamic:
                plan.edges.setdefault(i, []).append(step.node)
        if step.kind in ("compute", "add", "avgpool"):
            if not step.float_out:
                plan.owners[step.out_node] = step.out_node
        else:
            plan.owners[step.out_node] = plan.owners[step.inputs[0]]
    for producer in plan.edges:
        plan.owners.setdefault(producer, producer)
    seen = set()
    for node in by_name:  # graph order
        if plan.owners.get(node) == node and node not in seen:
            plan.observed.append(node)
            seen.add(node)
    for step in plan.steps.values():  # reasons of FP32 ops whose producer emits float
        if step.group is None and not step.int8 and not step.reason:
            step.reason = "input is FP32"


def _needs_int(plan: Plan, by_name: dict[str, fx.Node], node: str) -> bool:
    """Does some consumer want this tensor as int8 (directly or through int8 shape ops)?"""
    for user in by_name[node].users:
        step = plan.steps.get(user.name)
        if step is None or not step.int8:
            continue
        if step.kind in ("compute", "add", "avgpool"):
            return True
        if _needs_int(plan, by_name, step.out_node):
            return True
    return False

