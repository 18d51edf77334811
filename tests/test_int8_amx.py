"""The AMX-INT8 conv kernel (kernels/int8_amx.py) and its use by the int8 lowering: bit exact
against the integer reference, tdpbusd in its code, and the tile permission working in a
fresh process. Skipped on hosts (and TVM targets) without AMX-INT8."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import tvm

from edgebench.compile.asm import functions_using
from edgebench.kernels.int8_amx import (
    AmxPlan,
    amx_fits,
    amx_pays,
    conv_amx_kernel,
    pack_weights,
)
from edgebench.kernels.int8_conv import ConvShape
from edgebench.models import get_model
from edgebench.passes.int8 import export_float, lower_int8
from edgebench.pipeline import run
from edgebench.quantize import parse_quant, quantize
from edgebench.quantize.arith import requantize
from edgebench.targets import find_target
from tests.helpers import build_vm, oracle, run_vm

AMX = find_target("x86-native").amx
pytestmark = pytest.mark.skipif(not AMX, reason="this host has no AMX-INT8")


def _target():
    return find_target("x86-native").tvm_target()


def _reference(x: np.ndarray, w: np.ndarray, bias: np.ndarray, s: ConvShape) -> np.ndarray:
    """int64 NHWC conv of the padded input, plus bias."""
    out = np.zeros((s.n, s.oh, s.ow, w.shape[0]), np.int64)
    sh, sw = s.stride
    for kh in range(s.kh):
        for kw in range(s.kw):
            xs = x[:, kh:kh + (s.oh - 1) * sh + 1:sh, kw:kw + (s.ow - 1) * sw + 1:sw]
            out += np.einsum("nhwc,kc->nhwk", xs.astype(np.int64),
                             w[:, :, kh, kw].astype(np.int64))
    return out + bias


def _build_kernel(s: ConvShape, out: str, zp: int = 0, lo: int = 0, hi: int = 255,
                  requant: str = "fixed"):
    return tvm.compile(tvm.IRModule({"main": conv_amx_kernel(s, out, zp, lo, hi, requant)}),
                       target=_target())


# (padded h, w, c, k, kernel, stride): 3x3 s1/s2, 1x1 s2, the 7x7 s2 stem (C=3 padded to 4),
# OW of 1, 7, 13, 23 and 56 (ragged ends), C not a multiple of 64 (96), K = 16 / 64 / 128
SHAPES = [(10, 10, 64, 16, 3, 1), (18, 25, 96, 64, 3, 1), (17, 17, 128, 128, 3, 2),
          (13, 26, 64, 64, 1, 2), (37, 37, 4, 64, 7, 2), (58, 58, 64, 64, 3, 1),
          (1, 1, 512, 128, 1, 1), (9, 9, 128, 64, 3, 1), (7, 7, 96, 32, 1, 1)]


@pytest.mark.parametrize("form", ["uint8", "int8", "uint8-f64", "int8-f64", "float32", "int32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda v: "x".join(map(str, v)))
def test_kernel_bit_exact(shape: tuple[int, ...], form: str) -> None:
    """Every output form; "-f64": the requantize on exact float64 scales (EXACT_F64)."""
    out, _, requant = form.partition("-")
    h, wd, c, k, kk, st = shape
    s = ConvShape(1, h, wd, c, k, kk, kk, (st, st))
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(0, 256, (1, h, wd, c), dtype=np.uint8)
    xp = np.zeros((1, h, wd + AmxPlan(s).extra_width, c), np.uint8)
    xp[:, :, :wd] = x
    xp[:, :, wd:] = 255  # the extra columns only ever meet zero weights
    w = rng.integers(-128, 128, (k, c, kk, kk), dtype=np.int8)
    bias = rng.integers(-50000, 50000, k).astype(np.int32)
    acc = _reference(x, w, bias, s)
    zp, lo, hi = (3, 0, 255) if out == "uint8" else (-5, -128, 127)
    m0 = rng.integers(1 << 29, 1 << 30, k).astype(np.int64)
    shift = rng.integers(38, 42, k).astype(np.int64)
    scale = rng.random(k).astype(np.float32) * 1e-3
    extra = {"uint8": [m0, shift], "int8": [m0, shift], "float32": [scale], "int32": []}[out]
    if requant:
        extra = [np.ldexp(m0.astype(np.float64), -shift)]
    if out in ("uint8", "int8"):
        want = requantize(torch.from_numpy(acc), torch.from_numpy(m0), torch.from_numpy(shift),
                          zp, lo, hi).numpy()
        assert len(np.unique(want)) > 20  # the requantize is not saturated everywhere
    elif out == "float32":
        want = acc.astype(np.int32).astype(np.float32) * scale
    else:
        want = acc
    lib = _build_kernel(s, out, zp, lo, hi, requant or "fixed")
    dev = tvm.cpu()
    y = tvm.runtime.tensor(np.zeros((1, s.oh, s.ow, k), out), dev)
    lib["main"](*[tvm.runtime.tensor(a, dev) for a in (xp, pack_weights(w, k), bias, *extra)], y)
    np.testing.assert_array_equal(y.numpy(), want.astype(out))


def test_kernel_code_has_tdpbusd() -> None:
    s = ConvShape(1, 10, 10, 64, 32, 3, 3, (1, 1))
    lib = _build_kernel(s, "uint8")
    asm = lib.mod.imports[0].inspect_source("asm") if lib.mod.imports else \
        lib.mod.inspect_source("asm")
    for instruction in ("tdpbusd", "tileloadd", "ldtilecfg", "tilestored"):
        assert "conv_amx_q" in functions_using(asm, instruction), instruction


def test_fits_rule_and_vnni_target() -> None:
    """Dilated taps are not contiguous: vpdpbusd; a kernel row under one 64-byte chunk (the
    stem) computes on AMX but the lowering keeps it on vpdpbusd; targets/x86-vnni.toml has
    no AMX."""
    assert not amx_fits(ConvShape(1, 58, 58, 64, 64, 3, 3, (1, 1), (1, 2)))
    stem = ConvShape(1, 229, 229, 4, 64, 7, 7, (2, 2))
    assert amx_fits(stem) and not amx_pays(stem)
    assert amx_pays(ConvShape(1, 58, 58, 64, 64, 3, 3, (1, 1)))
    assert amx_pays(ConvShape(1, 10, 10, 32, 64, 3, 3, (1, 1)))  # 96 bytes: 2 chunks
    vnni = find_target("x86-vnni")
    assert vnni.vnni and not vnni.amx


def test_fresh_process_runs_the_library(tmp_path) -> None:
    """The kernel asks Linux for the tile state itself: a new interpreter that never touched
    AMX runs the exported library (SIGILL otherwise)."""
    s = ConvShape(1, 6, 20, 64, 16, 1, 1, (1, 1))
    path = tmp_path / "amx.so"
    _build_kernel(s, "int32").export_library(str(path))
    code = textwrap.dedent(f"""
        import numpy as np, tvm
        lib = tvm.runtime.load_module("{path}")
        x = np.ones((1, 6, 20, 64), np.uint8)
        w = np.full((1, 1, 1, 16, 16, 4), 2, np.int8)
        y = tvm.runtime.tensor(np.zeros((1, 6, 20, 16), np.int32))
        lib["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(w),
                    tvm.runtime.tensor(np.arange(16, dtype=np.int32)), y)
        print(int(y.numpy().sum()))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == 6 * 20 * (16 * 128 + sum(range(16)))


def test_digits_cnn_on_amx_bit_exact() -> None:
    spec = get_model("digits-cnn")
    result = quantize(spec.build(), parse_quant("static"), spec)
    low = lower_int8(export_float(result.float_model, spec.example_input()),
                     result.description, find_target("x86-native"))
    # the two convs (3 x 1 and 3 x 16 bytes per kernel row) stay on vpdpbusd, the linears
    assert [la.kernel for la in low.layers if la.kernel != "relax"] == ["vnni"] * 2 + ["amx"] * 2
    xs = spec.eval_data()[0][:64]
    np.testing.assert_array_equal(run_vm(build_vm(low.mod, low), xs), oracle(result, xs))
    summary = low.summary()  # (after _build's assembly check)
    assert summary.count("/amx(tdpbusd)") == 2 and summary.count("/vnni(vpdpbusd)") == 2


def test_pipeline_row_on_amx(tmp_path) -> None:
    """A quant=static row on x86-native (every row in a fresh worker process): AMX layers,
    verified bit exact against the integer reference."""
    df = run(models=["digits-cnn"], variants=["quant=static"], runtimes=["tvm"], trials=0,
             target="x86-native", output=tmp_path / "r.csv", log=lambda _m: None)
    row = next(df.itertuples())
    assert row.status == "ok" and row.verify_err == 0.0
    assert "/amx(tdpbusd)" in row.int8_layers and "NO tdpbusd" not in row.int8_layers
