"""The NHWC integer max pool kernel (kernels/int8_pool.py): exact against aten's max_pool2d
over padding, ceil_mode, odd channel counts and both integer dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tvm

from edgebench.kernels.int8_pool import PoolShape, max_pool_kernel, pool_fits
from edgebench.targets import find_target

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
    lib = tvm.compile(tvm.IRModule({"main": max_pool_kernel(s, dtype)}),
                      target=find_target("x86-native").tvm_target())
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
