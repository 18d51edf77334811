"""What the int8 lowering (passes/int8.py) and its `+sparse` part (passes/int8_sparse.py)
share: the per-layer record, a layer's fused epilogue as our kernels take it, and the small
checks both make. Its own module so neither of the two imports the other's internals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import fx
from tvm import relax

from edgebench.kernels.layer import Int8Out
from edgebench.quantize.arith import INT32_MAX, INT32_MIN, f64_requantize_exact
from edgebench.quantize.scheme import LayerQuant


@dataclass
class LoweredLayer:
    """What happened to one entry of the description (for the result rows and the tests)."""

    node: str
    op: str
    kind: str  # "int8" | "float-out" | "dynamic" | "fp32" | "int8-move"
    kernel: str = "relax"  # which code computes it ("relax" = TVM's op, "vnni"/"sdot" = ours)
    symbol: str = ""  # our kernel's function name in the built library
    dot_product: bool | None = None  # the built code of `symbol` has the dot-product instr
    instruction: str = "vpdpbusd"  # the dot-product instruction `symbol` must contain
    weights: str = ""  # for ternary/binary models: how the weights are stored (int8 or packed)
    weight_bytes: int = 0  # bytes of the layer's weight constant in the artifact

    def describe(self) -> str:
        return f"{self.node}={self.fact()}"

    def fact(self) -> str:
        """`kind[/kernel(instruction check)][:weights]`: its int8_layers entry."""
        text = self.kind
        if self.kernel != "relax":
            text += f"/{self.kernel}"
            if self.dot_product is not None:
                text += (f"({self.instruction})" if self.dot_product
                         else f"(NO {self.instruction})")
        return text + (f":{self.weights}" if self.weights else "")


@dataclass
class Epilogue:
    """A layer's fused epilogue as our kernels take it: output dtype, zero point, clamp, the
    requantize form (kernels.int8_conv FIXED or EXACT_F64) and the per-channel arrays."""

    out: str
    zp: int
    lo: int
    hi: int
    requant: str
    arrays: list[np.ndarray]

    @property
    def spec(self) -> Int8Out:
        """What the kernel is built for (the arrays are arguments of its call)."""
        return Int8Out(self.out, self.zp, self.lo, self.hi, self.requant)


def epilogue_args(la: LayerQuant, n: int, size: int | None = None,
                  f64: bool = False) -> Epilogue:
    """A layer's fused epilogue for n channels: the float output scale, or the requantize
    multiplier and shift; with f64 (x86: float64 vectors are cheap) and where
    arith.f64_requantize_exact holds, the multipliers as exact float64 scales M0 * 2**-n
    instead. Arrays are padded with ones to `size` channels (padded outputs are sliced off;
    a shift of 1 keeps their requantize defined)."""
    from edgebench.kernels.int8_conv import EXACT_F64, FIXED

    requant = FIXED
    if la.output is None:
        assert la.out_scale is not None
        out, zp, lo, hi = "float32", 0, 0, 0
        arrays = [(la.out_scale.numpy(), np.float32)]
    else:
        assert la.multiplier is not None and la.shift is not None and la.clamp is not None
        out, zp, (lo, hi) = la.output.dtype, la.output.zero_point, la.clamp
        m0, shift = la.multiplier.numpy(), la.shift.numpy()
        if f64 and f64_requantize_exact(shift, zp, lo, hi):
            requant = EXACT_F64
            arrays = [(np.ldexp(m0.astype(np.float64), -shift.astype(np.int64)), np.float64)]
        else:
            arrays = [(m0, np.int64), (shift, np.int64)]
    padded = []
    for values, dtype in arrays:
        a = np.ones(size or n, dtype)
        a[:n] = np.broadcast_to(values.reshape(-1), (n,))
        padded.append(a)
    return Epilogue(out, zp, lo, hi, requant, padded)


def const(value: np.ndarray, dtype: str) -> relax.Constant:
    return relax.const(np.ascontiguousarray(np.asarray(value).astype(dtype)), dtype)


def bias_fits(bias: np.ndarray) -> bool:
    """The folded bias (with sdot's 128 * sum(w)) is still an int32."""
    return bool(np.all(bias >= INT32_MIN) and np.all(bias <= INT32_MAX))


def linear_on_dot(la: LayerQuant, node: fx.Node) -> bool:
    """A static linear our dot-product kernels can take at all: uint8 activations (u8 x s8),
    int8 weights, an input of rank >= 2 (rows x features)."""
    (qx,) = la.inputs
    return (qx is not None and qx.dtype == "uint8" and la.weight_q is not None
            and len(node.args[0].meta["val"].shape) >= 2)


def bn_affine(weight: np.ndarray | None, bias: np.ndarray | None, mean: np.ndarray,
              var: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """An eval BatchNorm's per-channel (scale, shift) as PyTorch's CPU kernel derives them,
    so fma(x, scale, shift) is its output bit for bit (the FP32 op the oracle runs):
    invstd = 1 / sqrt(var + eps), scale = invstd * weight in float32, and the shift
    bias - mean * scale contracted to one rounding (computed exactly in float64 here: the
    product of two float32 fits its 53 bits)."""
    f32, f64 = np.float32, np.float64
    k = mean.shape[0]
    weight = np.ones(k, f32) if weight is None else weight.astype(f32)
    bias = np.zeros(k, f32) if bias is None else bias.astype(f32)
    invstd = f32(1) / np.sqrt(var.astype(f32) + f32(eps))
    scale = (invstd * weight).astype(f32)
    shift = (bias.astype(f64) - mean.astype(f32).astype(f64) * scale.astype(f64)).astype(f32)
    return scale, shift
