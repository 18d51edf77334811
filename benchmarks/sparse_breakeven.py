"""Break-even sparsity of edgebench's sparse kernels vs the tuned dense kernel, per layer shape.

For one Linear layer of the MLP (2048x2048, batch 1), one of the encoder (256x1024, 128 tokens)
and two ResNet-18 convs (64x64 3x3 at 56x56; 256x256 3x3 at 14x14), each block shape and
sparsities 10-95%: the sparse kernel's time (compiled alone, timed on the target's core) against
the MetaSchedule-tuned dense layer (best time in the tuning database, tuned first if missing).
The same measurement decides, layer by layer, which layers of a `+sparse` variant go sparse.

    python benchmarks/sparse_breakeven.py [target.toml] -> results/sparse/breakeven.{csv,md}
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from edgebench.compile.sparse_choice import MeasuredChoice
from edgebench.passes.sparse_weights import LayerChain, SparseLayer
from edgebench.targets import find_target

HERE = Path(__file__).resolve().parents[1] / "results" / "sparse"
SPARSITIES = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
LAYERS = [  # name, op, x shape, weight shape, conv attrs, blocks
    ("mlp 2048x2048", "dense", (1, 2048), (2048, 2048), {}, [(1, 1), (4, 1), (8, 1), (16, 1)]),
    ("encoder ffn 256x1024 x128", "dense", (1, 128, 1024), (256, 1024), {},
     [(1, 1), (4, 1), (16, 1)]),
    ("resnet18 conv 64x64x3x3 @56", "conv2d", (1, 64, 56, 56), (64, 64, 3, 3),
     {"strides": (1, 1), "padding": (1, 1, 1, 1)}, [(1, 1), (4, 1)]),
    ("resnet18 conv 256x256x3x3 @14", "conv2d", (1, 256, 14, 14), (256, 256, 3, 3),
     {"strides": (1, 1), "padding": (1, 1, 1, 1)}, [(1, 1), (4, 1)]),
]


def _weight(rng, shape, block, sparsity):
    w2d = rng.standard_normal((shape[0], int(np.prod(shape[1:])))).astype("float32")
    r, c = block
    nb = (w2d.shape[0] // r) * (w2d.shape[1] // c)
    keep = np.ones(nb, bool)
    keep[rng.permutation(nb)[:round(sparsity * nb)]] = False
    w2d *= np.kron(keep.reshape(w2d.shape[0] // r, -1), np.ones((r, c), "float32"))
    return w2d.reshape(shape)


class _X:
    """Stands in for the Relax input var: the choice only reads its static shape."""

    def __init__(self, shape):
        from tvm import relax

        self.ty = relax.TensorType(shape, "float32")


def main() -> None:
    target = find_target(sys.argv[1] if len(sys.argv) > 1 else "x86-native")
    choice = MeasuredChoice(target, trials=32, progress=print)
    rng = np.random.default_rng(0)
    rows = []
    for name, op, xshape, wshape, attrs, blocks in LAYERS:
        dense = None
        for block in blocks:
            for s in SPARSITIES:
                w = _weight(rng, wshape, block, s)
                chain = LayerChain(_X(xshape), w, op, np.zeros(wshape[0], "float32"), "relu",
                               attrs, bias_first=op == "dense",
                               bias_shape=(wshape[0],) if op == "dense" else (1, wshape[0], 1, 1))
                if dense is None:
                    dense = choice.dense_us(chain)
                layer = SparseLayer(0, op, wshape, s, block)
                sparse = choice.sparse_us(layer, chain)
                rows.append({"layer": name, "block": f"{block[0]}x{block[1]}", "sparsity": s,
                             "sparse_us": sparse, "dense_us": dense, "speedup": dense / sparse})
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(HERE / "breakeven.csv", index=False)
    lines = [f"# Sparse vs tuned dense, per layer (target {target.name}, 1 thread)", "",
             "Speedup of the sparse kernel over the tuned dense layer (>1: sparse wins); "
             "break-even = lowest sparsity measured faster.", "",
             "| layer | block | dense us | " + " | ".join(f"{s:.0%}" for s in SPARSITIES)
             + " | break-even |", "|---" * (4 + len(SPARSITIES)) + "|"]
    for (layer, block), g in df.groupby(["layer", "block"], sort=False):
        wins = g[g.speedup > 1].sparsity
        lines.append(f"| {layer} | {block} | {g.dense_us.iloc[0]:.1f} | "
                     + " | ".join(f"{v:.2f}x" for v in g.speedup)
                     + f" | {f'{wins.min():.0%}' if len(wins) else 'none'} |")
    (HERE / "breakeven.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
