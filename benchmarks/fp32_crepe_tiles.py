"""The FP32 conv's register tile down a column (Conv.down_columns: CREPE's width-1 frames),
each (pixels, vectors) choice on the crepe-tiny / crepe-full conv shapes with the model's
epilogue (ReLU, BatchNorm scale/shift, 2x1 max pool, the next conv's 31/32 zero rows).
Built first, then timed alone on core 1 under the shared timing lock (/tmp/core1.lock):
`warm` is the best of 50 calls, `cold` the median of 10 calls after touching 64 MB.
Percentages against the 59 GMAC/s FMA peak (kernels/peak.py). Where COLUMN_TILES came from.

Run: EDGEBENCH_CACHE=... python benchmarks/fp32_crepe_tiles.py > results/fp32/crepe-tiles.md
"""

import dataclasses
import fcntl
import os
import sys

from fp32_tiles import PEAK, build, time_built

from edgebench.kernels.fp32_conv import Conv
from edgebench.kernels.layer import Epilogue
from edgebench.targets import find_target

SHAPES = {  # name: Conv on the padded input (h + 63 rows; the first conv 1024 + 508)
    "tiny conv1 1->128 512/4": Conv(1, 1532, 1, 1, 128, 512, 1, (4, 1)),
    "tiny conv2 128->16 @128": Conv(1, 191, 1, 128, 16, 64, 1),
    "tiny conv3 16->16 @64": Conv(1, 127, 1, 16, 16, 64, 1),
    "tiny conv5 16->32 @16": Conv(1, 79, 1, 16, 32, 64, 1),
    "tiny conv6 32->64 @8": Conv(1, 71, 1, 32, 64, 64, 1),
    "full conv1 1->1024 512/4": Conv(1, 1532, 1, 1, 1024, 512, 1, (4, 1)),
    "full conv2 1024->128 @128": Conv(1, 191, 1, 1024, 128, 64, 1),
    "full conv3 128->128 @64": Conv(1, 127, 1, 128, 128, 64, 1),
    "full conv6 256->512 @8": Conv(1, 71, 1, 256, 512, 64, 1),
}
TILES = [(4, 1), (8, 1), (12, 1), (16, 1), (24, 1), (4, 2), (6, 2), (8, 2), (12, 2),
         (4, 4), (6, 4), (2, 8), (4, 8)]
EPILOGUE = Epilogue("relu", pad=(31, 0), pad_end=(32, 0), affine=True, pool=2)


def main() -> None:
    tgt = find_target("x86-native").tvm_target()
    only = sys.argv[1:]
    built = []
    for name, s in SHAPES.items():
        if only and not any(o in name for o in only):
            continue
        for tile in TILES:
            pb, nk = tile
            if s.k % (nk * s.lanes) or pb > s.oh or s.oh % pb % 2:
                continue
            lib, args = build(dataclasses.replace(s, tile=tile), tgt, EPILOGUE)
            built.append((name, s, tile, lib, args))
    print("| layer | tile (pixels x vectors) | warm ms | warm of peak | cold ms | cold of peak |")
    print("|---|---|---|---|---|---|")
    with open("/tmp/core1.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.sched_setaffinity(0, {1})
        for name, s, tile, lib, args in built:
            warm, cold_s = time_built(lib, args, 50, 10)
            print(f"| {name} | {tile[0]} x {tile[1]} | {warm * 1e3:.3f} | "
                  f"{s.macs / warm / 1e9 / PEAK:.0%} | {cold_s * 1e3:.3f} | "
                  f"{s.macs / cold_s / 1e9 / PEAK:.0%} |", flush=True)


if __name__ == "__main__":
    main()
