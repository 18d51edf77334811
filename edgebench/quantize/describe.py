"""Plan + frozen weights + calibrated qparams -> the QuantDescription (integer fields included).

Every integer the int8 kernels need is derived here, once, by the formulas in reference.py;
the reference executor and the TVM pass both read them from the description.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import fx

from edgebench.quantize.arith import (
    common_multipliers,
    f32,
    quantize,
    quantize_multiplier,
    saturate_int32,
)
from edgebench.quantize.config import QuantConfig
from edgebench.quantize.fakequant import embed_bits
from edgebench.quantize.graph import Plan, Step, activation_bounds
from edgebench.quantize.scheme import ActQParams, LayerQuant, QuantDescription


def _attr(gm: fx.GraphModule, target: str) -> torch.Tensor:
    obj: object = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    assert isinstance(obj, torch.Tensor)
    return obj


def act_clamp(bounds: tuple[str, float | None, float | None] | None,
              qp: ActQParams) -> tuple[int, int]:
    """Output int range after a fused clamp-like activation: [quantize(lo), quantize(hi)]."""
    lo, hi = qp.qmin, qp.qmax
    if bounds is not None:
        _, a, b = bounds
        if a is not None:
            lo = max(lo, int(quantize(torch.tensor([a]), qp.scale, qp.zero_point, qp.qmin,
                                      qp.qmax)[0]))
        if b is not None:
            hi = min(hi, int(quantize(torch.tensor([b]), qp.scale, qp.zero_point, qp.qmin,
                                      qp.qmax)[0]))
    return lo, hi


def pool_count(node: fx.Node, op: str) -> int:
    """Elements averaged per output value (all supported pools have uniform windows)."""
    shape = [int(d) for d in node.args[0].meta["val"].shape[1:]]
    shape = [0, *shape]  # batch placeholder keeps dim indices aligned
    if op == "adaptive_avg_pool2d":
        out = node.args[1]
        return (shape[-2] // int(out[0])) * (shape[-1] // int(out[1]))
    if op == "avg_pool2d":
        k = node.args[1]
        k = [k, k] if isinstance(k, int) else list(k) * (2 if len(k) == 1 else 1)
        return int(k[0]) * int(k[1])
    dims = node.args[1] if len(node.args) > 1 else None
    rank = len(shape)
    dims = range(1, rank) if dims is None else [d % rank for d in dims]
    return math.prod(shape[d] for d in dims)


def describe(gm: fx.GraphModule, plan: Plan, weights: dict[str, tuple[torch.Tensor,
                                                                        torch.Tensor]],
             acts: dict[str, ActQParams], config: QuantConfig) -> QuantDescription:
    """Build the description; gm is the float graph (biases are read from it)."""
    nodes = {n.name: n for n in gm.graph.nodes}
    tensors = {owner: acts[owner] for owner in plan.observed}

    def qp_of(name: str) -> ActQParams:
        return tensors[plan.owners[name]]

    layers = []
    for step in plan.steps.values():
        if step.group is not None:
            continue
        node = nodes[step.node]
        fused = (step.out_node,) if step.out_node != step.node else ()
        base = {"name": step.name, "node": step.node, "op": step.op, "index": step.index,
                "fused": fused, "activation": step.activation[0] if step.activation else None}
        if not step.int8:
            wd = {"weight_dtype": "float32", "weight_bits": 32} if step.kind == "compute" else {}
            layers.append(LayerQuant(**base, scheme="fp32", kept_fp32=True, reason=step.reason,
                                     **wd))
        elif step.kind == "embed":
            w_int, scale = weights[step.node]
            bits = embed_bits(config)
            layers.append(LayerQuant(
                **base, scheme="static", weight_dtype=f"int{bits}", weight_bits=bits,
                per_channel=True, weight_scale=tuple(float(v) for v in scale),
                weight_zero_point=(0,) * scale.numel(), weight_q=w_int, inputs=(None,),
                out_scale=scale.float()))
        elif step.kind == "compute":
            layers.append(_compute(gm, step, base, weights[step.node], qp_of, tensors, config))
        elif step.kind == "add":
            qa, qb = (qp_of(i) for i in step.inputs)
            qo = tensors[step.out_node]
            m0, shift = common_multipliers([qa.scale / qo.scale, qb.scale / qo.scale])
            layers.append(LayerQuant(**base, scheme="static", inputs=(qa, qb), output=qo,
                                     multiplier=torch.tensor(m0), shift=torch.tensor([shift]),
                                     clamp=act_clamp(step.activation, qo)))
        elif step.kind == "avgpool":
            qi, qo = qp_of(step.inputs[0]), tensors[step.out_node]
            count = pool_count(node, step.op)
            m0, shift = quantize_multiplier(qi.scale / (qo.scale * count))
            layers.append(LayerQuant(**base, scheme="static", inputs=(qi,), output=qo,
                                     multiplier=torch.from_numpy(m0),
                                     shift=torch.from_numpy(shift), clamp=(qo.qmin, qo.qmax)))
        elif step.kind == "act":
            qi = qp_of(step.inputs[0])
            bounds = activation_bounds(node)
            layers.append(LayerQuant(**{**base, "activation": bounds[0] if bounds else None},
                                     scheme="static", inputs=(qi,), output=qi,
                                     clamp=act_clamp(bounds, qi)))
        else:  # max pool and shape ops: the int8 values move, qparams stay
            qi = qp_of(step.inputs[0])
            layers.append(LayerQuant(**base, scheme="static", inputs=(qi,), output=qi))
    return QuantDescription(config.method, layers, tensors)


def _compute(gm: fx.GraphModule, step: Step, base: dict, weight: tuple[torch.Tensor,
                                                                        torch.Tensor],
             qp_of, tensors: dict[str, ActQParams], config: QuantConfig) -> LayerQuant:
    w_int, scale = weight
    channels = w_int.shape[0]
    s_w = np.broadcast_to(scale.double().numpy(), (channels,)).astype(np.float64)
    bias = (_attr(gm, step.bias).detach().double().numpy() if step.bias
            else np.zeros(channels))
    fmt = config.method if config.method in ("ternary", "binary") else f"int{config.bits}"
    common = {**base, "weight_dtype": fmt, "weight_bits": config.bits,
              "per_channel": config.per_channel,
              "weight_scale": tuple(float(s) for s in scale.reshape(-1)),
              "weight_zero_point": (0,) * scale.numel(), "weight_q": w_int}
    if config.method == "dynamic":
        return LayerQuant(**common, scheme="dynamic", inputs=(None,),
                          bias_float=torch.from_numpy(bias).float())
    qx = qp_of(step.inputs[0])
    s_in = np.float64(qx.scale) * s_w
    bias_q, saturated = saturate_int32(np.rint(bias / s_in))
    entry = LayerQuant(**common, scheme="static", inputs=(qx,),
                       bias_q=torch.from_numpy(bias_q).to(torch.int32),
                       bias_saturated=saturated)
    if step.float_out:
        entry.out_scale = torch.tensor([f32(v) for v in s_in], dtype=torch.float32)
        return entry
    qy = tensors[step.out_node]
    m0, shift = quantize_multiplier(s_in / np.float64(qy.scale))
    entry.output = qy
    entry.multiplier, entry.shift = torch.from_numpy(m0), torch.from_numpy(shift)
    entry.clamp = act_clamp(step.activation, qy)
    return entry
