"""The FP32 conv's register tile: each (pixels, vectors) choice on ResNet-18 / MobileNetV2
shapes, timed alone on one pinned core. `warm`: best of 100 calls; `cold`: median of 20 calls
after touching 64 MB (weights and activations out of cache). Percentages against the 59 GMAC/s
FMA peak (kernels/peak.py). Where results/fp32/tiles.md (and Conv.blocking's 7 x 2) came from.

Run: EDGEBENCH_CACHE=... taskset -c 1 python benchmarks/fp32_tiles.py > results/fp32/tiles.md
"""

import dataclasses
import time

import numpy as np
import tvm

from edgebench.kernels.fp32_conv import Conv, conv_kernel
from edgebench.kernels.layer import Epilogue
from edgebench.targets import find_target

PEAK = 59.0
SHAPES = {  # name: Conv on the padded input
    "r18 stem 7x7/2": Conv(1, 230, 230, 3, 64, 7, 7, (2, 2)),
    "r18 3x3 64@56": Conv(1, 58, 58, 64, 64, 3, 3),
    "r18 3x3 128@28": Conv(1, 30, 30, 128, 128, 3, 3),
    "r18 3x3 256@14": Conv(1, 16, 16, 256, 256, 3, 3),
    "r18 3x3 512@7": Conv(1, 9, 9, 512, 512, 3, 3),
    "r18 3x3/2 256->512": Conv(1, 16, 16, 256, 512, 3, 3, (2, 2)),
    "mb2 1x1 16->96@112": Conv(1, 112, 112, 16, 96, 1, 1),
    "mb2 1x1 24->144@56": Conv(1, 56, 56, 32, 144, 1, 1),
    "mb2 1x1 320->1280@7": Conv(1, 7, 7, 320, 1280, 1, 1),
    "mb2 1x1 960->320@7": Conv(1, 7, 7, 960, 320, 1, 1),
}
TILES = [(7, 4), (6, 4), (4, 4), (7, 2), (12, 2), (14, 2), (7, 1), (12, 1)]


def build(s: Conv, tgt, ep: Epilogue | None = None):
    """The conv kernel of geometry s (epilogue default: ReLU) built alone, and random
    arguments for it."""
    func = conv_kernel(s, ep or Epilogue("relu"))
    lib = tvm.compile(tvm.IRModule({"main": func}), target=tgt)
    rng = np.random.default_rng(0)
    args = [tvm.runtime.tensor(rng.standard_normal([int(d) for d in p.shape]).astype("float32"))
            for p in func.params]
    return lib, args


def time_built(lib, args, repeat: int = 100, cold_calls: int = 20) -> tuple[float, float]:
    """(best of `repeat` calls, median of `cold_calls` after touching 64 MB) in seconds."""
    warm = min(lib.mod.time_evaluator("main", tvm.cpu(), number=1, repeat=repeat)(
        *args).results)
    junk, f, cold = np.ones(16 << 20, np.float32), lib.mod["main"], []
    for _ in range(cold_calls):
        junk += 1
        t0 = time.perf_counter()
        f(*args)
        cold.append(time.perf_counter() - t0)
    return warm, float(np.median(cold))


def timed(s: Conv, tgt) -> tuple[float, float]:
    return time_built(*build(s, tgt))


def main() -> None:
    tgt = find_target("x86-native").tvm_target()
    print("| layer | tile (pixels x vectors) | warm ms | warm of peak | cold ms | cold of peak |")
    print("|---|---|---|---|---|---|")
    for name, s in SHAPES.items():
        for tile in TILES:
            if s.k % (tile[1] * s.lanes):
                continue
            t = dataclasses.replace(s, tile=tile)
            warm, cold = timed(t, tgt)
            print(f"| {name} | {tile[0]} x {tile[1]} | {warm * 1e3:.3f} | "
                  f"{s.macs / warm / 1e9 / PEAK:.0%} | {cold * 1e3:.3f} | "
                  f"{s.macs / cold / 1e9 / PEAK:.0%} |", flush=True)


if __name__ == "__main__":
    main()
