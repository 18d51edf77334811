"""Run an edgebench bundle with only the TVM runtime and numpy (no edgebench, no torch).

Shipped verbatim as the bundle's run.py, beside model.so and manifest.json:

    python3 run.py --input x.npy --output y.npy [--time 100]

It refuses (one line, exit 2) a bundle whose library or manifest does not match the hashes in
the manifest, and an input whose shape or dtype differs from the manifest's. The input is one
sample (the manifest's input shape) or a stack of them (N, *shape): each runs on its own
(batch 1, as measured) and the outputs are stacked the same way. With several outputs,
`y.npy` becomes y_0.npy, y_1.npy, ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

MANIFEST = "manifest.json"


class BundleError(Exception):
    """The bundle or the input does not match the manifest (printed as one line, exit 2)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own digest field: any edit shows."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load_bundle(bundle: Path) -> tuple[dict, Path]:
    """The manifest and the library path, after checking both hashes."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{bundle / MANIFEST}: unreadable manifest ({e})") from None
    if manifest.get("manifest_sha256") != manifest_digest(manifest):
        raise BundleError(f"{bundle / MANIFEST} was modified after export (its digest does "
                          "not match its content): refusing the bundle")
    lib = bundle / manifest["library"]["file"]
    if not lib.is_file():
        raise BundleError(f"{lib}: the bundle's library is missing")
    actual = sha256_file(lib)
    if actual != manifest["library"]["sha256"]:
        raise BundleError(f"{lib.name}: sha256 {actual[:16]}... does not match the manifest's "
                          f"{manifest['library']['sha256'][:16]}...: refusing a tampered or "
                          "mismatched library")
    return manifest, lib


def check_input(manifest: dict, x) -> bool:
    """True if x is a stack of samples, False if one sample; BundleError if neither."""
    spec = manifest["inputs"][0]
    shape, dtype = tuple(spec["shape"]), spec["dtype"]
    if str(x.dtype) != dtype:
        raise BundleError(f"input dtype {x.dtype}, the model takes {dtype}")
    if tuple(x.shape) == shape:
        return False
    if tuple(x.shape[1:]) == shape:
        return True
    raise BundleError(f"input shape {tuple(x.shape)}, the model takes {shape} "
                      f"(or a stack of them: (N, {', '.join(map(str, shape))}))")


class Model:
    """The bundle's library in the Relax VM on the local CPU."""

    def __init__(self, lib: Path) -> None:
        os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")  # libtvm_runtime only
        import tvm
        from tvm.runtime.vm import VirtualMachine

        self.tvm = tvm
        self.dev = tvm.cpu()
        self.vm = VirtualMachine(tvm.runtime.load_module(str(lib)), self.dev)

    def set_input(self, x) -> None:
        import numpy as np

        self.vm.set_input("main", self.tvm.runtime.tensor(np.ascontiguousarray(x), self.dev))

    def __call__(self, x) -> list:
        self.set_input(x)
        self.vm.invoke_stateful("main")
        out = self.vm.get_outputs("main")
        return [o.numpy() for o in (out if isinstance(out, tuple | list) else (out,))]

    def time_ms(self, x, repeat: int):
        """Per-call times (ms), the runtime's own timer, one call per sample."""
        import numpy as np

        self.set_input(x)
        timer = self.vm.time_evaluator("invoke_stateful", self.dev, number=1, repeat=repeat)
        return np.asarray(timer("main").results) * 1e3


def infer(model: Model, manifest: dict, x) -> list:
    """Outputs on x: one sample, or each of stacked samples (batch 1) with outputs stacked."""
    import numpy as np

    if not check_input(manifest, x):
        return model(x)
    return [np.stack(o) for o in zip(*(model(s) for s in x), strict=True)]


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    p = argparse.ArgumentParser(description="run an edgebench bundle (TVM runtime + numpy)")
    p.add_argument("--bundle", default=str(Path(__file__).resolve().parent),
                   help="bundle directory (default: this script's)")
    p.add_argument("--input", "-i", required=True, help=".npy input: one sample or a stack")
    p.add_argument("--output", "-o", default=None, help=".npy output (stacked like the input)")
    p.add_argument("--time", type=int, default=0, metavar="N",
                   help="also time N calls on the first sample; print p50/min in ms")
    args = p.parse_args(argv)
    bundle = Path(args.bundle)
    try:
        x = np.load(args.input)
        manifest, lib = load_bundle(bundle)
        check_input(manifest, x)
        model = Model(lib)
        outs = infer(model, manifest, x)
        if args.output:
            out = Path(args.output)
            paths = [out] if len(outs) == 1 else [out.with_name(f"{out.stem}_{i}.npy")
                                                  for i in range(len(outs))]
            for path, o in zip(paths, outs, strict=True):
                np.save(path, o)
            print(f"wrote {', '.join(map(str, paths))}")
        if args.time:
            ms = model.time_ms(x[0] if check_input(manifest, x) else x, args.time)
            print(f"{manifest['model']['name']} {manifest['variant']}: p50 "
                  f"{np.median(ms):.4f} ms, min {ms.min():.4f} ms over {len(ms)} calls")
    except (BundleError, OSError, ValueError) as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
