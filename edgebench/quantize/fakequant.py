"""The fake-quant simulator: the exported FP32 graph with quantize-dequantize inserted.

Weights pass through a WeightQuant module (per-channel/per-tensor symmetric int, ternary or
binary, straight-through gradients); every int8 tensor passes through one ActQuant (observer
during calibration, torch.fake_quantize_per_tensor_affine while training, the same arithmetic
spelt with round/clamp/mul in eval so that torch.export -> TVM can import the frozen model).
freeze() bakes the quantized weights into the parameters and removes the weight quantizers.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from edgebench.quantize.arith import MIN_SCALE
from edgebench.quantize.config import QuantConfig
from edgebench.quantize.graph import Plan, Traced
from edgebench.quantize.lowbit import binarize, ternarize
from edgebench.quantize.observers import Observer, make_observer
from edgebench.quantize.scheme import ActQParams, choose_qparams


def _per_channel_shape(w: torch.Tensor) -> tuple[int, ...]:
    return (-1,) + (1,) * (w.dim() - 1)


class WeightQuant(nn.Module):
    """Quantizes a weight tensor on the fly (scales follow the live weights during training).

    int: scale_c = float32(max|w_c|) / qmax (qmax = 2**(bits-1) - 1, range [-qmax, qmax], so
    0 maps to 0), all-zero channels take the largest scale. ternary/binary: lowbit.py.
    """

    def __init__(self, fmt: str, bits: int, per_channel: bool) -> None:
        super().__init__()
        self.fmt, self.bits, self.per_channel = fmt, bits, per_channel
        self.qmax = 2 ** (bits - 1) - 1

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        w = w.detach().float()
        if self.per_channel:
            amax = w.reshape(w.shape[0], -1).abs().amax(1)
        else:
            amax = w.abs().amax().reshape(1)
        top = amax.max()
        amax = torch.where(amax > 0, amax, top if top > 0 else torch.tensor(1.0))
        return amax / torch.tensor(float(self.qmax))

    @torch.no_grad()
    def quantize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer weights int8, scales float32: one per output channel, or one)."""
        if self.fmt == "ternary":
            return ternarize(w)
        if self.fmt == "binary":
            return binarize(w)
        scale = self.scale(w)
        s = scale.reshape(_per_channel_shape(w)) if self.per_channel else scale
        q = torch.clamp(torch.round(w.float() * (torch.tensor(1.0) / s)), -self.qmax, self.qmax)
        return q.to(torch.int8), scale

    def dequantized(self, w: torch.Tensor) -> torch.Tensor:
        q, scale = self.quantize(w)
        s = scale.reshape(_per_channel_shape(w)) if scale.numel() > 1 else scale
        return q.float() * s

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.fmt != "int":
            return w + (self.dequantized(w) - w).detach()  # straight-through estimator
        scale = self.scale(w)
        if self.per_channel:
            zp = torch.zeros(len(scale), dtype=torch.int32)
            return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, -self.qmax, self.qmax)
        return torch.fake_quantize_per_tensor_affine(
            w, scale[0], torch.tensor(0, dtype=torch.int32), -self.qmax, self.qmax)


class ActQuant(nn.Module):
    """One quantized activation tensor: observe, or fake-quantize with fixed qparams."""

    def __init__(self, observer: str, percentile: float, dtype: str) -> None:
        super().__init__()
        self.observer_name, self.percentile, self.dtype = observer, percentile, dtype
        self.observer: Observer | None = make_observer(observer, percentile)
        self.mode, self.pass_index = "observe", 0
        qp = ActQParams(1.0, 0, dtype)
        self.qmin, self.qmax = qp.qmin, qp.qmax
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("inv_scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32))
        self.register_buffer("zero_point_f", torch.tensor(0.0))

    def reset(self) -> None:
        self.observer = make_observer(self.observer_name, self.percentile)

    def set_qparams(self, qp: ActQParams) -> None:
        self.scale.fill_(qp.scale)
        self.inv_scale.copy_(torch.tensor(1.0) / torch.tensor(qp.scale, dtype=torch.float32))
        self.zero_point.fill_(qp.zero_point)
        self.zero_point_f.fill_(float(qp.zero_point))

    @property
    def qparams(self) -> ActQParams:
        return ActQParams(float(self.scale), int(self.zero_point), self.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "observe":
            assert self.observer is not None
            self.observer.observe(x.detach(), self.pass_index)
            return x
        if self.training:  # torch's op: STE gradient, zero outside the clamp range
            return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point,
                                                         self.qmin, self.qmax)
        q = torch.clamp(torch.round(x * self.inv_scale) + self.zero_point_f, self.qmin, self.qmax)
        return (q - self.zero_point_f) * self.scale


def dynamic_qparams(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample uint8 qparams (dim 0) computed at run time, in float32.

    lo = min(min(x), 0), hi = max(max(x), 0); scale = max((hi - lo) / 255, MIN_SCALE) (1.0 if 0);
    zero_point = clamp(-round_half_even(lo / scale), 0, 255).
    """
    flat = x.detach().float().reshape(x.shape[0], -1)
    lo = flat.amin(1).clamp(max=0.0)
    hi = flat.amax(1).clamp(min=0.0)
    scale = (hi - lo) / torch.tensor(255.0)
    scale = torch.where(scale > 0, scale.clamp(min=MIN_SCALE), torch.ones_like(scale))
    zp = torch.clamp(-torch.round(lo / scale), 0, 255)
    return scale, zp


class DynamicActQuant(nn.Module):
    """uint8 fake-quant with per-sample qparams from the live input (dynamic quantization)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zp = dynamic_qparams(x)
        shape = (-1,) + (1,) * (x.dim() - 1)
        s, z = scale.reshape(shape), zp.reshape(shape)
        q = torch.clamp(torch.round(x * (torch.tensor(1.0) / s)) + z, 0, 255)
        y = (q - z) * s
        return x + (y - x).detach() if self.training else y


def embed_bits(config: QuantConfig) -> int:
    """Bits of embedding tables: the config's for int methods, 8 under ternary/binary (their
    1-2-bit formats are trained for conv/linear, not lookup tables)."""
    return config.bits if config.method in ("static", "qat") else 8


def embed_quant(config: QuantConfig) -> WeightQuant:
    """Embedding tables: symmetric int with one scale per row (per token)."""
    return WeightQuant("int", embed_bits(config), per_channel=True)


def build_simulator(traced: Traced, plan: Plan, config: QuantConfig) -> fx.GraphModule:
    """A deep copy of the traced graph with weight and activation quantizers inserted."""
    gm = copy.deepcopy(traced.gm)
    graph = gm.graph
    nodes = {n.name: n for n in graph.nodes}
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    fmt = config.method if config.method in ("ternary", "binary") else "int"
    for step in plan.steps.values():
        if step.kind not in ("compute", "embed") or not step.int8:
            continue
        node = nodes[step.node]
        w = node.args[step.weight_arg]
        assert isinstance(w, fx.Node)
        gm.add_submodule(f"wq_{step.node}", embed_quant(config) if step.kind == "embed"
                         else WeightQuant(fmt, config.bits, config.per_channel))
        with graph.inserting_before(node):
            wq = graph.call_module(f"wq_{step.node}", (w,))
        node.replace_input_with(w, wq)
        if plan.dynamic:
            x = node.args[0]
            assert isinstance(x, fx.Node)
            gm.add_submodule(f"dq_{step.node}", DynamicActQuant())
            with graph.inserting_before(node):
                dq = graph.call_module(f"dq_{step.node}", (x,))
            node.replace_input_with(x, dq)
    for owner in plan.observed:
        node = nodes[owner]
        name = f"aq_{owner}"
        gm.add_submodule(name, ActQuant(config.observer, config.percentile,
                                        config.activation_dtype))
        consumers = plan.edges.get(owner)
        if consumers is None:  # an int8 op's output: every user sees the quantized value
            with graph.inserting_after(node):
                aq = graph.call_module(name, (node,))
            node.replace_all_uses_with(aq, delete_user_cb=lambda u, aq=aq: u is not aq)
        else:  # an FP32 tensor quantized on its way into int8 ops only
            first = min(consumers, key=order.__getitem__)
            with graph.inserting_before(nodes[first]):
                aq = graph.call_module(name, (node,))
            for c in consumers:
                nodes[c].replace_input_with(node, aq)
    graph.lint()
    gm.recompile()
    return gm


def act_quants(gm: nn.Module) -> dict[str, ActQuant]:
    """Activation quantizers by the node name they quantize."""
    return {name.removeprefix("aq_"): m for name, m in gm.named_children()
            if isinstance(m, ActQuant)}


@torch.no_grad()
def calibrate(gm: fx.GraphModule, data: torch.Tensor, batched: bool = True,
              batch_size: int = 64) -> None:
    """Observe every ActQuant over `data` (float activations, quantized weights), set qparams."""
    acts = list(act_quants(gm).values())
    for a in acts:
        a.reset()
    passes = max((a.observer.passes for a in acts if a.observer), default=0)
    was_training = gm.training
    gm.eval()
    for p in range(passes):
        for a in acts:
            a.mode, a.pass_index = "observe", p
        for chunk in data.split(batch_size if batched else 1):
            gm(chunk)
    for a in acts:
        assert a.observer is not None
        a.set_qparams(choose_qparams(*a.observer.range(), a.dtype))
        a.mode = "quant"
    gm.train(was_training)


@torch.no_grad()
def freeze(gm: fx.GraphModule, represents_zero: bool) -> dict[str, tuple[torch.Tensor,
                                                                           torch.Tensor]]:
    """Bake quantized weights into the parameters; return {compute node: (w_int, scales)}.

    Checks that zero weights (from pruning) stayed exactly zero where the format has a zero.
    """
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target),
                                                      WeightQuant):
            continue
        wq = gm.get_submodule(node.target)
        w_node = node.args[0]
        w = gm.get_parameter(w_node.target)
        q, scale = wq.quantize(w)
        if represents_zero and bool(((w == 0) & (q != 0)).any()):
            raise AssertionError(f"quantizing {w_node.target} turned a zero weight nonzero")
        path, _, leaf = str(w_node.target).rpartition(".")
        frozen = wq.dequantized(w)
        setattr(gm.get_submodule(path), leaf, nn.Parameter(frozen, requires_grad=False))
        (user,) = node.users
        out[user.name] = (q, scale)
        node.replace_all_uses_with(w_node)
        gm.graph.erase_node(node)
        delattr(gm, str(node.target))
    for a in act_quants(gm).values():
        a.observer, a.mode = None, "quant"
    gm.graph.lint()
    gm.recompile()
    return out
