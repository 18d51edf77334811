"""`edgebench export`: the bundle runs with only the TVM runtime + numpy and matches PyTorch,
on this host and inside the emulated board's root fs; tampering and bad input are refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebench import cli, verify
from edgebench.bundle import ExportConfig, ExportError, export
from edgebench.execute import board
from edgebench.models import get_model
from edgebench.pipeline import reference_outputs
from edgebench.targets import find_target
from edgebench.variant import parse_variant
from tests.helpers import need_board

BOARD_DIR = str(board.board_dir())  # read before conftest points EDGEBENCH_CACHE elsewhere
# torch and edgebench made unimportable (None in sys.modules), then run.py as a script
NO_TORCH = ("import runpy, sys\n"
            "sys.modules['torch'] = sys.modules['edgebench'] = None\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def _references(variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eval inputs, labels and the variant's reference (integer reference for int8)."""
    spec = get_model("digits-cnn")
    base = spec.build()
    xs, labels = spec.eval_data()
    transformed = parse_variant(variant).apply(base, spec)
    q = transformed.quantized
    ref = reference_outputs(q.reference if q is not None else transformed.model, xs)[0]
    return xs.numpy(), labels.numpy(), ref


def _run_py(bundle: Path, x: np.ndarray, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    np.save(tmp / "x.npy", x)
    return subprocess.run([sys.executable, "-I", "-c", NO_TORCH, str(bundle / "run.py"),
                           "--input", str(tmp / "x.npy"), "--output", str(tmp / "y.npy"),
                           *extra], capture_output=True, text=True, cwd=tmp, timeout=300)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundles")
    made = {}
    for variant in ("fp32", "quant=static"):
        b = export(ExportConfig("digits-cnn", variant, "x86-native", out / variant, trials=0,
                                log=lambda _m: None))
        assert b.verified_on.startswith("x86 host")
        made[variant] = b.path
    return made


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fp32", "quant=static"])
def test_bundle_runs_without_torch_and_matches_pytorch(bundles, variant, tmp_path):
    bundle = bundles[variant]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert sorted(p.name for p in bundle.iterdir()) == [
        "example_input.npy", "example_output.npy", "manifest.json", "model.so", "run.py"]
    assert manifest["variant"] == variant and manifest["model"]["name"] == "digits-cnn"
    assert manifest["inputs"] == [{"name": "x", "shape": [1, 1, 8, 8], "dtype": "float32"}]
    assert manifest["outputs"][0]["shape"] == [1, 10]
    assert manifest["target"]["features"]["avx512"] == find_target("x86-native").avx512
    xs, labels, ref = _references(variant)
    proc = _run_py(bundle, xs, tmp_path, "--time", "20")
    assert proc.returncode == 0, proc.stderr
    assert "p50" in proc.stdout
    y = np.load(tmp_path / "y.npy")
    assert y.shape == ref.shape == (len(xs), 1, 10)
    if variant == "fp32":
        assert manifest["quantization"] is None
        assert verify.compare([y], [ref]).ok, verify.max_abs_err(y, ref)
    else:  # the integer reference within one LSB of the output scale the manifest gives
        q = manifest["quantization"]
        assert q["method"] == "static" and 0 < q["inputs"][0]["scale"] < 1
        lsb = q["outputs"][0]["scale"]
        assert 0 < lsb < 1 and np.abs(y - ref).max() <= lsb * (1 + 1e-6)
    assert (y.argmax(-1).ravel() == labels).mean() > 0.95


@pytest.mark.slow
def test_tampered_bundle_is_refused(bundles, tmp_path):
    x = np.load(bundles["fp32"] / "example_input.npy")
    lib = tmp_path / "lib"
    shutil.copytree(bundles["fp32"], lib)
    data = bytearray((lib / "model.so").read_bytes())
    data[len(data) // 2] ^= 1  # one byte of the library
    (lib / "model.so").write_bytes(bytes(data))
    proc = _run_py(lib, x, tmp_path)
    assert proc.returncode == 2 and not (tmp_path / "y.npy").exists()
    assert proc.stderr.strip().count("\n") == 0 and "tampered" in proc.stderr, proc.stderr

    man = tmp_path / "man"
    shutil.copytree(bundles["fp32"], man)
    manifest = json.loads((man / "manifest.json").read_text())
    manifest["inputs"][0]["shape"] = [1, 1, 16, 16]  # an edit that leaves the library hash
    (man / "manifest.json").write_text(json.dumps(manifest))
    proc = _run_py(man, x, tmp_path)
    assert proc.returncode == 2 and "modified after export" in proc.stderr, proc.stderr

    ok = _run_py(bundles["fp32"], x[None], tmp_path)  # untouched bundle, stacked input
    assert ok.returncode == 0, ok.stderr
    assert np.allclose(np.load(tmp_path / "y.npy")[0],
                       np.load(bundles["fp32"] / "example_output.npy"), atol=1e-5)
    bad = _run_py(bundles["fp32"], x[..., :4], tmp_path)
    assert bad.returncode == 2 and "input shape" in bad.stderr


@pytest.mark.parametrize("args, message", [
    (["no-such-model"], "unknown model"),
    (["digits-cnn", "--variant", "quant=nope"], "unknown quant method"),
    (["digits-cnn", "--target", "no-such-target"], "no-such-target"),
])
def test_bad_input_is_one_line_exit_2(args, message, tmp_path, capsys):
    assert cli.main(["export", *args, "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "b").exists()


def test_missing_cross_compiler_and_foreign_directory_are_refused(tmp_path):
    toml = tmp_path / "nocc.toml"
    toml.write_text(find_target("arm").path.read_text().replace(
        'cross_compiler = "aarch64-linux-gnu-g++"', 'cross_compiler = "no-such-g++"'))
    with pytest.raises(ExportError, match="cross compiler 'no-such-g\\+\\+' not found"):
        export(ExportConfig("digits-cnn", target=toml, output=tmp_path / "b"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="is not an edgebench bundle"):
        export(ExportConfig("digits-cnn", output=tmp_path / "mine"))


def test_measured_row_is_taken_from_results(tmp_path):
    from edgebench.bundle import measured_row
    from edgebench.report.results import ResultsWriter

    writer = ResultsWriter(tmp_path / "r.csv")
    common = {"model": "digits-cnn", "variant": "quant=static", "target": "x86-native",
              "threads": 1}
    writer.append({**common, "runtime": "pytorch", "status": "ok", "p50_ms": 9.0})
    writer.append({**common, "runtime": "tvm", "status": "ok", "p50_ms": 0.25,
                   "accuracy": 0.975})
    writer.append({**common, "runtime": "tvm", "status": "failed", "error": "x"})
    row = measured_row(writer.path, "digits-cnn", "quant=static", "x86-native", 1)
    assert row["p50_ms"] == 0.25 and row["metric"] == "top1" and row["metric_value"] == 97.5
    assert measured_row(writer.path, "digits-cnn", "fp32", "x86-native", 1) is None


@pytest.mark.arm
@pytest.mark.slow
def test_bundle_runs_on_the_board_with_only_the_tvm_runtime(tmp_path, monkeypatch):
    """Exported for `arm` (cross-compiled, verified over RPC), then run.py executed INSIDE the
    board's root fs by its own python3 under qemu: aarch64 TVM runtime + numpy, no torch."""
    need_board(find_target("arm"))
    monkeypatch.setenv("EDGEBENCH_BOARD_DIR", BOARD_DIR)
    root = board.rootfs()
    b = export(ExportConfig("digits-cnn", "quant=static", "arm", tmp_path / "arm", trials=0,
                            log=lambda _m: None))
    assert b.verified_on.startswith("board arm@127.0.0.1:9091")
    assert b.manifest["target"]["arch"] == "aarch64"
    assert (tmp_path / "arm" / "model.so").read_bytes()[18:20] == (183).to_bytes(2, "little")
    xs, _labels, ref = _references("quant=static")
    inside = Path("/tmp") / f"edgebench-test-export-{os.getpid()}"
    host_dir = root / inside.relative_to("/")
    shutil.copytree(tmp_path / "arm", host_dir)
    try:
        np.save(host_dir / "x.npy", xs[:40])
        env = {"PATH": "/usr/bin:/bin", "TVM_USE_RUNTIME_LIB": "1", "QEMU_CPU": "max",
               "HOME": "/root"}
        chroot = [shutil.which("chroot") or "/usr/sbin/chroot", str(root), "python3"]
        no_torch = subprocess.run([*chroot, "-c", "import torch"], env=env,
                                  capture_output=True, text=True, timeout=120)
        assert no_torch.returncode != 0 and "torch" in no_torch.stderr  # really absent there
        proc = subprocess.run([*chroot, str(inside / "run.py"), "-i", str(inside / "x.npy"),
                               "-o", str(inside / "y.npy")], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        y = np.load(host_dir / "y.npy")
        lsb = b.manifest["quantization"]["outputs"][0]["scale"]
        assert y.shape == ref[:40].shape and np.abs(y - ref[:40]).max() <= lsb * (1 + 1e-6)
        data = bytearray((host_dir / "model.so").read_bytes())
        data[-100] ^= 0xFF
        (host_dir / "model.so").write_bytes(bytes(data))
        tampered = subprocess.run([*chroot, str(inside / "run.py"), "-i", str(inside / "x.npy")],
                                  env=env, capture_output=True, text=True, timeout=300)
        assert tampered.returncode == 2 and "tampered" in tampered.stderr, tampered.stderr
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)



def test_variant_that_cannot_be_built_for_the_target_is_refused(tmp_path):
    """quant=fp16 where the target has no FP16 arithmetic: refused naming why, nothing written."""
    target = find_target("x86-native")
    if target.fp16_arith:
        pytest.skip("this host computes in FP16 (avx512fp16): the variant builds here")
    with pytest.raises(ExportError, match=r"build failed: .*has no FP16 arithmetic"):
        export(ExportConfig("digits-mlp", "quant=fp16", "x86-native", tmp_path / "b", trials=0,
                            log=lambda _m: None))
    assert not (tmp_path / "b").exists()
