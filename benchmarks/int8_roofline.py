"""How close edgebench's vpdpbusd conv kernel runs to this core's VNNI limit, layer by layer.

The issue's goals put ResNet-18 int8 at >= 2x ONNX Runtime's static int8; whether that is
reachable depends on the core's dot-product throughput, so this measures it rather than
quoting a data sheet:
  peak     a register-only loop of 16 independent `vpdpbusd zmm` (inline asm, gcc), i.e. the
           most MACs per second the core retires with no loads at all;
  kernels  every groups=1 conv of the model built alone by `conv_vnni_kernel` (uint8 output,
           fused requantize, the shapes the int8 lowering gives it: input padded, C to a
           multiple of 4, K of 16) on random data.
Both are best-of-many (the host is shared: the best run is the one least disturbed), on one
pinned core. The floor is the model's conv MACs at the peak; nothing but these convs counted.

    python benchmarks/int8_roofline.py resnet18 --core 1 > results/int8/roofline.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

PEAK_C = r"""
#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec + t.tv_nsec * 1e-9; }
int main(void) {
  const long n = 200000; double best = 0;
  for (int rep = 0; rep < 400; rep++) {
    double t0 = now();
    for (long i = 0; i < n; i++) {
      __asm__ volatile(
        "vpdpbusd %%zmm0,%%zmm1,%%zmm2\n vpdpbusd %%zmm0,%%zmm1,%%zmm3\n"
        "vpdpbusd %%zmm0,%%zmm1,%%zmm4\n vpdpbusd %%zmm0,%%zmm1,%%zmm5\n"
        "vpdpbusd %%zmm0,%%zmm1,%%zmm6\n vpdpbusd %%zmm0,%%zmm1,%%zmm7\n"
        "vpdpbusd %%zmm0,%%zmm1,%%zmm8\n vpdpbusd %%zmm0,%%zmm1,%%zmm9\n"
        "vpdpbusd %%zmm0,%%zmm1,%%zmm10\n vpdpbusd %%zmm0,%%zmm1,%%zmm11\n"
        "vpdpbusd %%zmm0,%%zmm1,%%zmm12\n vpdpbusd %%zmm0,%%zmm1,%%zmm13\n"
        "vpdpbusd %%zmm0,%%zmm1,%%zmm14\n vpdpbusd %%zmm0,%%zmm1,%%zmm15\n"
        "vpdpbusd %%zmm0,%%zmm1,%%zmm16\n vpdpbusd %%zmm0,%%zmm1,%%zmm17\n"
        ::: "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
            "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17");
    }
    double r = n * 16 / (now() - t0);
    if (r > best) best = r;
  }
  printf("%.6g\n", best);
  return 0;
}
"""


def peak_macs_per_s() -> float:
    """Best rate of 16 independent register-only vpdpbusd zmm (64 MACs each)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "peak.c", Path(tmp) / "peak"
        src.write_text(PEAK_C)
        subprocess.run(["gcc", "-O2", "-mavx512f", "-o", str(exe), str(src)], check=True)
        return float(subprocess.run([str(exe)], capture_output=True, text=True,
                                    check=True).stdout) * 64


def conv_shapes(model: torch.nn.Module, example: torch.Tensor) -> Counter:
    """(ConvShape, MACs) of every groups=1 conv as the int8 lowering builds it, with counts."""
    from edgebench.kernels.int8_conv import ConvShape

    found: Counter = Counter()

    def hook(mod: torch.nn.Conv2d, inputs, _out) -> None:
        if mod.groups != 1:
            return
        _, c, h, w = inputs[0].shape
        ph, pw = mod.padding
        s = ConvShape(1, h + 2 * ph, w + 2 * pw, -(-c // 4) * 4, -(-mod.out_channels // 16) * 16,
                      *mod.kernel_size, tuple(mod.stride), tuple(mod.dilation))
        found[(s, s.oh * s.ow * mod.out_channels * c * s.kh * s.kw)] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(example)
    for h in handles:
        h.remove()
    return found


def kernel_ms(s, repeat: int) -> float:
    """Best time of one conv_vnni_kernel (uint8 out, fused requantize) on random data."""
    import tvm

    from edgebench.kernels.int8_conv import X86_VNNI, conv_vnni_kernel
    from edgebench.targets import find_target

    target = find_target("x86-native").tvm_target()  # mcpu resolved for this host
    lib = tvm.compile(tvm.IRModule({"k": conv_vnni_kernel(s, "uint8").with_attr(
        "global_symbol", "k")}), target=target).mod
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (s.k, s.c, s.kh, s.kw))
    args = [rng.integers(0, 256, (s.n, s.h, s.w, s.c)).astype("uint8"),
            X86_VNNI.pack_weights(w, s.c, s.k), np.zeros(s.k, "int32"),
            np.full(s.k, 1 << 20, "int64"), np.full(s.k, 30, "int64"),
            np.zeros((s.n, s.oh, s.ow, s.k), "uint8")]
    timer = lib.time_evaluator("k", tvm.cpu(), number=3, repeat=repeat)
    return min(timer(*[tvm.runtime.tensor(a) for a in args]).results) * 1e3


def main() -> None:
    from edgebench.models import get_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default="resnet18")
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--repeat", type=int, default=60)
    a = p.parse_args()
    os.sched_setaffinity(0, {a.core})
    os.environ["TVM_NUM_THREADS"] = "1"
    spec = get_model(a.model)
    shapes = conv_shapes(spec.build().eval(), spec.example_input())
    peak = peak_macs_per_s()
    rows, total_ms, total_macs = [], 0.0, 0
    for (s, macs), count in shapes.items():
        ms = kernel_ms(s, a.repeat)
        total_ms += ms * count
        total_macs += macs * count
        rows.append(f"| {s.h}x{s.w}x{s.c} -> {s.k}, {s.kh}x{s.kw}/{s.stride[0]} | {count} | "
                    f"{macs / 1e6:.1f} | {ms:.4f} | {macs / ms / 1e6:.0f} | "
                    f"{macs / ms * 1e3 / peak:.0%} |")
    print(f"# {a.model}: int8 conv kernels vs the VNNI limit of core {a.core}\n")
    print(f"Peak: {peak / 1e9:.0f} GMAC/s (16 independent register-only `vpdpbusd zmm`, best "
          f"of 400 runs). Kernels: `conv_vnni_kernel`, uint8 out with fused requantize, best "
          f"of {a.repeat} x 3 calls each.\n")
    print("| padded input HxWxC -> K, kernel/stride | count | MMACs (real C, K) | best ms | "
          "GMAC/s | of peak |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nAll {sum(shapes.values())} groups=1 convs: {total_macs / 1e9:.3f} GMACs in "
          f"{total_ms:.2f} ms = {total_macs / total_ms / 1e6:.0f} GMAC/s "
          f"({total_macs / total_ms * 1e3 / peak:.0%} of peak); at the peak they would take "
          f"{total_macs / peak * 1e3:.2f} ms (the floor for this model's convs on this core).")


if __name__ == "__main__":
    main()
