"""FP32 Linear on our conv builder: the rows are the pixels of a 1 x M image and the layer a 1x1
conv, so one micro-kernel serves both shapes a Linear takes. One row (batch-1 inference) is a
weight-streaming GEMV: Conv.blocking gives it 8 channel vectors (8 independent FMA chains) over
a contiguous [C, 128] weight panel per step, the weights read exactly once. Many rows (the
encoder's tokens) are a packed GEMM: 6 rows x 4 vectors of accumulators, the same tile as a
conv. Weights are packed once at build time, K padded to the lanes.
"""

from __future__ import annotations

import numpy as np

from edgebench.kernels.fp32_conv import Conv, conv_kernel, packed
from edgebench.kernels.fp32_conv import pack_weights as pack_conv
from edgebench.kernels.layer import (
    AVX512,
    NO_EPILOGUE,
    Epilogue,
    Layer,
    Vectors,
    fp32_reason,
    vectors,
)

NAME = "fp32_dense"


def dense_shape(m: int, c: int, k: int, vec: Vectors = AVX512, rows: bool = False) -> Conv:
    """The conv geometry of y[m, k] = x[m, c] @ w.T: K padded to a multiple of NK vectors,
    the most (8, 4, 2, 1) that waste at most 1/8 of the work on zero columns (a GEMV needs
    several independent FMA chains: 1000 classes -> 1024 = 8 x 128)."""
    for nk in (8, 4, 2, 1):
        kp = -(-k // (nk * vec.lanes)) * nk * vec.lanes
        if nk == 1 or (kp - k) * 8 <= k:
            return Conv(1, 1, m, c, kp, 1, 1, vec=vec, rows=rows)
    raise AssertionError("unreachable")


def pack_weights(w: np.ndarray, s: Conv) -> np.ndarray:
    """torch's [K, C] Linear weight -> the kernel's packed panels."""
    return pack_conv(w.reshape(*w.shape, 1, 1), s)


def dense_kernel(s: Conv, ep: Epilogue = NO_EPILOGUE):
    """TIR PrimFunc: args (x[1, 1, m, c], packed w, bias[kp], [residual[1, 1, m, kp]],
    y[1, 1, m, kp]); with s.rows x[m, c], residual and y [m, kp]."""
    return conv_kernel(s, ep)


# ---- the registry's interface (kernels/registry.py) ----

def shape(layer: Layer, target) -> Conv:
    """A linear's rows (layer.w) as 2-D [m, c] -> [m, kp] tensors."""
    return dense_shape(layer.w, layer.in_channels, layer.k, vectors(target, layer.dtype),
                       rows=True)


def fits(layer: Layer, target) -> str | None:
    return "not a linear" if layer.kind != "linear" else fp32_reason(layer, target)


def emit(layer: Layer, target):
    return dense_kernel(shape(layer, target), layer.epilogue)


def pack(layer: Layer, target, weight: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    return packed(shape(layer, target), layer, weight, bias)
