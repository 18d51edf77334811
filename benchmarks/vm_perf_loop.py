"""Call a compiled model's VM `main` in a loop, pinned, for `perf record`: where a whole call's
time goes between our kernels, TVM's runtime (VM dispatch, allocation) and libc.

    so=$EDGEBENCH_CACHE/profile/x86-core1/mobilenetv2/fp32/model.so
    perf record -D 6000 -F 5000 -g -o vm.perf -- python benchmarks/vm_perf_loop.py $so 1500
    perf report -i vm.perf --no-children --sort dso -g none

(`-D` skips the start-up; the artifact is the one `edgebench profile` builds.) The input is
random of the shape given (default 1,3,224,224).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("calls", type=int, nargs="?", default=1500)
    ap.add_argument("--shape", default="1,3,224,224")
    ap.add_argument("--core", type=int, default=1)
    args = ap.parse_args()

    import tvm
    from tvm import relax

    os.sched_setaffinity(0, {args.core})
    vm = relax.VirtualMachine(tvm.runtime.load_module(args.artifact), tvm.cpu())
    shape = tuple(int(d) for d in args.shape.split(","))
    x = tvm.runtime.tensor(np.random.default_rng(0).standard_normal(shape).astype("float32"))
    for _ in range(20):
        vm["main"](x)
    t = time.perf_counter()
    for _ in range(args.calls):
        vm["main"](x)
    print(f"{(time.perf_counter() - t) / args.calls * 1e3:.3f} ms per call (Python loop)")


if __name__ == "__main__":
    main()
