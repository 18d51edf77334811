"""Each ResNet-18 / MobileNetV2 conv shape on our FP32 kernels, timed alone on one pinned core
(best of 150 single calls: on a shared machine the one that ran without being preempted),
against the FMA peak measured by kernels/peak.py in the same run.

Run: EDGEBENCH_CACHE=... taskset -c 1 python benchmarks/fp32_conv_efficiency.py \
    > results/fp32/conv_efficiency.md
"""

import numpy as np
import tvm

from edgebench.kernels import registry
from edgebench.kernels.layer import Epilogue, Layer
from edgebench.kernels.peak import measure_peak
from edgebench.targets import find_target

TARGET = find_target("x86-native")
SHAPES = [  # (name, c, k, hw, kernel, stride, padding, groups)
    ("resnet18 stem 7x7/2", 3, 64, 224, 7, 2, 3, 1),
    ("resnet18 3x3 64", 64, 64, 56, 3, 1, 1, 1),
    ("resnet18 3x3 128", 128, 128, 28, 3, 1, 1, 1),
    ("resnet18 3x3 256", 256, 256, 14, 3, 1, 1, 1),
    ("resnet18 3x3 512", 512, 512, 7, 3, 1, 1, 1),
    ("resnet18 3x3/2 256->512", 256, 512, 14, 3, 2, 1, 1),
    ("mobilenetv2 1x1 24->144", 24, 144, 56, 1, 1, 0, 1),
    ("mobilenetv2 1x1 144->24", 144, 24, 56, 1, 1, 0, 1),
    ("mobilenetv2 1x1 320->1280", 320, 1280, 7, 1, 1, 0, 1),
    ("mobilenetv2 dw 3x3 144", 144, 144, 56, 3, 1, 1, 144),
    ("mobilenetv2 dw 3x3/2 96", 96, 96, 112, 3, 2, 1, 96),
    ("linear 512->1000 (GEMV)", 512, 1000, 1, 1, 1, 0, 0),
]


def main() -> None:
    tgt = TARGET.tvm_target()
    peak = measure_peak(tgt)
    print(f"FP32 FMA peak of one core (kernels/peak.py): {peak:.1f} GMAC/s\n")
    print("| layer | family | tile (pixels x vectors) | ms | GMAC/s | of peak |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, c, k, hw, ks, stride, pad, groups in SHAPES:
        if groups == 0:
            layer = Layer("linear", c, k, 1, 1, epilogue=Epilogue("relu"))
        else:
            layer = Layer("conv2d", c, k, hw, hw, kernel=(ks, ks), stride=(stride, stride),
                          padding=(pad, pad), groups=groups, epilogue=Epilogue("relu"))
        family = registry.choose(layer, TARGET)
        s = family.shape(layer, TARGET)
        func = family.emit(layer, TARGET)
        lib = tvm.compile(tvm.IRModule({"main": func}), target=tgt)
        args = [tvm.runtime.tensor(rng.standard_normal([int(d) for d in buf.shape])
                                   .astype("float32"))
                for buf in func.params]
        timer = lib.mod.time_evaluator("main", tvm.cpu(), number=1, repeat=150)
        t = min(timer(*args).results)
        gmacs = s.macs / t / 1e9
        tile = "x".join(map(str, s.blocking())) if hasattr(s, "blocking") else "4 px x 1"
        print(f"| {name} | {family.NAME} | {tile} | {t * 1e3:.3f} | {gmacs:.1f} | "
              f"{gmacs / peak:.0%} |", flush=True)


if __name__ == "__main__":
    main()
