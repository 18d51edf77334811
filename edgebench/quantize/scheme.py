"""The quantized-model description: the FP32 graph plus, per op, how it is quantized.

This is edgebench's own format because torch.ao quantized modules do not survive torch.export
into TVM. Entries are keyed by the node names of the torch.export graph of the BN-folded FP32
model (QuantResult.float_model), the graph TVM's Relax frontend imports, and by module names
for conv/linear; a later Relax pass lowers each int8 entry to integer code using exactly the
integer fields here (weight_q, bias_q, multiplier, shift, clamp), so it never re-derives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from edgebench.quantize.arith import MIN_SCALE, QRANGE, f32
from edgebench.quantize.lowbit import pack


@dataclass(frozen=True)
class ActQParams:
    """Asymmetric per-tensor activation quantization: real = (q - zero_point) * scale.

    scale is a float32 value; zero_point lies in [qmin, qmax]; 0.0 is exactly representable
    (q = zero_point), so zero padding and ReLU are exact in the integer domain.
    """

    scale: float
    zero_point: int
    dtype: str = "uint8"

    @property
    def qmin(self) -> int:
        return QRANGE[self.dtype][0]

    @property
    def qmax(self) -> int:
        return QRANGE[self.dtype][1]


def choose_qparams(lo: float, hi: float, dtype: str = "uint8") -> ActQParams:
    """Range [lo, hi] (widened to contain 0) -> scale and zero point.

    scale = float32((hi - lo) / (qmax - qmin)) (1.0 for an all-zero range, at least
    MIN_SCALE = 2**-120 so that 1 / scale stays a finite float32: tiny activations, as in
    randomly initialised deep nets, keep their 256 levels);
    zero_point = clamp(qmin - round_half_even(float32(lo) / scale), qmin, qmax).
    """
    qmin, qmax = QRANGE[dtype]
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max(f32((hi - lo) / (qmax - qmin)) if hi > lo else 1.0, MIN_SCALE)
    zp = int(np.clip(qmin - np.rint(np.float32(lo) / np.float32(scale)), qmin, qmax))
    return ActQParams(scale, zp, dtype)


@dataclass
class LayerQuant:
    """One op of the exported graph and how it runs (a fused activation folds into its producer).

    scheme: "static" (int8 with calibrated activation qparams), "dynamic" (int8 weights,
    activation qparams computed per sample at run time, float output), "fp16", or "fp32"
    (kept_fp32 with the reason: dequantize before, quantize after).
    weight_dtype: "int8" | "int4" | "ternary" | "binary" | "float16" | "float32" (conv/linear).
    Weight scales are per output channel (or one per tensor); weight zero points are 0
    (symmetric) and stored as such. inputs: qparams of each tensor operand (None = float).
    output: None when the op emits float (a conv/linear whose consumers are all FP32 or the
    graph output dequantizes its accumulator instead of requantizing).

    Embedding (weight-only): weight_q holds the int table, weight_scale/out_scale one float32
    scale per row, output float (rule 10 of reference.py).
    Integer form (static/dynamic conv and linear, add, avg pool, clamp; see reference.py):
    weight_q int8 tensor of integer weights, bias_q int32 (static; dynamic keeps bias_float),
    multiplier/shift int64 (M0, n) per output channel (add: one M0 per input, one shared n),
    out_scale float32 per channel (float output: y = float32(acc) * out_scale), clamp (lo, hi)
    bounds of the int output after the fused activation.
    """

    name: str
    node: str
    op: str
    index: int
    scheme: str
    weight_dtype: str | None = None
    weight_bits: int | None = None
    per_channel: bool | None = None
    weight_scale: tuple[float, ...] = ()
    weight_zero_point: tuple[int, ...] = ()
    inputs: tuple[ActQParams | None, ...] = ()
    output: ActQParams | None = None
    activation: str | None = None
    fused: tuple[str, ...] = ()
    kept_fp32: bool = False
    reason: str = ""
    weight_q: torch.Tensor | None = field(default=None, repr=False)
    bias_q: torch.Tensor | None = field(default=None, repr=False)
    bias_float: torch.Tensor | None = field(default=None, repr=False)
    multiplier: torch.Tensor | None = field(default=None, repr=False)
    shift: torch.Tensor | None = field(default=None, repr=False)
    out_scale: torch.Tensor | None = field(default=None, repr=False)
    clamp: tuple[int, int] | None = None
    bias_saturated: bool = False

    @property
    def integer(self) -> bool:
        return self.scheme in ("static", "dynamic")

    def packed(self) -> torch.Tensor:
        """The integer weights as stored: uint8 bytes, bit-packed below 8 bits (lowbit.py)."""
        if self.weight_q is None or self.weight_bits is None:
            raise ValueError(f"layer {self.name} has no integer weights")
        return pack(self.weight_q, self.weight_bits)


@dataclass
class QuantDescription:
    """Every op of the graph in execution order, plus the qparams of every int8 tensor.

    tensors maps the node name that owns a quantized tensor to its qparams: int8 op outputs
    and the FP32 tensors (graph inputs included) that are quantized on their way into an int8
    op. Pass-through ops (flatten, reshape, max pool, unfused clamps) reuse their input's.
    """

    method: str
    layers: list[LayerQuant]
    tensors: dict[str, ActQParams] = field(default_factory=dict)

    @property
    def by_node(self) -> dict[str, LayerQuant]:
        return {la.node: la for la in self.layers}

    def layer(self, name: str) -> LayerQuant:
        """Look up by layer name (module path for conv/linear) or node name."""
        for la in self.layers:
            if name in (la.name, la.node):
                return la
        raise KeyError(f"no layer or node named '{name}'")

    @property
    def kept_fp32(self) -> list[LayerQuant]:
        return [la for la in self.layers if la.kept_fp32]

    @property
    def weighted(self) -> list[LayerQuant]:
        """conv2d/linear/embedding entries (the layers that own weights)."""
        return [la for la in self.layers if la.op in ("conv2d", "linear", "embedding")]

    def table(self) -> str:
        """Markdown: one row per op (what a reviewer reads to see what was quantized how)."""
        rows = ["| layer | node | op | scheme | weights | in scale/zp | out scale/zp | note |",
                "|---|---|---|---|---|---|---|---|"]

        def qp(q: ActQParams | None) -> str:
            return f"{q.scale:.4g}/{q.zero_point} {q.dtype}" if q else "float"

        for la in self.layers:
            weights = ""
            if la.weight_dtype:
                kind = ("per-row" if la.op == "embedding" else "per-channel"
                        if la.per_channel else "per-tensor")
                weights = f"{la.weight_dtype} {kind}" if la.weight_scale else la.weight_dtype
            ins = ", ".join(qp(q) for q in la.inputs) if la.inputs else ""
            note = la.reason if la.kept_fp32 else (f"+{la.activation}" if la.activation else "")
            out = qp(la.output) if la.scheme in ("static", "dynamic") else la.scheme
            rows.append(f"| {la.name} | {la.node} | {la.op} | {la.scheme} | {weights} | {ins} "
                        f"| {out} | {note} |")
        return "\n".join(rows)
