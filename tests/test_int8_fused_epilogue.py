"""The int8 conv's quantize epilogue (kernels/int8_conv.py QUANTIZE): conv -> float output ->
ReLU -> BatchNorm -> (P x 1) max pool -> pad -> the next layer's input quantize in one
kernel, bit for bit against the oracle's ops (reference.py rule 4's float output, then the
FP32 ops as PyTorch runs them, then rule 1), and its use on CREPE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tvm

from edgebench.compile.asm import functions_using
from edgebench.kernels.int8_conv import QUANTIZE, X86_VNNI, ConvShape, conv_dot_kernel
from edgebench.kernels.layer import Epilogue
from edgebench.passes.int8 import bn_affine
from edgebench.quantize.arith import inv_scale, quantize
from edgebench.targets import find_target

TARGET = find_target("x86-native")
pytestmark = pytest.mark.skipif(not TARGET.vnni, reason="this host has no AVX512-VNNI")


def _conv_int(x: np.ndarray, w: np.ndarray, bias: np.ndarray, s: ConvShape) -> np.ndarray:
    """int64 NHWC conv of the padded input plus bias: the oracle's int32 accumulator."""
    out = np.zeros((s.n, s.oh, s.ow, w.shape[0]), np.int64)
    sh, sw = s.stride
    for kh in range(s.kh):
        for kw in range(s.kw):
            xs = x[:, kh:kh + (s.oh - 1) * sh + 1:sh, kw:kw + (s.ow - 1) * sw + 1:sw]
            out += np.einsum("nhwc,kc->nhwk", xs.astype(np.int64),
                             w[:, :, kh, kw].astype(np.int64))
    return out + bias


# (padded h, w, real c, real k, kernel, stride, pool, borders (top, bottom, left, right), bn)
CASES = [
    (70, 1, 16, 16, (7, 1), (1, 1), 2, (3, 4, 0, 0), True),  # CREPE's block, asymmetric pad
    (75, 1, 5, 20, (4, 1), (2, 1), 2, (0, 0, 0, 0), True),  # odd channels, stride, no pad
    (40, 1, 3, 16, (9, 1), (1, 1), 1, (2, 1, 0, 0), True),  # no pool
    (40, 1, 8, 33, (5, 1), (1, 1), 2, (1, 2, 0, 0), False),  # no BN, odd K
    (12, 9, 7, 16, (3, 3), (1, 1), 1, (1, 1, 2, 1), True),  # a 2-D image (row blocks)
]


@pytest.mark.parametrize("h,w,c,k,kernel,stride,pool,borders,bn", CASES)
def test_quantize_epilogue_matches_oracle_bit_for_bit(h, w, c, k, kernel, stride, pool,
                                                      borders, bn) -> None:
    rng = np.random.default_rng(h * 31 + c * 7 + k)
    cp, kp = -(-c // 4) * 4, -(-k // 16) * 16
    s = ConvShape(1, h, w, cp, kp, *kernel, stride)
    x = np.zeros((1, h, w, cp), np.uint8)
    x[..., :c] = rng.integers(0, 256, (1, h, w, c))
    wq = rng.integers(-127, 128, (k, c, *kernel)).astype(np.int8)
    bias = rng.integers(-20000, 20000, k)
    out_scale = (rng.uniform(0.5, 2.0, k) * 1e-4).astype(np.float32)
    gamma, beta = rng.uniform(-2, 2, k).astype(np.float32), rng.uniform(-1, 1, k).astype(np.float32)
    mean, var = rng.uniform(-1, 1, k).astype(np.float32), rng.uniform(0.05, 3, k).astype(np.float32)
    eps = 0.0010000000474974513
    s_next, z_next = np.float32(0.021), 37

    # the oracle: rule 4's float output, PyTorch's ReLU / BatchNorm / max pool / pad, rule 1
    acc = _conv_int(x[..., :c], wq, bias, s)
    f = torch.from_numpy(acc.astype(np.float32) * out_scale).permute(0, 3, 1, 2)
    f = F.relu(f)
    if bn:
        f = F.batch_norm(f, torch.from_numpy(mean), torch.from_numpy(var),
                         torch.from_numpy(gamma), torch.from_numpy(beta), False, 0.0, eps)
    if pool > 1:
        f = F.max_pool2d(f, (pool, 1), (pool, 1))
    t, b, left, r = borders
    f = F.pad(f, (left, r, t, b))
    want = quantize(f, float(s_next), z_next, 0, 255).permute(0, 2, 3, 1).numpy()

    ep = Epilogue("relu", pad=(t, left), pad_end=(b, r), affine=bn, pool=pool)
    func = conv_dot_kernel(X86_VNNI, s, "uint8", z_next, 0, 255, requant=QUANTIZE, ep=ep,
                           inv_scale=float(inv_scale(float(s_next))))
    lib = tvm.compile(tvm.IRModule({"main": func}), target=TARGET.tvm_target())
    consts = [np.ones(kp, np.float32)]
    consts[0][:k] = out_scale
    if bn:
        a, sh = bn_affine(gamma, beta, mean, var, eps)
        consts += [np.ones(kp, np.float32), np.zeros(kp, np.float32)]
        consts[1][:k], consts[2][:k] = a, sh
    bias_p = np.zeros(kp, np.int32)
    bias_p[:k] = bias
    y = tvm.runtime.empty((1, want.shape[1], want.shape[2], kp), "uint8", tvm.cpu())
    lib["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(X86_VNNI.pack_weights(wq, cp, kp)),
                tvm.runtime.tensor(bias_p), tvm.runtime.tensor(np.concatenate(consts)), y)
    got = y.numpy()[..., :k]
    assert (got != want).sum() == 0, f"{(got != want).sum()} of {want.size} differ"
    assert len(np.unique(want)) > 20  # the data exercises the range, not one clamp value
    asm = lib.mod.inspect_source("asm") if hasattr(lib, "mod") else ""
    if asm:
        assert functions_using(asm, "vpdpbusd")
