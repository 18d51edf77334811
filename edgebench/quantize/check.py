"""Op-by-op agreement of the integer reference with the fake-quant simulator.

End to end the two cannot agree bit for bit: the simulator sums in float32 and scales by
float32(1 / s), the oracle sums exactly and scales by M0 * 2**-n, so a value that lands within
~1e-5 of a rounding tie can round the other way (about one element in 1e5). A deep random-init
net turns those rare one-step flips into visible logit differences (diagnosis.md). So the
contract is checked per op, each op fed the simulator's own integer inputs: outputs must be
equal except one-step flips at rounding ties, and float outputs equal to float32 precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx

from edgebench.quantize.fakequant import ActQuant


@dataclass(frozen=True)
class OpAgreement:
    """One integer op: max |oracle - sim| in output steps (int) or relative to max |sim|
    (float output); flips = elements that differ; tie = the largest distance, in steps, of a
    flipped element's simulator value from the nearest .5 (0 = exactly on a tie)."""

    name: str
    op: str
    elements: int
    max_diff: float
    flips: int
    tie: float
    float_output: bool


def capture(gm: fx.GraphModule, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every tensor the graph computes on x, by node name."""
    values: dict[str, torch.Tensor] = {}

    class Capture(fx.Interpreter):
        def run_node(self, node: fx.Node) -> object:
            out = super().run_node(node)
            if isinstance(out, torch.Tensor):
                values[node.name] = out
            return out

    with torch.no_grad():
        Capture(gm).run(x)
    return values


@torch.no_grad()
def per_op_agreement(result, x: torch.Tensor) -> list[OpAgreement]:
    """Run every integer op of result.description on the simulator's inputs (a QuantResult)."""
    sim = result.model
    values = capture(sim, x)
    nodes = {n.name: n for n in sim.graph.nodes}
    quantizer: dict[str, tuple[str, ActQuant]] = {}  # tensor -> its ActQuant node and module
    for n in sim.graph.nodes:
        if n.op == "call_module" and isinstance(m := sim.get_submodule(n.target), ActQuant):
            quantizer[n.args[0].name] = (n.name, m)
    rows = []
    for la in result.description.layers:
        if not la.integer or la.scheme == "dynamic":
            continue
        args = [a for a in nodes[la.node].all_input_nodes if a.op != "get_attr"]
        operands = []
        for i, a in enumerate(args):
            qp = la.inputs[i] if i < len(la.inputs) else None
            v = values[a.name]
            operands.append(v if qp is None else torch.round(v / qp.scale).long() + qp.zero_point)
        out, qp = result.reference.op(la.node, operands)
        out_node = la.fused[0] if la.fused and la.output is not None else la.node
        if qp is None:
            ref = values[out_node]
            diff = float((out - ref).abs().max()) / max(float(ref.abs().max()), 1e-30)
            rows.append(OpAgreement(la.name, la.op, out.numel(), diff, 0, 0.0, True))
            continue
        if out_node in quantizer:  # requantized here: the simulator rounds its float value
            aq_node, aq = quantizer[out_node]
            pre = values[out_node] * aq.inv_scale + aq.zero_point_f
            simq = torch.round(values[aq_node] / aq.scale).long() + int(aq.zero_point)
        else:  # pass-through (max pool, shape ops, unfused clamp): exact integers
            pre = None
            simq = torch.round(values[out_node] / qp.scale).long() + qp.zero_point
        d = (simq - out).abs()
        flipped = d > 0
        tie = 0.0
        if pre is not None and bool(flipped.any()):
            tie = float(((pre - pre.floor()) - 0.5).abs()[flipped].max())
        elif bool(flipped.any()):
            tie = float("inf")
        rows.append(OpAgreement(la.name, la.op, out.numel(), float(d.max()),
                                int(flipped.sum()), tie, False))
    return rows
