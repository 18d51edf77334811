"""Our FP32 kernels (kernels/fp32_*.py) against PyTorch on random data, and their FMAs in the
built assembly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgebench.compile.asm import function_bodies, mnemonic
from edgebench.kernels import fp32_glue as glue
from edgebench.kernels import fp32_rowwise as rowwise
from edgebench.kernels.fp32_bmm import Bmm, bmm_kernel
from edgebench.kernels.fp32_conv import Conv, conv_kernel, pack_weights, pad_bias
from edgebench.kernels.fp32_dense import dense_kernel, dense_shape
from edgebench.kernels.fp32_dense import pack_weights as pack_dense
from edgebench.kernels.fp32_depthwise import Depthwise, depthwise_kernel
from edgebench.kernels.fp32_depthwise import pack_weights as pack_dw
from edgebench.kernels.fp32_winograd import MATRICES, Winograd, winograd_kernel
from edgebench.kernels.fp32_winograd import pack_weights as pack_wino
from edgebench.kernels.layer import Epilogue
from edgebench.targets import find_target

TARGET = find_target("x86-native")


def _build(func):
    import tvm

    return tvm.compile(tvm.IRModule({"main": func}), target=TARGET.tvm_target())


def _call(func, *arrays: np.ndarray, out: tuple[int, ...]) -> np.ndarray:
    import tvm

    lib = _build(func)
    y = tvm.runtime.tensor(np.zeros(out, np.float32))
    lib["main"](*(tvm.runtime.tensor(np.ascontiguousarray(a, np.float32)) for a in arrays), y)
    return y.numpy()


def _act(y: torch.Tensor, act: str | None) -> torch.Tensor:
    return {None: y, "relu": y.relu(), "relu6": y.clamp(0, 6)}[act]


def _nhwc(t: torch.Tensor, channels: int) -> np.ndarray:
    a = t.permute(0, 2, 3, 1).numpy()
    return np.pad(a, [(0, 0)] * 3 + [(0, channels - a.shape[3])])


@pytest.mark.parametrize("c,k,hw,ks,stride,pad,dil,act,res", [
    (3, 5, 9, 3, 1, 1, 1, "relu", False),       # odd channels, K not a multiple of 16
    (16, 24, 10, 3, 1, 1, 1, "relu", True),     # residual add fused, tail block
    (7, 33, 11, 5, 2, 1, 2, None, False),       # 5x5, stride 2, dilation 2
    (3, 64, 23, 7, 2, 3, 1, "relu", False),     # ResNet's stem shape, smaller
    (32, 64, 14, 1, 1, 0, 1, "relu6", True),    # 1x1, 4 vectors x 6 pixels with a tail
    (64, 32, 13, 1, 2, 0, 1, None, False),      # 1x1 stride 2 (downsample)
    (24, 48, 7, 3, 1, 1, 1, "relu", False),     # a row of 7
    (40, 144, 9, 1, 1, 0, 1, "relu6", True),    # K an odd count of vectors: 7 x 1 tile, tail
    (96, 96, 16, 3, 2, 1, 1, "relu", False),    # stride 2, 7 x 2 tile, row of 8 (tail of 1)
])
def test_conv_matches_torch(c, k, hw, ks, stride, pad, dil, act, res):
    torch.manual_seed(c * 100 + k)
    x, w, b = torch.randn(1, c, hw, hw), torch.randn(k, c, ks, ks) * 0.2, torch.randn(k)
    ref = F.conv2d(x, w, b, stride, pad, dil)
    r = torch.randn_like(ref)
    ref = _act(ref + r if res else ref, act)
    kp = -(-k // 16) * 16
    xp = _nhwc(F.pad(x, (pad,) * 4), c)
    s = Conv(1, xp.shape[1], xp.shape[2], c, kp, ks, ks, (stride, stride), (dil, dil))
    args = [xp, pack_weights(w.numpy(), s), pad_bias(b.numpy(), k, kp)]
    if res:
        args.append(_nhwc(r, kp))
    y = _call(conv_kernel(s, Epilogue(act, res)), *args, out=(1, s.oh, s.ow, kp))
    np.testing.assert_allclose(y[..., :k], _nhwc(ref, k), rtol=1e-4, atol=1e-4)
    assert not y[..., k:].any()  # padded output channels hold 0 (the lowering relies on it)


@pytest.mark.parametrize("c,hw,ks,stride,pad,act,res", [
    (32, 12, 3, 1, 1, "relu6", False),
    (20, 9, 3, 2, 1, "relu", False),    # channels padded to 32, stride 2, odd width
    (16, 7, 5, 1, 2, None, True),       # 5x5 with a residual, row of 7 (tail)
])
def test_depthwise_matches_torch(c, hw, ks, stride, pad, act, res):
    torch.manual_seed(c)
    x, w, b = torch.randn(1, c, hw, hw), torch.randn(c, 1, ks, ks), torch.randn(c)
    ref = F.conv2d(x, w, b, stride, pad, groups=c)
    r = torch.randn_like(ref)
    ref = _act(ref + r if res else ref, act)
    cp = -(-c // 16) * 16
    xp = _nhwc(F.pad(x, (pad,) * 4), cp)
    s = Depthwise(1, xp.shape[1], xp.shape[2], cp, ks, ks, (stride, stride))
    args = [xp, pack_dw(w.numpy(), s), pad_bias(b.numpy(), c, cp)]
    if res:
        args.append(_nhwc(r, cp))
    y = _call(depthwise_kernel(s, Epilogue(act, res)), *args, out=(1, s.oh, s.ow, cp))
    np.testing.assert_allclose(y[..., :c], _nhwc(ref, c), rtol=1e-4, atol=1e-4)


def test_conv_reduces_over_the_real_channels_only():
    """An input carrying 24 real channels in 32 (our NHWC padding): the padded ones are
    never read (NaN there changes nothing), the weights packed for 24."""
    torch.manual_seed(4)
    x, w, b = torch.randn(1, 24, 8, 8), torch.randn(48, 24, 1, 1) * 0.2, torch.randn(48)
    ref = F.conv2d(x, w, b).relu()
    xp = _nhwc(x, 32)
    xp[..., 24:] = np.nan
    s = Conv(1, 8, 8, 24, 48, 1, 1, cx=32)
    y = _call(conv_kernel(s, Epilogue("relu")), xp, pack_weights(w.numpy(), s),
              pad_bias(b.numpy(), 48, 48), out=(1, 8, 8, 48))
    np.testing.assert_allclose(y, _nhwc(ref, 48), rtol=1e-4, atol=1e-4)


def test_conv_writes_a_padded_output():
    """Epilogue.pad: the result in the interior of a zero-bordered tensor (the next conv's
    padded input), the residual read unpadded."""
    torch.manual_seed(3)
    x, w, b = torch.randn(1, 16, 9, 9), torch.randn(32, 16, 3, 3) * 0.2, torch.randn(32)
    ref = F.conv2d(x, w, b, 1, 1)
    r = torch.randn_like(ref)
    ref = F.pad((ref + r).relu(), (2, 2, 1, 1))
    s = Conv(1, 11, 11, 16, 32, 3, 3)
    y = _call(conv_kernel(s, Epilogue("relu", True, (1, 2))), _nhwc(F.pad(x, (1,) * 4), 16),
              pack_weights(w.numpy(), s), pad_bias(b.numpy(), 32, 32), _nhwc(r, 32),
              out=(1, 11, 13, 32))
    np.testing.assert_allclose(y, _nhwc(ref, 32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c,k,h,kh,stride,pool,pads,res", [
    (1, 20, 68, 16, 4, 2, (3, 4), False),     # CREPE's first conv, smaller: K padded to 32
    (16, 16, 40, 9, 1, 2, (31, 32), False),   # CREPE's inner blocks (31 above, 32 below)
    (5, 40, 37, 5, 1, 1, (1, 2), True),       # odd channels, residual, no pool, tail block
    (8, 48, 30, 3, 1, 2, (0, 0), False),      # 3 vectors (a 1-vector tile), a pooled tail
])
def test_column_conv_with_bn_and_pool_matches_torch(c, k, h, kh, stride, pool, pads, res):
    """A width-1 image (CREPE's frame): pixel blocks down the column, and the epilogue
    conv -> (+ residual) -> ReLU -> BatchNorm (scale/shift, negative scales included) ->
    (pool x 1) max pool -> the next conv's asymmetric zero rows, against PyTorch."""
    torch.manual_seed(c + k)
    x, w, b = torch.randn(1, c, h, 1), torch.randn(k, c, kh, 1) * 0.2, torch.randn(k)
    scale, shift = torch.randn(k), torch.randn(k)
    ref = F.conv2d(x, w, b, (stride, 1))
    r = torch.randn_like(ref)
    ref = (ref + r if res else ref).relu() * scale[:, None, None] + shift[:, None, None]
    ref = F.pad(F.max_pool2d(ref, (pool, 1), (pool, 1)), (0, 0, *pads))
    kp = -(-k // 16) * 16
    s = Conv(1, h, 1, c, kp, kh, 1, (stride, 1))
    assert s.down_columns and s.blocking(pool)[0] > 1 and s.blocking(pool)[0] % pool == 0
    consts = np.concatenate([pad_bias(v.numpy(), k, kp) for v in (b, scale, shift)])
    args = [_nhwc(x, c), pack_weights(w.numpy(), s), consts] + ([_nhwc(r, kp)] if res else [])
    ep = Epilogue("relu", res, (pads[0], 0), (pads[1], 0), affine=True, pool=pool)
    y = _call(conv_kernel(s, ep), *args, out=(1, ref.shape[2], 1, kp))
    np.testing.assert_allclose(y[..., :k], _nhwc(ref, k), rtol=1e-4, atol=1e-4)
    assert not y[..., k:].any()  # padded output channels hold 0 (scale and shift are 0 there)


def test_fused_pool_needs_whole_windows():
    """A fused pool reduces inside a column block: 13 rows do not split into 2-row windows."""
    with pytest.raises(ValueError, match="2-row pool"):
        conv_kernel(Conv(1, 64, 1, 1, 16, 16, 1, (4, 1)), Epilogue("relu", pool=2))


def test_winograd_matrices_compute_a_3_tap_correlation():
    """F(m, 3): A^T [(G g) * (B^T d)] = the correlation of d (m + 2 taps) with g, exactly."""
    rng = np.random.default_rng(0)
    for m, (bt, g, at) in MATRICES.items():
        d, f = rng.standard_normal(m + 2), rng.standard_normal(3)
        np.testing.assert_allclose(at @ ((g @ f) * (bt @ d)), np.correlate(d, f, "valid"),
                                   rtol=1e-12, atol=1e-12)


WINOGRAD_CASES = [
    (16, 16, 6, "relu", False),     # whole 2x2 tiles
    (3, 20, 7, "relu6", False),     # odd size: partial tiles at the edge, K padded to 32
    (24, 48, 9, None, True),        # residual fused, 3 vectors (7 x 1 GEMM tile), tail
    (64, 64, 16, "relu", True),     # several blocks of tile rows
]


def _winograd_error(c, k, hw, act, res, m):
    torch.manual_seed(c + k + hw)
    x, w, b = torch.randn(1, c, hw, hw), torch.randn(k, c, 3, 3) * 0.2, torch.randn(k)
    ref = F.conv2d(x, w, b, 1, 1)
    r = torch.randn_like(ref)
    ref = _act(ref + r if res else ref, act)
    kp = -(-k // 16) * 16
    s = Winograd(1, hw + 2, hw + 2, c, kp, m)
    args = [_nhwc(F.pad(x, (1,) * 4), c), pack_wino(w.numpy(), s), pad_bias(b.numpy(), k, kp)]
    if res:
        args.append(_nhwc(r, kp))
    y = _call(winograd_kernel(s, Epilogue(act, res)), *args, out=(1, hw, hw, kp))
    assert not y[..., k:].any()  # padded output channels hold 0 (the lowering relies on it)
    want = _nhwc(ref, k)
    return float(np.abs(y[..., :k] - want).max() / np.abs(want).max())


@pytest.mark.parametrize("c,k,hw,act,res", WINOGRAD_CASES)
def test_winograd_matches_torch(c, k, hw, act, res):
    """F(2x2, 3x3): relative error ~1e-7 here, well inside fp32+winograd's 5e-3 (and even
    the plain FP32 1e-3)."""
    assert _winograd_error(c, k, hw, act, res, 2) < 1e-5


@pytest.mark.parametrize("c,k,hw,act,res", [(16, 32, 13, "relu", True),  # partial tiles
                                             (40, 48, 16, None, False)])
def test_winograd_f4_matches_torch(c, k, hw, act, res):
    """F(4x4, 3x3): ~1e-5 relative (the larger transform constants round more)."""
    assert _winograd_error(c, k, hw, act, res, 4) < 1e-4


def test_conv_tile_leaves_registers_to_spare():
    """A conv's register tile: 7 pixels x at most 2 vectors (7 x 4 filled all 32 zmm and
    spilled: 40-60% of peak on Zen 4)."""
    for k, want in ((512, (7, 2)), (144, (7, 1)), (1280, (7, 2))):
        assert Conv(1, 9, 9, 64, k, 3, 3).blocking() == want
    assert Conv(1, 3, 3, 64, 512, 3, 3).blocking() == (1, 8)  # one pixel: a GEMV
    assert Conv(1, 1, 4, 64, 64, 1, 1).blocking()[0] == 4  # narrower rows: the row


@pytest.mark.parametrize("m,c,k,act", [(1, 784, 200, "relu"), (1, 64, 10, None),
                                       (13, 96, 40, "relu"), (128, 64, 64, None)])
def test_dense_matches_torch(m, c, k, act):
    torch.manual_seed(m + c)
    x, w, b = torch.randn(m, c), torch.randn(k, c) * 0.1, torch.randn(k)
    ref = _act(F.linear(x, w, b), act).numpy()
    s = dense_shape(m, c, k)
    y = _call(dense_kernel(s, Epilogue(act)), x.numpy().reshape(1, 1, m, c), pack_dense(
        w.numpy(), s), pad_bias(b.numpy(), k, s.k), out=(1, 1, m, s.k))
    np.testing.assert_allclose(y[0, 0, :, :k], ref, rtol=1e-4, atol=1e-4)
    if m == 1 and k >= 64:
        assert s.blocking()[1] > 1  # a GEMV streams several weight vectors per step


def test_glue_kernels_match_torch():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 9, 10)
    y = _call(glue.to_nhwc_kernel(1, 3, 9, 10, (2, 3, 1, 0), 16), x.numpy(),
              out=(1, 14, 11, 16))  # asymmetric borders (CREPE pads 31 above, 32 below)
    np.testing.assert_array_equal(y, _nhwc(F.pad(x, (1, 0, 2, 3)), 16))
    a = torch.randn(1, 20, 9, 9)
    nhwc = _nhwc(a, 32)
    back = _call(glue.to_nchw_kernel(1, 9, 9, 32, 20), nhwc, out=(1, 20, 9, 9))
    np.testing.assert_array_equal(back, a.numpy())
    padded = _call(glue.pad_kernel(1, 9, 9, 32, (1, 1, 2, 2)), nhwc, out=(1, 11, 13, 32))
    np.testing.assert_array_equal(padded, _nhwc(F.pad(a, (2, 2, 1, 1)), 32))
    padded = _call(glue.pad_kernel(1, 9, 9, 32, (0, 3, 1, 2)), nhwc, out=(1, 12, 12, 32))
    np.testing.assert_array_equal(padded, _nhwc(F.pad(a, (1, 2, 0, 3)), 32))
    for kernel, stride, pad, ceil in [((3, 3), (2, 2), (1, 1), False), ((2, 2), (2, 2), (0, 0),
                                                                      True)]:
        s = glue.Pool(1, 9, 9, 32, kernel, stride, pad, ceil)
        ref = F.max_pool2d(a, kernel, stride, pad, ceil_mode=ceil)
        got = _call(glue.max_pool_kernel(s), nhwc, out=(1, s.oh, s.ow, 32))
        np.testing.assert_array_equal(got[..., :20], _nhwc(ref, 20))
    mean = _call(glue.global_mean_kernel(1, 9, 9, 32, 20), nhwc, out=(1, 20))
    np.testing.assert_allclose(mean, a.mean((2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    rows = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
    np.testing.assert_array_equal(_call(glue.crop_kernel(3, 32, 20), rows, out=(3, 20)),
                                  rows[:, :20])


@pytest.mark.parametrize("b,m,k,n", [(4, 128, 64, 128), (4, 128, 128, 64), (2, 13, 7, 16),
                                     (1, 9, 33, 48)])
def test_bmm_matches_torch(b, m, k, n):
    """Attention's two matmuls, a row tail (13 = 2 x 6 + 1), odd k, 3 vectors."""
    torch.manual_seed(b + m + k + n)
    a, w = torch.randn(b, m, k), torch.randn(b, k, n)
    got = _call(bmm_kernel(Bmm(b, m, k, n)), a.numpy(), w.numpy(), out=(b, m, n))
    np.testing.assert_allclose(got, torch.bmm(a, w).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows,d", [(128, 256), (5, 20), (3, 7)])
def test_layer_norm_and_softmax_match_torch(rows, d):
    """Over the last axis, d a multiple of 16, of 4 (4 lanes) and odd (1 lane)."""
    torch.manual_seed(rows + d)
    x, g, b = torch.randn(rows, d) * 3 + 1, torch.randn(d), torch.randn(d)
    got = _call(rowwise.layer_norm_kernel(rows, d, 1e-5), x.numpy(), g.numpy(), b.numpy(),
                out=(rows, d))
    np.testing.assert_allclose(got, F.layer_norm(x, (d,), g, b, 1e-5).numpy(), rtol=1e-4,
                               atol=1e-5)
    x = torch.randn(rows, d) * 8  # large logits: the max subtraction matters
    got = _call(rowwise.softmax_kernel(rows, d, 0.125), x.numpy(), out=(rows, d))
    np.testing.assert_allclose(got, torch.softmax(x * 0.125, -1).numpy(), rtol=1e-5,
                               atol=1e-7)
    with pytest.raises(ValueError, match="scale"):
        rowwise.softmax_kernel(rows, d, -1.0)


def test_gelu_exp_and_elementwise_match_torch():
    """GELU (PyTorch's erf form) over [-10, 10] and beyond the clamp; add; scale."""
    x = torch.cat([torch.linspace(-10, 10, 4000), torch.tensor([-100.0, -5.0, 0.0, 5.0, 100.0,
                                                                1e-3, -1e-3, 3.9])])
    n = x.numel()
    got = _call(rowwise.gelu_kernel(n), x.numpy(), out=(n,))
    np.testing.assert_allclose(got, F.gelu(x).numpy(), rtol=1e-5, atol=2e-6)
    y = torch.randn(n)
    np.testing.assert_array_equal(_call(rowwise.add_kernel(n), x.numpy(), y.numpy(), out=(n,)),
                                  (x + y).numpy())
    np.testing.assert_array_equal(_call(rowwise.scale_kernel(n, 0.125), x.numpy(), out=(n,)),
                                  (x * 0.125).numpy())
    np.testing.assert_array_equal(_call(rowwise.clamp_kernel(n, "relu6"), x.numpy(), out=(n,)),
                                  x.clamp(0, 6).numpy())
    # exp through the softmax of one row against a zero: e^v / (1 + e^v) for v in [-80, 80]
    v = torch.linspace(-80, 80, 161)
    pair = torch.stack([v, torch.zeros_like(v)], 1)
    got = _call(rowwise.softmax_kernel(161, 2), pair.numpy(), out=(161, 2))
    np.testing.assert_allclose(got, torch.softmax(pair, -1).numpy(), rtol=2e-6, atol=1e-30)


def test_layout_glue_of_the_encoder_matches_torch():
    """Transposes (last axis kept: vectors; moved: elements), embedding, cast, axis mean."""
    torch.manual_seed(0)
    x = torch.randn(1, 12, 4, 16)
    for axes in [(0, 2, 1, 3), (0, 1, 3, 2), (3, 2, 1, 0), (1, 0, 2, 3), (2, 0, 3, 1)]:
        got = _call(rowwise.transpose_kernel(tuple(x.shape), axes), x.numpy().reshape(-1),
                    out=(x.numel(),))
        np.testing.assert_array_equal(got, x.permute(axes).contiguous().numpy().reshape(-1))
    import tvm

    table, ids = torch.randn(50, 24), torch.tensor([3, 0, 49, 7, 7])
    lib = _build(rowwise.take_rows_kernel(50, 24, 5, "int32"))
    y = tvm.runtime.tensor(np.zeros((5, 24), np.float32))
    lib["main"](tvm.runtime.tensor(table.numpy()), tvm.runtime.tensor(ids.numpy().astype(
        np.int32)), y)
    np.testing.assert_array_equal(y.numpy(), F.embedding(ids, table).numpy())
    lib = _build(rowwise.cast_kernel(5, "int64", "int32"))
    out = tvm.runtime.tensor(np.zeros(5, np.int32))
    lib["main"](tvm.runtime.tensor(ids.numpy()), out)
    np.testing.assert_array_equal(out.numpy(), ids.numpy())
    t = torch.randn(2, 9, 24)
    np.testing.assert_allclose(_call(rowwise.mean_axis_kernel(2, 9, 24), t.numpy(), out=(2, 24)),
                               t.mean(1).numpy(), rtol=1e-5, atol=1e-6)


def _call_to(func, dtype: str, out: tuple[int, ...], *arrays: np.ndarray) -> np.ndarray:
    """Run a kernel whose last buffer (the output) has `dtype`; float32 inputs as given."""
    import tvm

    y = tvm.runtime.tensor(np.zeros(out, dtype))
    _build(func)["main"](*(tvm.runtime.tensor(a) for a in arrays), y)
    return y.numpy()


@pytest.mark.parametrize("dtype,zp,lo,hi", [("uint8", 131, 0, 255), ("int8", -3, -128, 127)])
def test_quantizing_stores_follow_the_int8_rule(dtype, zp, lo, hi):
    """Layer norm, GELU, a transpose and a bare quantize storing integers: exactly
    arith.quantize (the oracle's rule 1: round half to even, zero point, clamp) of the float
    each kernel computes, ties and both clamps included; the int8 embedding gather."""
    from edgebench.quantize.arith import inv_scale, quantize

    scale = 0.0625  # x * 16: the .5 values below are exact ties
    q = rowwise.Quant(float(inv_scale(scale)), zp, lo, hi, dtype)

    def want(x: np.ndarray) -> np.ndarray:
        return quantize(torch.from_numpy(x), scale, zp, lo, hi).numpy().astype(dtype)

    ties = (np.arange(-40, 40, dtype=np.float32) + 0.5) / 16
    x = np.concatenate([ties, np.float32([-100, 100, 0]),
                        np.random.default_rng(0).normal(0, 3, 173).astype(np.float32)])
    n = x.size
    np.testing.assert_array_equal(_call_to(rowwise.quantize_kernel(n, q), dtype, (n,), x),
                                  want(x))
    g = _call(rowwise.gelu_kernel(n), x, out=(n,))
    np.testing.assert_array_equal(_call_to(rowwise.gelu_kernel(n, q), dtype, (n,), x), want(g))
    rows, d = 12, 48
    t = np.random.default_rng(1).normal(0, 2, (rows, d)).astype(np.float32)
    gamma, beta = np.float32(np.linspace(0.5, 3, d)), np.float32(np.linspace(-1, 1, d))
    ln = _call(rowwise.layer_norm_kernel(rows, d, 1e-5), t, gamma, beta, out=(rows, d))
    np.testing.assert_array_equal(_call_to(rowwise.layer_norm_kernel(rows, d, 1e-5, q), dtype,
                                           (rows, d), t, gamma, beta), want(ln))
    shape = (1, 8, 3, 32)
    v = np.random.default_rng(2).normal(0, 4, shape).astype(np.float32)
    for axes in [(0, 2, 1, 3), (0, 1, 3, 2)]:
        got = _call_to(rowwise.transpose_kernel(shape, axes, q), dtype, (v.size,),
                       v.reshape(-1))
        np.testing.assert_array_equal(got, want(v.transpose(axes).reshape(-1)))
    table = np.random.default_rng(3).integers(-128, 128, (50, 32)).astype(np.int8)
    row_scale = np.float32(np.linspace(0.01, 0.5, 50))
    ids = np.int64([3, 0, 49, 7, 7, 60])  # 60: out of range, clamped to the last row
    got = _call_to(rowwise.take_scaled_rows_kernel(50, 32, 6, "int64"), "float32", (6, 32),
                   table, row_scale, ids)
    idx = np.minimum(ids, 49)
    np.testing.assert_array_equal(got, table[idx].astype(np.float32) * row_scale[idx, None])


def zmm_fma_functions(asm: str) -> set[str]:
    return {name for name, lines in function_bodies(asm).items()
            if any(mnemonic(ln).startswith("vfmadd") and "zmm" in ln for ln in lines)}


@pytest.mark.skipif(not TARGET.avx512, reason="needs an AVX-512 host")
def test_kernels_compute_with_zmm_fmas():
    s = Conv(1, 10, 10, 32, 64, 3, 3)
    d = Depthwise(1, 10, 10, 32, 3, 3)
    for func in (conv_kernel(s, Epilogue("relu")), depthwise_kernel(d),
                 winograd_kernel(Winograd(1, 10, 10, 32, 64)),
                 dense_kernel(dense_shape(1, 256, 256)), bmm_kernel(Bmm(4, 128, 64, 128))):
        lib = _build(func.with_attr("global_symbol", "k"))
        asm = "\n".join(m.inspect_source("asm") for m in lib.mod.imports
                        if getattr(m, "kind", "") == "llvm") or lib.mod.inspect_source("asm")
        assert "k" in zmm_fma_functions(asm)
