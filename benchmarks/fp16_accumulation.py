"""Where ResNet-18's FP16 error comes from: TVM's float16 build (float16 accumulation, what
`fmla v.8h` / `vfmadd231ph` do) vs the same graph accumulating conv/matmul in float32
(`ToMixedPrecision(out_dtype="float32")`: not an FP16 build, a diagnostic), both against
PyTorch's FP16 model and FP32 model, natively on this host (needs AVX512-FP16), untuned.

    python benchmarks/fp16_accumulation.py resnet18 --inputs 4 > results/fp16/accumulation.md
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from edgebench.compile import compile_module
from edgebench.frontend import import_model
from edgebench.models import get_model
from edgebench.passes.fp16 import check_fp16_asm, clip_as_min_max
from edgebench.pipeline import reference_outputs
from edgebench.quantize import parse_quant, quantize
from edgebench.targets import find_target


def build_and_run(mod, target, out: Path, acc: str, xs: np.ndarray):
    passes = [clip_as_min_max(), relax.transform.ToMixedPrecision(out_dtype=acc),
              relax.transform.FoldConstant()]
    result = compile_module(mod, target, out, 0, extra_passes=passes, keep_asm=True)
    check = check_fp16_asm(result.module, result.asm, target.arch)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(out)), tvm.cpu())
    ys = np.stack([vm["main"](tvm.runtime.tensor(x, tvm.cpu()))[0].numpy() for x in xs])
    return ys, check


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--inputs", type=int, default=4)
    args = ap.parse_args()
    target = find_target("x86-native")
    assert target.fp16_arith, "needs a host with AVX512-FP16"
    spec = replace(get_model(args.model), fidelity_samples=args.inputs)
    q = quantize(spec.build(), parse_quant("fp16"), spec)
    xs, _ = spec.eval_data()
    fp16_ref = reference_outputs(q.model, xs)[0]
    fp32_ref = reference_outputs(q.float_model, xs)[0]
    mod = import_model(q.float_model, spec.example_input(), args.model)
    scale = float(np.abs(fp16_ref).max())
    rows = [("PyTorch FP16 model", fp16_ref, "")]
    with tempfile.TemporaryDirectory() as tmp:
        for acc in ("float16", "float32"):
            ys, check = build_and_run(mod, target, Path(tmp) / f"{acc}.so", acc, xs.numpy())
            note = ("FP16 build: FP16 multiply-adds in every conv/matmul kernel"
                    if not check.missing else f"{len(check.missing)} conv/matmul kernels "
                    "without FP16 multiply-adds (not an FP16 build)")
            rows.append((f"TVM, conv/matmul accumulating in {acc}", ys, note))
    print(f"# {args.model}: FP16 error by accumulation ({args.inputs} inputs, x86-native, "
          "untuned)\n")
    print(f"max |logit| of PyTorch's FP16 model: {scale:.3g}; the float16 verification "
          f"tolerance is 2% of it: {0.02 * max(1.0, scale):.3g}\n")
    print("| outputs | max abs err vs PyTorch FP16 | vs PyTorch FP32 | top-1 agreement with "
          "FP32 | kernels |")
    print("|---|---|---|---|---|")
    for name, ys, note in rows:
        e16 = float(np.abs(ys - fp16_ref).max())
        e32 = float(np.abs(ys - fp32_ref).max())
        agree = float(np.mean(ys.argmax(-1) == fp32_ref.argmax(-1)))
        print(f"| {name} | {e16:.4g} | {e32:.4g} | {agree:.3f} | {note} |")


if __name__ == "__main__":
    main()
