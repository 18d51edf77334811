"""MobileNetV2's 17 depthwise shapes (10 distinct): the vpdpbusd depthwise kernel
(edgebench/kernels/int8_depthwise.py) against the int32 multiply-add kernel it replaced (kept
here as the baseline, as it was at commit b944c03), both with the same f64 requantize
epilogue, uint8 out; bit exact against an int64 reference first, then timed interleaved
(best of 7 x 20 calls each), 1 thread, pinned by the caller:

    taskset -c 0 python benchmarks/int8_depthwise.py > results/int8/depthwise-zen4.txt
"""

from __future__ import annotations

import numpy as np
import torch
import tvm

from edgebench.kernels.int8_conv import ConvShape, fused_epilogue, scale_dtype
from edgebench.kernels.int8_depthwise import depthwise_dot_kernel, pack_depthwise
from edgebench.quantize.arith import requantize
from edgebench.targets import find_target

# padded input h, w, channels, stride (MobileNetV2 at 224: 3x3, padding 1); calls per inference
SHAPES = [(114, 114, 32, 1, 1), (114, 114, 96, 2, 1), (58, 58, 144, 1, 1), (58, 58, 144, 2, 1),
          (30, 30, 192, 1, 2), (30, 30, 192, 2, 1), (16, 16, 384, 1, 4), (16, 16, 576, 1, 2),
          (16, 16, 576, 2, 1), (9, 9, 960, 1, 3)]


def mul_add_kernel(s: ConvShape, out: str, zero_point: int, lo: int, hi: int, requant: str):
    """The replaced kernel: 16 channels per vector, int32 multiply-adds over the taps, 2 pixels
    a step, channel blocks outermost. Args (x, w [kh,kw,c] i8, bias, scale f64, y)."""
    from tvm.script import tirx as T

    N, H, W, C, KH, KW = s.n, s.h, s.w, s.c, s.kh, s.kw
    SH, SW = s.stride
    OH, OW = s.oh, s.ow
    U = 2 if OW % 2 == 0 else 1
    sdt = scale_dtype(out, requant)

    def taps(x, w, n, oh, ow, c):
        total = None
        for kh in range(KH):
            for kw in range(KW):
                term = T.Cast("int32", x[n, oh * SH + kh, ow * SW + kw, c]) * \
                    T.Cast("int32", w[kh, kw, c])
                total = term if total is None else total + term
        return total

    @T.prim_func
    def dw_f(x: T.Buffer((N, H, W, C), "uint8"), w: T.Buffer((KH, KW, C), "int8"),
             bias: T.Buffer((C,), "int32"), scale: T.Buffer((C,), sdt),
             y: T.Buffer((N, OH, OW, C), out)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        for n, cb, oh, owo in T.grid(N, C // 16, OH, OW // U):
            for u in T.unroll(U):
                for lane in T.vectorized(16):
                    y[n, oh, owo * U + u, cb * 16 + lane] = fused_epilogue(
                        T, out, bias[cb * 16 + lane] + taps(x, w, n, oh, owo * U + u,
                                                            cb * 16 + lane),
                        cb * 16 + lane, None, None, scale, zero_point, lo, hi)

    return dw_f


def main() -> None:
    target = find_target("x86-native").tvm_target()
    print(f"target {target}; ms per call, best of 7 x 20 calls")
    print("| padded input, channels, stride | calls | int32 mul-add ms | vpdpbusd ms | speedup |")
    print("|---|---|---|---|---|")
    totals = [0.0, 0.0]
    for h, wd, c, st, calls in SHAPES:
        s = ConvShape(1, h, wd, c, c, 3, 3, (st, st))
        rng = np.random.default_rng(h * wd + c)
        x = rng.integers(0, 256, (1, h, wd, c), dtype=np.uint8)
        w = rng.integers(-128, 128, (3, 3, c), dtype=np.int8)
        bias = rng.integers(-5000, 5000, c).astype(np.int32)
        m0 = rng.integers(1 << 30, 1 << 31, c).astype(np.int64)
        shift = rng.integers(38, 41, c).astype(np.int64)
        acc = np.zeros((1, s.oh, s.ow, c), np.int64) + bias
        for kh in range(3):
            for kw in range(3):
                acc += x[:, kh:kh + (s.oh - 1) * st + 1:st,
                         kw:kw + (s.ow - 1) * st + 1:st].astype(np.int64) * w[kh, kw]
        want = requantize(torch.from_numpy(acc), torch.from_numpy(m0), torch.from_numpy(shift),
                          3, 0, 255).numpy()
        scale = np.ldexp(m0.astype(np.float64), -shift)
        timers = []
        for build, wt in ((mul_add_kernel, w),
                          (depthwise_dot_kernel, pack_depthwise(w.transpose(2, 0, 1)[:, None]))):
            lib = tvm.compile(tvm.IRModule({"main": build(s, "uint8", 3, 0, 255, "f64")}),
                              target=target)
            y = tvm.runtime.empty(want.shape, "uint8", tvm.cpu())
            args = [*(tvm.runtime.tensor(a) for a in (x, wt, bias, scale)), y]
            lib["main"](*args)
            np.testing.assert_array_equal(y.numpy(), want)
            timers.append((lib.mod.time_evaluator("main", tvm.cpu(), number=20, repeat=1), args))
        best = [float("inf"), float("inf")]
        for _ in range(7):  # interleaved rounds
            for i, (timer, args) in enumerate(timers):
                best[i] = min(best[i], timer(*args).mean * 1e3)
        totals = [t + calls * b for t, b in zip(totals, best, strict=True)]
        print(f"| {h}x{wd}x{c}, s{st} | {calls} | {best[0]:.4f} | {best[1]:.4f} | "
              f"{best[0] / best[1]:.2f}x |", flush=True)
    print(f"| all 17 calls of one inference | 17 | {totals[0]:.3f} | {totals[1]:.3f} | "
          f"{totals[0] / totals[1]:.2f}x |")


if __name__ == "__main__":
    main()
