"""Ship: `edgebench export` writes a deployable bundle for one variant on one target.

The bundle is the TVM library built exactly as `edgebench run` builds it (pipeline.build_tvm;
cross-compiled for a board), a manifest.json (model and weights hashes, variant, target and its
features, input/output names, shapes and dtypes, int8 scales, versions, the library's sha256,
the measured p50 and metric of the matching results row) and run.py (edgebench/bundle/runner.py
verbatim: numpy + tvm.runtime only). Nothing is written to the output until the bundle, copied
to a clean directory, has been re-verified on the target: locally by run.py in a Python that
cannot import torch or edgebench, on a board by loading the bundle's library over RPC; its
outputs must match the PyTorch reference within the variant's tolerance (integer variants:
the integer reference, as `run` verifies them).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

Log = Callable[[str], None]
RUNNER = Path(__file__).with_name("runner.py")
LIBRARY = "model.so"
DEFAULT_RESULTS = Path("results/latest.csv")
# Runs run.py with torch and edgebench made unimportable, then proves neither was imported.
_ISOLATED = r"""
import importlib.abc, runpy, sys
BLOCKED = ("torch", "edgebench")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not available to a bundle")
sys.meta_path.insert(0, Block())
script, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
leaked = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
if leaked:
    sys.exit(f"run.py imported {leaked}")
"""


class ExportError(ValueError):
    """The bundle cannot be made: bad input, a missing cross compiler, a failed build or
    verification (one line; the CLI exits 2 and writes nothing)."""


@dataclass
class ExportConfig:
    """What `edgebench export` needs; the CLI and Python API both build one."""

    model: str
    variant: str = "fp32"
    target: str | Path = "x86-native"
    output: str | Path = "bundle"
    trials: int = 32
    threads: int | None = None
    results: str | Path | None = None  # --from-results; default DEFAULT_RESULTS if present
    log: Log = print


@dataclass
class Bundle:
    """A verified bundle: where it is, its manifest, and how it was verified."""

    path: Path
    manifest: dict
    verify_err: float
    verified_on: str
    files: list[str] = field(default_factory=list)


def _sha256_tensors(model) -> str:
    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _runner():
    """The shipped run.py as a module (its hash checks are the ones the bundle runs)."""
    spec = importlib.util.spec_from_file_location("edgebench_bundle_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measured_row(path: Path, model: str, variant: str, target: str, threads: int
                 ) -> dict | None:
    """The last ok TVM row of this model, variant, target and threads in a results CSV."""
    from edgebench.report.results import read_rows

    rows = [r for r in read_rows(path) if r.status == "ok"
            and r.key == (model, variant, "tvm", target, str(threads))]
    if not rows or rows[-1].timing is None or rows[-1].scores is None:
        return None
    r = rows[-1]
    s = r.scores
    if s.metric and s.metric_value is not None:
        metric, value = s.metric, s.metric_value
    elif s.accuracy is not None:
        metric, value = "top1", 100 * s.accuracy
    else:
        metric, value = "agreement", 100 * (s.top1_agreement or 0.0)
    return {"results": str(path), "p50_ms": r.timing.p50_ms, "metric": metric,
            "metric_value": round(value, 4), "board": r.where.board or None,
            "machine": r.where.machine, "timestamp": r.where.timestamp}


def _check_cross_compiler(target) -> None:
    if target.is_local:
        target.check_runnable_here()
        return
    from edgebench.compile.toolchain import available

    missing = ("cross compiler '(none in the target file)' not found"
               if not target.cross_compiler_name else available(target.cross_compiler_name))
    if missing:
        raise ExportError(f"target '{target.name}': {missing}")


def _output_dir(output: Path) -> None:
    if output.exists() and (not output.is_dir() or (any(output.iterdir())
                                                     and not (output / "manifest.json").exists())):
        raise ExportError(f"{output} exists and is not an edgebench bundle; choose another -o")


def export(cfg: ExportConfig | str | None = None, **kwargs) -> Bundle:
    """Build, describe, re-verify from a clean directory, then write the bundle to cfg.output.
    `export("digits-cnn", variant="quant=static", output="b")` works too."""
    import edgebench
    from edgebench import pipeline, verify
    from edgebench.compile import CompileError
    from edgebench.models import get_model
    from edgebench.targets import find_target
    from edgebench.variant import Variant, parse_variant

    if not isinstance(cfg, ExportConfig):
        cfg = ExportConfig(cfg, **kwargs) if cfg else ExportConfig(**kwargs)
    spec = get_model(cfg.model)
    vspec = parse_variant(cfg.variant)
    target = find_target(cfg.target, cfg.threads)
    _check_cross_compiler(target)
    output = Path(cfg.output)
    _output_dir(output)
    results = Path(cfg.results) if cfg.results else None
    if results is not None and not results.is_file():
        raise ExportError(f"--from-results {results}: no such file")

    variant = Variant(spec, vspec, target)
    what = f"{spec.name} {variant.name} on '{target.name}'"
    run = pipeline.ModelRun(spec)
    transformed = vspec.apply(run.base, spec)
    model = transformed.model
    quantized = (transformed.quantized if pipeline.lowers_to_int8(variant, transformed, "tvm")
                 else None)
    reference = pipeline.reference_outputs(quantized.reference if quantized else model, run.xs)
    rcfg = pipeline.RunConfig(models=[cfg.model], target=target.path, trials=cfg.trials,
                              log=cfg.log)
    with tempfile.TemporaryDirectory(prefix="edgebench-export-") as tmp:
        stage, clean = Path(tmp) / "bundle", Path(tmp) / "clean"
        stage.mkdir()
        cfg.log(f"export: building {what}")
        try:
            built, _ = pipeline.build_tvm(variant, model, run.xs[0], stage / LIBRARY, rcfg,
                                          quantized)
        except CompileError as e:
            raise ExportError(f"{what}: build failed: {str(e).strip().splitlines()[0]}") from None
        for extra in stage.iterdir():  # the tuning summary beside the library is not shipped
            if extra.name != LIBRARY:
                extra.unlink()
        shutil.copy2(RUNNER, stage / "run.py")
        np.save(stage / "example_input.npy", run.xs[0].numpy())
        np.save(stage / "example_output.npy", reference[0][0])
        measured = None
        source = results or (DEFAULT_RESULTS if DEFAULT_RESULTS.is_file() else None)
        if source is not None:
            measured = measured_row(source, spec.name, variant.name, target.name, target.threads)
            cfg.log(f"export: measured row from {source}: "
                    + (f"p50 {measured['p50_ms']:.4g} ms" if measured else "none matches"))
        manifest = _manifest(spec, variant, target, run, model, quantized, built,
                             measured, reference, stage / LIBRARY, edgebench.__version__)
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1))

        shutil.copytree(stage, clean)  # verify what a user receives, nothing else
        outputs, where = _run_bundle(clean, target, run.xs.numpy(), cfg.log)
        if quantized is not None:
            check = verify.compare_lsb(outputs, reference, built.lsb)
        else:
            check = verify.compare(outputs, reference, vspec.dtype)
        if not check.ok:
            raise ExportError(f"{what} fails verification on {where}: {check.message}; "
                              "no bundle written")
        cfg.log(f"export: bundle verified on {where} (max abs err {check.max_abs_err:.3g} "
                f"vs the {'integer' if quantized else 'PyTorch'} reference)")
        if output.exists():
            shutil.rmtree(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, output)
    files = sorted(p.name for p in output.iterdir())
    cfg.log(f"export: {output} ({', '.join(files)})")
    return Bundle(output, manifest, check.max_abs_err, where, files)


def _run_bundle(bundle: Path, target, xs: np.ndarray, log: Log) -> tuple[list[np.ndarray], str]:
    """The bundle's outputs on every evaluation input, run where it will be deployed."""
    runner = _runner()
    try:
        _, lib = runner.load_bundle(bundle)
    except runner.BundleError as e:
        raise ExportError(str(e)) from None
    if target.is_local:
        return run_isolated(bundle, xs, target.threads), "x86 host (run.py, tvm + numpy only)"
    from edgebench.execute.rpc import BoardError, run_remote
    from edgebench.measure import QUICK

    try:
        result, board = run_remote(lib, xs, target, QUICK, log)
    except BoardError as e:
        raise ExportError(f"target '{target.name}': {e}") from None
    return result.outputs, f"board {board.name}"


def run_isolated(bundle: Path, xs: np.ndarray, threads: int = 1) -> list[np.ndarray]:
    """run.py on xs in a fresh Python that cannot import torch or edgebench (-I: no
    PYTHONPATH, no user site; a finder refuses both; their absence is checked at exit)."""
    work = Path(tempfile.mkdtemp(prefix="edgebench-run-"))
    try:
        np.save(work / "x.npy", xs)
        env = {**os.environ, "TVM_NUM_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, "-I", "-c", _ISOLATED, str(bundle / "run.py"),
                               "--input", str(work / "x.npy"), "--output", str(work / "y.npy")],
                              capture_output=True, text=True, env=env, cwd=work, timeout=600)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise ExportError(f"run.py failed: {lines[-1] if lines else proc.returncode}")
        outs = sorted(work.glob("y*.npy"))
        return [np.load(p) for p in outs]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _io(spec, model, reference: list[np.ndarray]) -> tuple[list[dict], list[dict]]:
    names = [n for n in inspect.signature(model.forward).parameters][:1] or ["input"]
    inputs = [{"name": names[0], "shape": list(spec.input_shape), "dtype": spec.input_dtype}]
    outputs = [{"name": f"output_{i}", "shape": list(r.shape[1:]), "dtype": str(r.dtype)}
               for i, r in enumerate(reference)]
    return inputs, outputs


def _quantization(quantized, built, inputs: list[dict]) -> dict | None:
    """Integer variants: the scale/zero point the library quantizes its float input with and
    the scale each output was dequantized from (the library's I/O stay float32)."""
    if quantized is None or built.lowering is None:
        return None
    tensors = quantized.description.tensors
    ins = []
    for spec in inputs:
        q = tensors.get(spec["name"])
        ins.append({"name": spec["name"], "scale": q.scale, "zero_point": q.zero_point,
                    "dtype": q.dtype} if q else {"name": spec["name"], "float": True})
    outs = [{"name": f"output_{i}", "scale": s} if s is not None
            else {"name": f"output_{i}", "float": True}
            for i, s in enumerate(built.lowering.output_lsb)]
    return {"method": quantized.config.method, "inputs": ins, "outputs": outs,
            "note": "the library takes and returns float32; these are the int8 scales inside"}


def _manifest(spec, variant, target, run, model, quantized, built, measured, reference,
              lib: Path, version: str) -> dict:
    runner = _runner()
    inputs, outputs = _io(spec, run.base, reference)
    manifest = {
        "format": "edgebench-bundle/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"name": spec.name, "weights_sha256": _sha256_tensors(run.base),
                  "variant_weights_sha256": _sha256_tensors(model)},
        "variant": variant.name,
        "target": {"name": target.name, "arch": target.arch, "tvm": target.tvm_dict(),
                   "threads": target.threads, "emulated": target.emulated,
                   "cross_compiler": target.cross_compiler,
                   "features": {"vnni": target.vnni, "amx": target.amx,
                                "dotprod": target.dotprod, "avx512": target.avx512,
                                "fp16_arith": target.fp16_arith}},
        "inputs": inputs,
        "outputs": outputs,
        "quantization": _quantization(quantized, built, inputs),
        "build": {k: v.text() if hasattr(v, "text") else v
                  for k in ("quant_kind", "int8_layers", "fp16_kernels", "sparse_layers",
                            "prune_kind", "tuned_trials")
                  if (v := getattr(built.facts, k)) is not None},
        "versions": {"edgebench": version, "apache-tvm": importlib.metadata.version("apache-tvm"),
                     "apache-tvm-ffi": importlib.metadata.version("apache-tvm-ffi")},
        "library": {"file": lib.name, "sha256": runner.sha256_file(lib),
                    "bytes": lib.stat().st_size},
        "measured": measured,
        "runner": "python3 run.py --input x.npy --output y.npy [--time N]",
    }
    manifest["manifest_sha256"] = runner.manifest_digest(manifest)
    return manifest
