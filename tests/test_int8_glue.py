"""Our integer glue kernels: the NHWC max pool (kernels/int8_pool.py), exact against aten's
max_pool2d over padding, ceil_mode, odd channel counts and both integer dtypes; the
requantized add (kernels/int8_add.py) and the input quantize + NHWC + pad
(kernels/int8_quantize.py), bit exact against arith's rules incl. rounding ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tvm

from edgebench.kernels.int8_add import AddQuant, add_kernel
from edgebench.kernels.int8_pool import PoolShape, max_pool_kernel, pool_fits
from edgebench.kernels.int8_quantize import InputQuant, quantize_nhwc_kernel
from edgebench.quantize.arith import (
    QRANGE,
    common_multipliers,
    inv_scale,
    quantize,
    shift_round_half_even,
)
from edgebench.targets import find_target


def _compile(func):
    return tvm.compile(tvm.IRModule({"main": func}), target=find_target("x86-native").tvm_target())

# (h, w, c, kernel, stride, padding, ceil_mode): ResNet's stem pool, ceil windows that start
# inside the input, a padded 2x2 with ceil, stride 1, channels of 24 and 3 (8- and 1-byte
# vectors), a non-square window
SHAPES = [(112, 112, 64, (3, 3), (2, 2), (1, 1), False), (13, 13, 32, (3, 3), (2, 2), (0, 0), True),
          (9, 11, 16, (2, 2), (2, 2), (1, 1), True), (8, 8, 48, (3, 3), (1, 1), (1, 1), False),
          (7, 6, 24, (2, 2), (2, 2), (0, 0), False), (5, 9, 3, (3, 2), (1, 2), (1, 1), True)]


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda v: "x".join(map(str, v[:3])) + f"k{v[3][0]}")
def test_max_pool_exact(shape: tuple, dtype: str) -> None:
    h, w, c, kernel, stride, padding, ceil = shape
    s = PoolShape(1, h, w, c, kernel, stride, padding, ceil)
    lib = _compile(max_pool_kernel(s, dtype))
    info = np.iinfo(dtype)
    x = np.random.default_rng(h * w + c).integers(info.min, info.max + 1, (1, h, w, c), dtype)
    want = torch.nn.functional.max_pool2d(
        torch.from_numpy(x).permute(0, 3, 1, 2).to(torch.int32), kernel, stride, padding,
        ceil_mode=ceil).permute(0, 2, 3, 1).numpy()
    assert want.shape == (1, s.oh, s.ow, c)  # aten's output size, ceil_mode included
    y = tvm.runtime.empty(want.shape, dtype, tvm.cpu())
    lib["main"](tvm.runtime.tensor(x), y)
    np.testing.assert_array_equal(y.numpy(), want)
    assert (want == info.min).mean() < 0.05  # the clamped border never reads a fake minimum


def test_fits_rule() -> None:
    """Clamped taps are exact only for contiguous windows that always hold a real element."""
    s = PoolShape(1, 8, 8, 16, (3, 3), (2, 2), (1, 1))
    assert pool_fits(s) and not pool_fits(s, dilation=(2, 2))
    assert not pool_fits(PoolShape(1, 8, 8, 16, (2, 2), (2, 2), (2, 2)))
    with pytest.raises(ValueError, match="padding"):
        max_pool_kernel(PoolShape(1, 8, 8, 16, (2, 2), (2, 2), (2, 2)), "uint8")


# (shape, a, b, out dtypes, ReLU): NHWC of whole vectors, a ragged tail, mixed signedness
ADDS = [((1, 56, 56, 4), "uint8", "uint8", "uint8", True),
        ((1, 7, 11, 13), "int8", "uint8", "int8", False), ((5,), "int8", "int8", "uint8", False)]


@pytest.mark.parametrize("case", ADDS, ids=lambda v: "x".join(map(str, v[0])) + f"-{v[3]}")
def test_add_bit_exact(case: tuple) -> None:
    shape, ta, tb, out, relu = case
    rng = np.random.default_rng(len(shape))
    (m0a, m0b), shift = common_multipliers([0.61, 0.0437])
    zp = 7 if out == "uint8" else -3
    lo, hi = QRANGE[out]
    q = AddQuant(za=5 if ta == "uint8" else -2, zb=130 if tb == "uint8" else 1, ma=m0a, mb=m0b,
                 shift=shift, zp=zp, lo=max(lo, zp) if relu else lo, hi=hi)
    a = rng.integers(QRANGE[ta][0], QRANGE[ta][1] + 1, shape, dtype=ta)
    b = rng.integers(QRANGE[tb][0], QRANGE[tb][1] + 1, shape, dtype=tb)
    p = (torch.from_numpy(a.astype(np.int64)) - q.za) * q.ma + \
        (torch.from_numpy(b.astype(np.int64)) - q.zb) * q.mb
    want = torch.clamp(shift_round_half_even(p, q.shift) + q.zp, q.lo, q.hi).numpy()
    y = tvm.runtime.empty(shape, out, tvm.cpu())
    _compile(add_kernel(shape, ta, tb, out, q))["main"](tvm.runtime.tensor(a),
                                                         tvm.runtime.tensor(b), y)
    np.testing.assert_array_equal(y.numpy(), want)
    assert len(np.unique(want)) > min(a.size, 60) // 2  # not saturated


def test_add_rounds_ties_to_even() -> None:
    """Multipliers whose products land exactly on .5 steps: ties go to the even integer."""
    q = AddQuant(za=0, zb=0, ma=3, mb=0, shift=1, zp=0, lo=-128, hi=127)
    a = np.arange(-40, 40, dtype=np.int8)  # 3a / 2: every odd a is a tie
    y = tvm.runtime.empty((a.size,), "int8", tvm.cpu())
    _compile(add_kernel(a.shape, "int8", "int8", "int8", q))["main"](
        tvm.runtime.tensor(a), tvm.runtime.tensor(np.zeros_like(a)), y)
    np.testing.assert_array_equal(y.numpy(), np.round(3 * a.astype(np.float64) / 2))


# (c, h, w, pad h, pad w, extra w, cp, dtype, zero point): ResNet's stem input, a row of 20
# (ragged: the last vector steps back), AMX extra columns, int8
INPUTS = [(3, 224, 224, 3, 3, 0, 4, "uint8", 114), (1, 8, 20, 1, 1, 2, 4, "uint8", 0),
          (3, 17, 33, 1, 1, 0, 4, "int8", -3)]


@pytest.mark.parametrize("case", INPUTS, ids=lambda v: f"{v[1]}x{v[2]}-{v[7]}")
def test_quantize_input_bit_exact(case: tuple) -> None:
    c, h, w, ph, pw, extra, cp, dtype, zp = case
    scale = 0.0173
    qmin, qmax = QRANGE[dtype]
    q = InputQuant(1, c, h, w, ph, pw, extra, cp, float(inv_scale(scale)), zp, qmin, qmax, dtype)
    rng = np.random.default_rng(h * w)
    x = (rng.standard_normal((1, c, h, w)) * 2).astype(np.float32)
    x.reshape(-1)[:6] = np.float32(scale) * np.array([0.5, 1.5, 2.5, -0.5, 300, -300],
                                                     np.float32)  # near ties, saturation
    want = np.full(q.out_shape, zp, np.int64)  # borders, padded channels: the zero point
    want[:, ph:ph + h, pw:pw + w, :c] = quantize(torch.from_numpy(x), scale, zp, qmin,
                                                 qmax).numpy().transpose(0, 2, 3, 1)
    y = tvm.runtime.empty(q.out_shape, dtype, tvm.cpu())
    _compile(quantize_nhwc_kernel(q))["main"](tvm.runtime.tensor(x), y)
    np.testing.assert_array_equal(y.numpy().astype(np.int64), want)
    assert {qmin, qmax} <= set(want.reshape(-1).tolist())
