"""Rows for large models on a slow (emulated) board: the pipeline's own run_model on a model
spec whose evaluation batch is cut to --inputs samples, with a minimal timing (correctness
only: `edgebench run` has no option for the evaluation size, and under qemu one untuned
ResNet-18 inference takes minutes).

    python benchmarks/fp16_few_inputs.py resnet18 mobilenetv2 --target arm-dotprod --inputs 2 \
        --variants quant=fp16 -o results/fp16/large-emulated.csv
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from edgebench.envinfo import host_environment
from edgebench.measure import MeasureConfig
from edgebench.models import get_model
from edgebench.pipeline import RunConfig, run_model
from edgebench.report import ResultsWriter, write_markdown
from edgebench.targets import find_target
from edgebench.variant import parse_variant

ONCE = MeasureConfig(warmup_runs=0, warmup_s=0.0, min_runs=2, min_time_s=0.0, max_time_s=1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--target", default="arm-dotprod")
    ap.add_argument("--variants", nargs="+", default=["quant=fp16"])
    ap.add_argument("--inputs", type=int, default=2)
    ap.add_argument("--session-timeout", type=int, default=7200)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    target = find_target(args.target)
    if target.rpc is not None:  # one row's session outlives the target's 600 s under qemu
        target = replace(target, rpc=replace(target.rpc, session_timeout=args.session_timeout))
    cfg = RunConfig(target=args.target, trials=0, output=args.output, measure=ONCE)
    env = host_environment()
    writer = ResultsWriter(args.output, env)
    try:
        for name in args.models:
            spec = replace(get_model(name), fidelity_samples=args.inputs)
            run_model(spec, [parse_variant(v) for v in args.variants], ["tvm"], target, cfg,
                      writer, writer.finished(), env, [])
    finally:
        write_markdown(writer.path)


if __name__ == "__main__":
    main()
