"""Size accounting: bytes of the weights as they would be stored, against the FP32 model.

weight_bytes is the issue's measure: weight tensors as stored (conv/linear: int8 bytes, int4/
ternary/binary bit-packed, fp16, or fp32 when a layer stays FP32; embedding tables int8 with a
per-row scale; other tensors of rank >= 2, such as a learned positional table used by an add,
in FP32 since nothing quantizes them) plus the scales and zero
points (float32 scales for 8-bit, float16 for 1-4 bits; symmetric weight zero points are 0 by
definition and not stored). model_bytes adds everything else the quantized model ships:
biases (int32 for static int8, else float), vectors such as LayerNorm's (fp16 for quant=fp16)
and a float32 scale + one-byte zero point per quantized activation.
fp32_bytes is the original model's state_dict (BatchNorm and all) as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import fx, nn

from edgebench.quantize.lowbit import packed_bytes
from edgebench.quantize.scheme import QuantDescription


@dataclass(frozen=True)
class SizeReport:
    fp32_bytes: int
    weight_bytes: int
    model_bytes: int
    layers: dict[str, int] = field(default_factory=dict)  # weight_bytes per conv/linear

    @property
    def weight_ratio(self) -> float:
        return self.weight_bytes / self.fp32_bytes

    @property
    def model_ratio(self) -> float:
        return self.model_bytes / self.fp32_bytes


def state_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer as stored (the FP32 baseline)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def size_report(original: nn.Module, float_gm: fx.GraphModule,
                description: QuantDescription) -> SizeReport:
    """Sizes of the quantized model described by `description` over graph `float_gm`."""
    fp16 = description.method == "fp16"
    layers: dict[str, int] = {}
    counted: set[str] = set()
    extra = 0
    nodes = {n.name: n for n in float_gm.graph.nodes}
    for la in description.weighted:
        node = nodes[la.node]
        w_arg = node.args[0 if la.op == "embedding" else 1]
        w_target = w_arg.target if isinstance(w_arg, fx.Node) else None
        b_arg = node.args[2] if len(node.args) > 2 and la.op != "embedding" else None
        b_target = b_arg.target if isinstance(b_arg, fx.Node) else None
        weight = float_gm.get_parameter(w_target) if w_target else None
        numel = weight.numel() if weight is not None else 0
        bias_numel = float_gm.get_parameter(b_target).numel() if b_target else 0
        if la.weight_q is not None and la.weight_bits is not None:
            scale_bytes = (4 if la.weight_bits >= 8 else 2) * len(la.weight_scale)
            size = packed_bytes(numel, la.weight_bits) + scale_bytes
            extra += bias_numel * 4  # int32 (static) or float32 (dynamic)
        else:
            per = 2 if fp16 else 4
            size = numel * per
            extra += bias_numel * per
        if w_target in counted:  # a module called twice stores its weights once
            size = 0
        counted.update(t for t in (w_target, b_target) if t)
        layers[la.name] = size
    other = 0
    for target, tensor in list(float_gm.named_parameters()) + list(float_gm.named_buffers()):
        if target in counted:
            continue
        size = tensor.numel() * (2 if fp16 and tensor.is_floating_point()
                                 else tensor.element_size())
        if tensor.dim() >= 2:
            other += size
        else:
            extra += size
    extra += 5 * len(description.tensors)
    weight = sum(layers.values()) + other
    return SizeReport(state_bytes(original), weight, weight + extra, layers)
