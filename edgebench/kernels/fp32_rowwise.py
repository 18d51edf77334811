"""The transformer glue on kernels of ours (torch layout, so the lowering needs no layout
change): layer norm and softmax over the last axis, GELU, elementwise add / scale, the
embedding lookup, an integer cast, a transpose and a mean over one axis.

Every kernel reads and writes flat row-major tensors ([rows, d] or [n]); the lowering hands
them free views (relax memory.view) of the model's N-D tensors, so one kernel serves every
rank. The vector axis is the last one (up to 16 lanes dividing it); row reductions keep one
vector of partial sums and add its lanes at the end.

exp and erf are polynomials written here (Cephes' expf, Eigen's float erf: a few ulp, no
libm call, so a 16-lane loop stays 16 lanes wide): LLVM turns a vector `exp` into 16
scalar expf calls.

Like kernels/fp32_glue.py, a one-input one-output kernel keeps its loops in a root block for
Relax's reshape detection (the parse-time verifier does not accept that).

In an int8 build the float glue feeds int8 layers: layer norm, GELU, a transpose and a bare
quantize take a `Quant` and store the quantized integers (the int8 lowering's rule 1, op for
op) instead of the floats, so no float tensor is written and read back in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgebench.kernels.fp32_conv import ATTRS

LOG2E = 1.44269504088896341
EXP_LO, EXP_HI = -87.0, 88.0  # 2^n stays a normal float
# Eigen's float erf: erf(x) = x p(x^2) / q(x^2) on [-4, 4] (erf(4) = 1 in float32)
ERF_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
             -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
             -1.60960333262415e-02)
ERF_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
            -7.37332916720468e-03, -1.42647390514189e-02)


def lanes(d: int) -> int:
    """The vector width along an axis of d elements: the largest power of two <= 16 dividing d."""
    return math.gcd(d, 16)


def exp(T, x):
    """e^x as a Cephes polynomial times 2^n (exponent bits), one vector-friendly expression."""
    x = T.max(T.min(x, T.float32(EXP_HI)), T.float32(EXP_LO))
    n = T.floor(x * T.float32(LOG2E) + T.float32(0.5))
    r = x - n * T.float32(0.693359375) - n * T.float32(-2.12194440e-4)
    p = T.float32(1.9875691500e-4)
    for c in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
              5.0000001201e-1):
        p = p * r + T.float32(c)
    p = p * r * r + r + T.float32(1)
    two_n = T.reinterpret("float32", T.shift_left(T.Cast("int32", n) + 127, 23))
    return p * two_n


def erf(T, x):
    """erf(x), Eigen's rational approximation (clamped to [-4, 4])."""
    x = T.max(T.min(x, T.float32(4)), T.float32(-4))
    x2 = x * x
    p = T.float32(ERF_ALPHA[0])
    for c in ERF_ALPHA[1:]:
        p = p * x2 + T.float32(c)
    q = T.float32(ERF_BETA[0])
    for c in ERF_BETA[1:]:
        q = q * x2 + T.float32(c)
    return x * p / q


@dataclass(frozen=True)
class Quant:
    """A quantizing store: clamp(round_half_even(x * inv_scale) + zero_point, qmin, qmax) in
    float32, then the integer dtype (passes/int8.py quantize_expr, the oracle's rule 1)."""

    inv_scale: float  # float32(1) / float32(scale), as arith.inv_scale
    zero_point: int
    qmin: int
    qmax: int
    dtype: str


def store(T, x, quant: Quant | None):
    """What a kernel writes for the float x: x itself, or its quantized integer."""
    if quant is None:
        return x
    r = T.round(x * T.float32(quant.inv_scale)) + T.float32(quant.zero_point)
    return T.Cast(quant.dtype, T.min(T.max(r, T.float32(quant.qmin)), T.float32(quant.qmax)))


def out_dtype(quant: Quant | None) -> str:
    return "float32" if quant is None else quant.dtype


def gelu(T, x):
    """PyTorch's default (erf) GELU: x/2 (1 + erf(x / sqrt 2))."""
    return T.float32(0.5) * x * (T.float32(1) + erf(T, x * T.float32(0.7071067811865476)))


def layer_norm_kernel(rows: int, d: int, eps: float, quant: Quant | None = None):
    """x[rows, d], gamma[d], beta[d] -> y[rows, d]: (x - mean) / sqrt(var + eps) * gamma + beta
    per row (two passes over the row, as PyTorch: the variance of the centred values);
    with `quant`, y holds its quantized integers."""
    from tvm.script import tirx as T

    L = lanes(d)
    inv_d = 1.0 / d
    ydt = out_dtype(quant)

    @T.prim_func
    def layer_norm(x: T.Buffer((rows, d), "float32"), gamma: T.Buffer((d,), "float32"),
                   beta: T.Buffer((d,), "float32"), y: T.Buffer((rows, d), ydt)):
        T.func_attr(ATTRS)
        acc = T.alloc_buffer((L,), "float32")
        st = T.alloc_buffer((2,), "float32")
        for r in range(rows):
            for lane in T.vectorized(L):
                acc[lane] = T.float32(0)
            for b in range(d // L):
                for lane in T.vectorized(L):
                    acc[lane] = acc[lane] + x[r, b * L + lane]
            st[0] = T.float32(0)
            for lane in range(L):
                st[0] = st[0] + acc[lane]
            st[0] = st[0] * T.float32(inv_d)
            for lane in T.vectorized(L):
                acc[lane] = T.float32(0)
            for b in range(d // L):
                for lane in T.vectorized(L):
                    acc[lane] = acc[lane] + (x[r, b * L + lane] - st[0]) * (
                        x[r, b * L + lane] - st[0])
            st[1] = T.float32(0)
            for lane in range(L):
                st[1] = st[1] + acc[lane]
            st[1] = T.float32(1) / T.sqrt(st[1] * T.float32(inv_d) + T.float32(eps))
            for b in range(d // L):
                for lane in T.vectorized(L):
                    y[r, b * L + lane] = store(T, (x[r, b * L + lane] - st[0]) * st[1] * gamma[
                        b * L + lane] + beta[b * L + lane], quant)

    return layer_norm


def softmax_kernel(rows: int, d: int, scale: float = 1.0):
    """x[rows, d] -> y[rows, d] = softmax(scale * x) over each row (scale > 0: the max of the
    scaled row is the scaled max)."""
    from tvm.script import tirx as T

    if scale <= 0:
        raise ValueError(f"softmax_kernel: scale {scale} must be > 0")
    L = lanes(d)

    @T.prim_func(check_well_formed=False)
    def softmax(x: T.Buffer((rows, d), "float32"), y: T.Buffer((rows, d), "float32")):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            acc = T.alloc_buffer((L,), "float32")
            st = T.alloc_buffer((2,), "float32")
            for r in range(rows):
                for lane in T.vectorized(L):
                    acc[lane] = x[r, lane]
                for b in range(1, d // L):
                    for lane in T.vectorized(L):
                        acc[lane] = T.max(acc[lane], x[r, b * L + lane])
                st[0] = acc[0]
                for lane in range(1, L):
                    st[0] = T.max(st[0], acc[lane])
                for lane in T.vectorized(L):
                    acc[lane] = T.float32(0)
                for b in range(d // L):
                    for lane in T.vectorized(L):
                        y[r, b * L + lane] = exp(T, (x[r, b * L + lane] - st[0])
                                                 * T.float32(scale))
                        acc[lane] = acc[lane] + y[r, b * L + lane]
                st[1] = T.float32(0)
                for lane in range(L):
                    st[1] = st[1] + acc[lane]
                st[1] = T.float32(1) / st[1]
                for b in range(d // L):
                    for lane in T.vectorized(L):
                        y[r, b * L + lane] = y[r, b * L + lane] * st[1]

    return softmax


def unary_kernel(n: int, fn, name: str, quant: Quant | None = None):
    """x[n] -> y[n] = fn(T, x[i]) elementwise, vectors of up to 16 lanes (quantized: `quant`)."""
    from tvm.script import tirx as T

    L = lanes(n)
    ydt = out_dtype(quant)

    @T.prim_func(check_well_formed=False)
    def unary(x: T.Buffer((n,), "float32"), y: T.Buffer((n,), ydt)):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for i in range(n // L):
                for lane in T.vectorized(L):
                    y[i * L + lane] = store(T, fn(T, x[i * L + lane]), quant)

    return unary.with_attr("global_symbol", name)


def gelu_kernel(n: int, quant: Quant | None = None):
    """x[n] -> y[n] = GELU(x) (erf form)."""
    return unary_kernel(n, gelu, "gelu_f32", quant)


def quantize_kernel(n: int, quant: Quant):
    """x[n] float32 -> y[n] its quantized integers (a float value into an int8 layer)."""
    return unary_kernel(n, lambda T, v: v, "quantize_f32", quant)


def sigmoid_kernel(n: int):
    """x[n] -> y[n] = 1 / (1 + e^-x)."""
    from edgebench.kernels.fp32_conv import activation

    return unary_kernel(n, lambda T, v: activation(T, v, "sigmoid"), "sigmoid_f32")


def scale_kernel(n: int, scale: float):
    """x[n] * scale -> y[n]."""
    return unary_kernel(n, lambda T, v: v * T.float32(scale), "scale_f32")


def clamp_kernel(n: int, act: str):
    """x[n] -> y[n] = ReLU(x) or ReLU6(x) (after a residual add whose operands our layout
    could not fuse, e.g. a sparse conv's NCHW output)."""
    from edgebench.kernels.fp32_conv import activation

    return unary_kernel(n, lambda T, v: activation(T, v, act), f"clamp_{act}_f32")


def add_kernel(n: int):
    """a[n] + b[n] -> y[n]."""
    from tvm.script import tirx as T

    L = lanes(n)

    @T.prim_func
    def add_f32(a: T.Buffer((n,), "float32"), b: T.Buffer((n,), "float32"),
                y: T.Buffer((n,), "float32")):
        T.func_attr(ATTRS)
        for i in range(n // L):
            for lane in T.vectorized(L):
                y[i * L + lane] = a[i * L + lane] + b[i * L + lane]

    return add_f32


def take_rows_kernel(vocab: int, d: int, n: int, index_dtype: str):
    """table[vocab, d], ids[n] -> y[n, d] = table[ids] (an embedding; an id out of range is
    clamped, as TVM's take mode="fast" leaves it undefined)."""
    from tvm.script import tirx as T

    L = lanes(d)

    @T.prim_func
    def take_rows(table: T.Buffer((vocab, d), "float32"), ids: T.Buffer((n,), index_dtype),
                  y: T.Buffer((n, d), "float32")):
        T.func_attr(ATTRS)
        for i, b in T.grid(n, d // L):
            for lane in T.vectorized(L):
                y[i, b * L + lane] = table[T.max(T.min(T.Cast("int32", ids[i]), vocab - 1), 0),
                                           b * L + lane]

    return take_rows


def take_scaled_rows_kernel(vocab: int, d: int, n: int, index_dtype: str):
    """table[vocab, d] int8, scale[vocab], ids[n] -> y[n, d] = float32(table[id]) * scale[id]:
    an int8 embedding (the oracle's rule 10) dequantized as its rows are gathered (ids
    clamped as take_rows_kernel's)."""
    from tvm.script import tirx as T

    L = lanes(d)

    @T.prim_func
    def take_scaled_rows(table: T.Buffer((vocab, d), "int8"),
                         scale: T.Buffer((vocab,), "float32"),
                         ids: T.Buffer((n,), index_dtype), y: T.Buffer((n, d), "float32")):
        T.func_attr(ATTRS)
        for i, b in T.grid(n, d // L):
            for lane in T.vectorized(L):
                y[i, b * L + lane] = T.Cast("float32", table[
                    T.max(T.min(T.Cast("int32", ids[i]), vocab - 1), 0), b * L + lane]) * scale[
                    T.max(T.min(T.Cast("int32", ids[i]), vocab - 1), 0)]

    return take_scaled_rows


def cast_kernel(n: int, src: str, dst: str):
    """x[n] (src) -> y[n] (dst)."""
    from tvm.script import tirx as T

    @T.prim_func(check_well_formed=False)
    def cast(x: T.Buffer((n,), src), y: T.Buffer((n,), dst)):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for i in range(n):
                y[i] = T.Cast(dst, x[i])

    return cast


def transpose_kernel(shape: tuple[int, ...], axes: tuple[int, ...], quant: Quant | None = None):
    """x (row-major `shape`, flat) -> y = x.permute(axes) (flat; quantized: `quant`), one
    output row at a time: its source offset computed once, its elements `step` apart in x
    (1 when the last axis stays last: whole rows move as vectors; else strided loads, e.g.
    attention's K^T)."""
    from tvm.script import tirx as T

    nd = len(shape)
    out = tuple(shape[a] for a in axes)
    strides = [math.prod(shape[i + 1:]) for i in range(nd)]
    total = math.prod(shape)
    step = strides[axes[-1]]
    inner = out[-1]
    L = lanes(inner)
    outer = out[:-1]

    def source(i):
        """The flat input offset of output element (row) i over `outer`."""
        off = 0
        for pos in range(len(outer) - 1, -1, -1):
            off = off + (i % outer[pos]) * strides[axes[pos]]
            i = i // outer[pos]
        return off

    count = math.prod(outer)
    ydt = out_dtype(quant)

    @T.prim_func(check_well_formed=False)
    def transpose(x: T.Buffer((total,), "float32"), y: T.Buffer((total,), ydt)):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for i in range(count):
                for b in range(inner // L):
                    for lane in T.vectorized(L):
                        y[i * inner + b * L + lane] = store(
                            T, x[source(i) + (b * L + lane) * step], quant)

    return transpose


def mean_axis_kernel(outer: int, r: int, d: int):
    """x[outer, r, d] -> y[outer, d]: the mean over the middle axis (vectors along d)."""
    from tvm.script import tirx as T

    L = lanes(d)
    inv = 1.0 / r

    @T.prim_func(check_well_formed=False)
    def mean_axis(x: T.Buffer((outer, r, d), "float32"), y: T.Buffer((outer, d), "float32")):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for o, b in T.grid(outer, d // L):
                for lane in T.vectorized(L):
                    y[o, b * L + lane] = T.float32(0)
                for i in range(r):
                    for lane in T.vectorized(L):
                        y[o, b * L + lane] = y[o, b * L + lane] + x[o, i, b * L + lane]
                for lane in T.vectorized(L):
                    y[o, b * L + lane] = y[o, b * L + lane] * T.float32(inv)

    return mean_axis


def pad_kernel(shape: tuple[int, ...], pads: tuple[tuple[int, int], ...]):
    """x (row-major `shape`) -> y with pads[i] = (before, after) zeros on axis i (the NCHW
    pad in front of a sparse conv). Element by element: it runs on few, small tensors."""
    from tvm.script import tirx as T

    out = tuple(d + a + b for d, (a, b) in zip(shape, pads, strict=True))
    total, n_out = math.prod(shape), math.prod(out)
    nd = len(shape)

    def gather(i):
        """(inside the input?, its flat offset) of output element i."""
        inside, off, stride = True, 0, 1
        for ax in range(nd - 1, -1, -1):
            pos = i % out[ax] - pads[ax][0]
            inside = T.And(inside, T.And(pos >= 0, pos < shape[ax])) if ax < nd - 1 else \
                T.And(pos >= 0, pos < shape[ax])
            off = off + T.max(T.min(pos, shape[ax] - 1), 0) * stride
            stride *= shape[ax]
            i = i // out[ax]
        return inside, off

    @T.prim_func(check_well_formed=False)
    def pad_f32(x: T.Buffer((total,), "float32"), y: T.Buffer((n_out,), "float32")):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for i in range(n_out):
                y[i] = T.if_then_else(gather(i)[0], x[gather(i)[1]], T.float32(0))

    return pad_f32


def slice_last_kernel(rows: int, d: int, begin: int, end: int):
    """x[rows, d] -> y[rows, end - begin] = x[:, begin:end] (a strided_slice of the last axis,
    step 1)."""
    from tvm.script import tirx as T

    w = end - begin

    @T.prim_func(check_well_formed=False)
    def slice_last(x: T.Buffer((rows, d), "float32"), y: T.Buffer((rows, w), "float32")):
        T.func_attr(ATTRS)
        with T.sblock("root"):
            for r, j in T.grid(rows, w):
                y[r, j] = x[r, begin + j]

    return slice_last

