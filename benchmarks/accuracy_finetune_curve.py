"""What fine-tuning after pruning takes: the metric against the number of steps (issue 15).

For each model and pruning config (`:ftN` = N epochs of the model's train part), prune with
edgebench's public API, fine-tune with the default recipe (distilled from the FP32 model,
BatchNorm statistics re-estimated after training), and report the PyTorch metric on the
test part with the steps and seconds fine-tuning took. `--no-distill` runs the same
configs on the task loss alone. Appends to a CSV (one line per run) and prints a table.

    python benchmarks/accuracy_finetune_curve.py crepe-tiny unstructured:0.8:ft1 ... \
        --eval-samples 200 -o results/accuracy/finetune_curve.csv
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import fields, replace
from pathlib import Path

from edgebench.models import get_model
from edgebench.prune import GradualConfig, parse_prune, prune

COLUMNS = ["model", "config", "distill", "steps", "train_s", "metric", "fp32", "oneshot",
           "after", "drop", "eval_samples", "timestamp"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("configs", nargs="+", help="prune configs, e.g. unstructured:0.8:ft5")
    ap.add_argument("--eval-samples", type=int, default=None)
    ap.add_argument("--no-distill", action="store_true", help="task loss only")
    ap.add_argument("-o", "--output", type=Path, default=Path("finetune_curve.csv"))
    args = ap.parse_args()
    spec = replace(get_model(args.model), eval_samples=args.eval_samples)
    model = spec.build()
    example = spec.example_input()
    new = not args.output.exists()
    with args.output.open("a", newline="") as fh:
        out = csv.DictWriter(fh, COLUMNS)
        if new:
            out.writeheader()
        for text in args.configs:
            config = parse_prune(text)
            flag = "distill" if isinstance(config, GradualConfig) else "finetune_distill"
            if args.no_distill and flag in {f.name for f in fields(config)}:
                config = replace(config, **{flag: False})
            base = config.target if isinstance(config, GradualConfig) else config
            oneshot = prune(model, replace(base, finetune_epochs=0), example, spec)
            r = prune(model, config, example, spec)
            row = {"model": spec.name, "config": text, "distill": bool(r.train and
                                                                        r.train.distilled),
                   "steps": r.train.steps if r.train else 0,
                   "train_s": round(r.train.seconds, 1) if r.train else 0.0,
                   "metric": r.metric, "fp32": round(r.metric_before, 2),
                   "oneshot": round(oneshot.metric_after, 2), "after": round(r.metric_after, 2),
                   "drop": round(r.metric_before - r.metric_after, 2),
                   "eval_samples": args.eval_samples or "",
                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
            out.writerow(row)
            fh.flush()
            print(" | ".join(str(row[c]) for c in COLUMNS[:10]), flush=True)


if __name__ == "__main__":
    main()
