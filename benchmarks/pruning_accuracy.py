"""Accuracy vs sparsity on the real digits test split: one-shot vs fine-tuned vs gradual.

Run from the repo root (pin it off the benchmark core, e.g. `taskset -c 1`):

    python benchmarks/pruning_accuracy.py                 # measure, then report
    python benchmarks/pruning_accuracy.py --report-only   # redraw .md and .png from the CSV

For digits-cnn and digits-mlp and each method it prunes the cached FP32 model at 0-95%
sparsity and scores the 360 test images (one image = 0.28 points). Schedules:
  oneshot     prune once, no training;
  oneshot+ft  prune once, then fine-tune with the masks held (same epochs/lr as gradual);
  gradual     GradualConfig defaults: polynomial schedule while fine-tuning.
achieved_sparsity is 1 - (non-zero Linear/Conv2d weights) / (FP32 Linear/Conv2d weights):
zeros for masked methods, removed weights for channel pruning; first/last layers left dense
by keep_first_last count as dense. Writes accuracy.csv (row by row), accuracy.md and
accuracy_vs_sparsity.png next to this file.
"""

from __future__ import annotations

import csv
import dataclasses
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch

from edgebench.models import get_model
from edgebench.models.digits import evaluate_accuracy
from edgebench.prune import (
    BlockConfig,
    ChannelConfig,
    GradualConfig,
    LayerSelection,
    NMConfig,
    PruneConfig,
    UnstructuredConfig,
    prune,
)
from edgebench.prune.stats import count_macs, count_params, layer_stats

OUT = Path(__file__).resolve().parents[1] / "results" / "pruning"
MODELS = ("digits-cnn", "digits-mlp")
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
CHANNEL = (0.25, 0.5, 0.75)
COLUMNS = ["model", "method", "schedule", "target_sparsity", "achieved_sparsity", "params",
           "nonzero", "macs", "accuracy", "fp32_accuracy"]
GRADUAL = GradualConfig(UnstructuredConfig(0.9))  # the recipe under test (its defaults)


def _finetuned(config: LayerSelection) -> LayerSelection:
    """Same one-shot config, fine-tuned with the gradual recipe's budget."""
    return dataclasses.replace(config, finetune_epochs=GRADUAL.epochs, finetune_lr=GRADUAL.lr)


def runs() -> Iterator[tuple[str, str, float, PruneConfig]]:
    """(method, schedule, target sparsity, config) in the order they are measured."""
    masked = {"unstructured": lambda s: UnstructuredConfig(s),
              "unstructured-global": lambda s: UnstructuredConfig(s, scope="global"),
              "block-4x1": lambda s: BlockConfig((4, 1), s)}
    for method, make in masked.items():
        for s in SPARSITIES:
            yield method, "oneshot", s, make(s)
            yield method, "oneshot+ft", s, _finetuned(make(s))
            yield method, "gradual", s, dataclasses.replace(GRADUAL, target=make(s))
    for n, m in ((2, 4), (1, 4)):
        config = NMConfig(n, m)
        yield f"nm-{n}:{m}", "oneshot", config.sparsity, config
        yield f"nm-{n}:{m}", "oneshot+ft", config.sparsity, _finetuned(config)
    for s in CHANNEL:
        yield "channel", "oneshot", s, ChannelConfig(s)
        yield "channel", "oneshot+ft", s, _finetuned(ChannelConfig(s))


def _weights(model: torch.nn.Module) -> tuple[int, int]:
    stats = layer_stats(model, set())
    return sum(la.params for la in stats), sum(la.nonzero for la in stats)


def measure(csv_path: Path) -> pd.DataFrame:
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for name in MODELS:
            spec = get_model(name)
            model, example = spec.build(), spec.example_input()
            inputs, labels = spec.eval_data()
            fp32 = evaluate_accuracy(model, inputs, labels)
            fp32_weights = _weights(model)[0]
            params, nonzero = count_params(model)
            row = dict(model=name, method="fp32", schedule="-", target_sparsity=0.0,
                       achieved_sparsity=0.0, params=params, nonzero=nonzero,
                       macs=count_macs(model, example), accuracy=fp32, fp32_accuracy=fp32)
            writer.writerow(row)
            f.flush()
            for method, schedule, target, config in runs():
                start = time.perf_counter()
                result = prune(model, config, example, spec)
                row = dict(model=name, method=method, schedule=schedule,
                           target_sparsity=target,
                           achieved_sparsity=round(1 - _weights(result.model)[1] / fp32_weights,
                                                   4),
                           params=result.params, nonzero=result.nonzero, macs=result.macs,
                           accuracy=result.accuracy_after, fp32_accuracy=fp32)
                writer.writerow(row)
                f.flush()
                print(f"{name:10s} {method:19s} {schedule:10s} {target:5.2f} "
                      f"achieved {row['achieved_sparsity']:.3f} acc {row['accuracy']:.4f} "
                      f"(fp32 {fp32:.4f}) {time.perf_counter() - start:5.1f}s", flush=True)
    return pd.read_csv(csv_path)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def write_markdown(df: pd.DataFrame, path: Path) -> None:
    lines = ["# Pruning: digits test accuracy vs sparsity", "",
             "Generated by `benchmarks/pruning_accuracy.py` (see its docstring for the schedules "
             "and "
             "the achieved-sparsity definition). Accuracy in %, 360 test images "
             "(1 image = 0.28 points). Gradual recipe: "
             f"{GRADUAL.epochs} epochs, Adam lr {GRADUAL.lr:g} with cosine decay, polynomial "
             f"(power {GRADUAL.power:g}) schedule from step {GRADUAL.begin_step} to "
             f"{GRADUAL.end_fraction:.0%} of the steps, masks recomputed every "
             f"{GRADUAL.frequency} steps; oneshot+ft fine-tunes with the same budget.", ""]
    cnn = df[(df.model == "digits-cnn") & (df.method == "unstructured")
             & (df.schedule == "gradual") & (df.target_sparsity == 0.9)]
    if len(cnn):
        r = cnn.iloc[0]
        delta = 100 * (r.accuracy - r.fp32_accuracy)
        verdict = "within" if delta >= -1.0 else "NOT within"
        lines += [f"**Goal:** digits-cnn, gradual unstructured at 90%: {_pct(r.accuracy)}% vs "
                  f"FP32 {_pct(r.fp32_accuracy)}% ({delta:+.2f} points: {verdict} 1 point of "
                  "FP32).", ""]
    for name in MODELS:
        sub = df[df.model == name]
        fp32 = sub.fp32_accuracy.iloc[0]
        lines += [f"## {name} (FP32 {_pct(fp32)}%)", ""]
        masked = sub[sub.method.isin(["unstructured", "unstructured-global", "block-4x1"])]
        table = masked.pivot_table(index=["method", "schedule"], columns="target_sparsity",
                                   values="accuracy", sort=False)
        head = "| method | schedule | " + " | ".join(f"{c:.0%}" for c in table.columns) + " |"
        lines += [head, "|" + "---|" * (len(table.columns) + 2)]
        for (method, schedule), vals in table.iterrows():
            lines.append(f"| {method} | {schedule} | "
                         + " | ".join(_pct(v) for v in vals) + " |")
        lines += ["", "| method | schedule | target | achieved | params | nonzero | MACs | "
                  "accuracy |", "|---|---|---|---|---|---|---|---|"]
        for r in sub.itertuples():
            lines.append(f"| {r.method} | {r.schedule} | {r.target_sparsity:.2f} | "
                         f"{r.achieved_sparsity:.3f} | {r.params} | {r.nonzero} | {r.macs} | "
                         f"{_pct(r.accuracy)} |")
        lines.append("")
    path.write_text("\n".join(lines))


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless; before pyplot is imported
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(MODELS), figsize=(6 * len(MODELS), 8), sharex=True,
                             squeeze=False)
    styles = {"oneshot": ":", "oneshot+ft": "--", "gradual": "-"}
    methods = list(dict.fromkeys(df.method[df.method != "fp32"]))
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for col, name in enumerate(MODELS):
        sub = df[(df.model == name) & (df.method != "fp32")]
        fp32 = 100 * sub.fp32_accuracy.iloc[0]
        for row, ylim in enumerate(((0, 101), (fp32 - 6, fp32 + 1.5))):
            ax = axes[row][col]
            for (method, schedule), g in sub.groupby(["method", "schedule"], sort=False):
                ax.plot(g.target_sparsity, 100 * g.accuracy, styles[schedule],
                        color=colors[method], marker="o" if len(g) > 1 else "s",
                        label=f"{method} {schedule}")
            ax.axhline(fp32, color="k", lw=0.8)
            ax.axhline(fp32 - 1, color="k", lw=0.5, ls=":")
            ax.set_ylim(*ylim)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{name}" + (" (zoom; FP32 and FP32-1 lines)" if row else ""))
            ax.grid(alpha=0.3)
        axes[1][col].set_xlabel("target sparsity (channel: fraction of channels removed)")
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    """Measure and report; `--report-only` redraws the table and plot from the CSV."""
    csv_path = OUT / "accuracy.csv"
    df = pd.read_csv(csv_path) if "--report-only" in sys.argv[1:] else measure(csv_path)
    write_markdown(df, OUT / "accuracy.md")
    plot(df, OUT / "accuracy_vs_sparsity.png")
    print(f"wrote {csv_path}, accuracy.md, accuracy_vs_sparsity.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
