"""The static instruction-count argument for our NEON kernels (no timing: the only board
here is emulated): build each family for a Cortex-A72 / A76 target, find the innermost loop
that holds `fmla` in its assembly, and count what it issues per iteration. A loop cannot run
faster than max(fmla / FMA pipes, instructions / decode width) cycles, so
(fmla / pipes) / that bound is the best fraction of the core's FMA peak it can reach (memory
stalls and loop overhead outside it only lower it). Latency is the other limit: a tile needs
at least FMA latency x pipes independent accumulators (the column says how many it has).

Run: PYTHONPATH=$PWD python benchmarks/neon_inner_loop.py > results/arm/neon-inner-loop.md
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

from edgebench.kernels import registry
from edgebench.kernels.fp32_depthwise import PIXELS
from edgebench.kernels.layer import Epilogue, Layer, vectors
from edgebench.targets import find_target

# core -> (128-bit FMA pipes, decode width): Arm's software optimization guides (A72: one
# FMA pipe for Q-form FMLA per fp32-kernels.md's peak, 3-wide decode; A76: two, 4-wide)
CORES = {"cortex-a72": (1, 3), "cortex-a76": (2, 4)}
LAYERS = {
    "conv 3x3 64->64 @56 (ResNet-18)": Layer("conv2d", 64, 64, 56, 56, kernel=(3, 3),
                                             padding=(1, 1), epilogue=Epilogue("relu")),
    "conv 1x1 96->24 @14 (MobileNetV2)": Layer("conv2d", 96, 24, 14, 14),
    "depthwise 3x3 144 @28": Layer("conv2d", 144, 144, 28, 28, kernel=(3, 3), padding=(1, 1),
                                   groups=144, epilogue=Epilogue("relu6")),
    "linear 784->2048, 1 row (GEMV)": Layer("linear", 784, 2048, 1, 1),
    "linear 64->64, 128 rows (GEMM)": Layer("linear", 64, 64, 1, 128),
}


def inner_loop(asm: str) -> list[str]:
    """The instructions of the hottest innermost loop: among the backward-branch loops with
    an fmla and no such loop inside, the one with the most fmla (the full register tile, not
    the narrower tail block of a row)."""
    lines = asm.splitlines()
    labels = {ln.split(":")[0]: i for i, ln in enumerate(lines) if re.match(r"^\.?\w+:", ln)}
    loops = {}
    for i, ln in enumerate(lines):
        m = re.match(r"\s+(?:b(?:\.\w+)?|cbn?z|tbn?z)\s+(?:.*,\s*)?(\.LBB\w+)\s*$", ln)
        if m and labels.get(m.group(1), i) < i:
            body = [x.strip() for x in lines[labels[m.group(1)]:i + 1]
                    if x.startswith("\t") and not x.strip().startswith((".", "//"))]
            if any(x.startswith("fmla") for x in body):
                loops[(labels[m.group(1)], i)] = body
    inner = [body for (a, b), body in loops.items()
             if not any(a <= a2 and b2 <= b and (a2, b2) != (a, b) for a2, b2 in loops)]
    return max(inner, key=lambda body: sum(x.startswith("fmla") for x in body), default=[])


def main() -> None:
    import tvm

    print("| target (core) | dtype | layer | tile (pixels x vectors) | independent "
          "accumulators | loop instructions | fmla | loads | issue bound: fraction of FMA "
          "peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, dtype in (("arm", "float32"), ("arm-dotprod", "float32"),
                        ("arm-dotprod", "float16")):
        target = find_target(name)
        pipes, width = CORES[target.tvm["mcpu"]]
        for label, layer in LAYERS.items():
            layer = replace(layer, dtype=dtype)
            family = registry.choose(layer, target)
            s = family.shape(layer, target)
            tile = s.blocking() if hasattr(s, "blocking") else (min(PIXELS, s.ow), 1)
            f = family.emit(layer, target).with_attr("global_symbol", "k")
            lib = tvm.compile(tvm.IRModule({"k": f}), target=target.tvm_target())
            body = inner_loop(lib.mod.inspect_source("asm"))
            ops = Counter(x.split()[0] for x in body)
            fmla = ops["fmla"]
            loads = sum(n for op, n in ops.items() if op.startswith("ld"))
            cycles = max(fmla / pipes, len(body) / width)
            print(f"| {name} ({target.tvm['mcpu']}) | {dtype} ({vectors(target, dtype).lanes} "
                  f"lanes) | {label} | {tile[0]} x {tile[1]} | {tile[0] * tile[1]} | "
                  f"{len(body)} | {fmla} | {loads} | {fmla / pipes / cycles:.0%} |")


if __name__ == "__main__":
    main()
