"""The FP32 glue between our NHWC kernels, so a model whose layers all run on our kernels
needs no MetaSchedule task at all: NCHW -> padded NHWC at the model's input, an NHWC pad in
front of a padded conv, max pool, global average pool, NHWC -> NCHW at the outputs.

Channels are the vector axis (a power of two dividing C, up to 16 lanes) wherever the layout
allows; the transposes at the boundaries are scalar (they touch a model's input or output once).
`dtype` is what our NHWC kernels compute in (float32, or float16 for an FP16 build): the
boundary kernels cast to and from the model's float32 tensors on the way.
Every kernel here has one input and one output, so (as kernels/int8_pool.py explains) its loops
sit in a root block for Relax's reshape detection, which the parse-time verifier does not
accept (the build lowers it like any TE function).
"""

from __future__ import annotations

import math

from edgebench.kernels.fp32_conv import ATTRS
from edgebench.kernels.int8_pool import PoolShape, max_window, pool_fits


def _lanes(c: int) -> int:
    return math.gcd(c, 16)


def to_nhwc_kernel(n: int, c: int, h: int, w: int, pad: tuple[int, int, int, int], cp: int,
                   dtype: str = "float32"):
    """x[n, c, h, w] (NCHW float32) -> y[n, top + h + bottom, left + w + right, cp] (dtype)
    with pad = (top, bottom, left, right): zero rows/columns around, zero channels c..cp."""
    from tvm.script import tirx as T

    top, bottom, left, right = pad
    OH, OW = h + top + bottom, w + left + right

    @T.prim_func(check_well_formed=False)
    def to_nhwc(x: T.Buffer((n, c, h, w), "float32"), y: T.Buffer((n, OH, OW, cp), dtype)):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for b, i, j, k in T.grid(n, OH, OW, cp):
                y[b, i, j, k] = T.Cast(dtype, T.if_then_else(
                    i >= top and i < top + h and j >= left and j < left + w and k < c,
                    x[b, T.min(k, c - 1), T.max(T.min(i - top, h - 1), 0),
                      T.max(T.min(j - left, w - 1), 0)], T.float32(0)))

    return to_nhwc


def to_nchw_kernel(n: int, h: int, w: int, cp: int, c: int, dtype: str = "float32"):
    """x[n, h, w, cp] (NHWC dtype, padded channels) -> y[n, c, h, w] (float32)."""
    from tvm.script import tirx as T

    @T.prim_func(check_well_formed=False)
    def to_nchw(x: T.Buffer((n, h, w, cp), dtype), y: T.Buffer((n, c, h, w), "float32")):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for b, k, i, j in T.grid(n, c, h, w):
                y[b, k, i, j] = T.Cast("float32", x[b, i, j, k])

    return to_nchw


def pad_kernel(n: int, h: int, w: int, c: int, pad: tuple[int, int, int, int],
               dtype: str = "float32"):
    """x[n, h, w, c] -> y[n, top + h + bottom, left + w + right, c] with pad = (top, bottom,
    left, right) zero rows/columns around (NHWC, vector over c)."""
    from tvm.script import tirx as T

    top, bottom, left, right = pad
    OH, OW, L = h + top + bottom, w + left + right, _lanes(c)

    @T.prim_func(check_well_formed=False)
    def pad_nhwc(x: T.Buffer((n, h, w, c), dtype), y: T.Buffer((n, OH, OW, c), dtype)):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for b, i, j, cb in T.grid(n, OH, OW, c // L):
                for lane in T.vectorized(L):
                    y[b, i, j, cb * L + lane] = T.if_then_else(
                        i >= top and i < top + h and j >= left and j < left + w,
                        x[b, T.max(T.min(i - top, h - 1), 0),
                          T.max(T.min(j - left, w - 1), 0), cb * L + lane], T.Cast(dtype, 0))

    return pad_nhwc


Pool = PoolShape  # the NHWC max pool geometry is the int8 kernel's (kernels/int8_pool.py)


def max_pool_kernel(s: Pool, dtype: str = "float32"):
    """x[n, h, w, c] -> y[n, oh, ow, c] (dtype): the max over each window (dilation 1)."""
    from tvm.script import tirx as T

    if not pool_fits(s):
        raise ValueError(f"max_pool_kernel: {s} needs padding <= kernel / 2")
    N, H, W, C, OH, OW = s.n, s.h, s.w, s.c, s.oh, s.ow
    L = _lanes(C)

    def window(x, n, oh, ow, c):
        return max_window(T, s, x, n, oh, ow, c)

    @T.prim_func(check_well_formed=False)
    def max_pool_f32(x: T.Buffer((N, H, W, C), dtype),
                     y: T.Buffer((N, OH, OW, C), dtype)):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for n, oh, ow, cb in T.grid(N, OH, OW, C // L):
                for lane in T.vectorized(L):
                    y[n, oh, ow, cb * L + lane] = window(x, n, oh, ow, cb * L + lane)

    return max_pool_f32


def global_mean_kernel(n: int, h: int, w: int, cp: int, c: int, dtype: str = "float32"):
    """x[n, h, w, cp] (dtype) -> y[n, c] (float32, summed in float32), the mean over h and w
    (the first c channels): the flattened result of a global average pool, in the same order
    in NCHW and NHWC."""
    from tvm.script import tirx as T

    L = _lanes(c)
    inv = 1.0 / (h * w)

    @T.prim_func(check_well_formed=False)
    def global_mean(x: T.Buffer((n, h, w, cp), dtype), y: T.Buffer((n, c), "float32")):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for b, cb in T.grid(n, c // L):
                for lane in T.vectorized(L):
                    y[b, cb * L + lane] = T.float32(0)
                for i, j in T.grid(h, w):
                    for lane in T.vectorized(L):
                        y[b, cb * L + lane] = y[b, cb * L + lane] + T.Cast(
                            "float32", x[b, i, j, cb * L + lane])
                for lane in T.vectorized(L):
                    y[b, cb * L + lane] = y[b, cb * L + lane] * T.float32(inv)

    return global_mean


def crop_kernel(m: int, cp: int, c: int, dtype: str = "float32"):
    """x[m, cp] (dtype) -> y[m, c] (float32): a linear's rows without the padded columns."""
    from tvm.script import tirx as T

    @T.prim_func(check_well_formed=False)
    def crop(x: T.Buffer((m, cp), dtype), y: T.Buffer((m, c), "float32")):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for i, j in T.grid(m, c):
                y[i, j] = T.Cast("float32", x[i, j])

    return crop

