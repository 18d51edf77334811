"""The kernel registry's int8 choice per layer and target (kernels/registry.py): targets built
from TOML text with an explicit CPU, so no hardware is needed for choosing."""

from __future__ import annotations

import dataclasses

import pytest

from edgebench.kernels import registry
from edgebench.kernels.int8_add import AddQuant, Int8Add
from edgebench.kernels.int8_conv import X86_VNNI, dot_isa
from edgebench.kernels.int8_conv_arm import SDOT
from edgebench.kernels.int8_pool import PoolShape
from edgebench.kernels.int8_quantize import InputQuant
from edgebench.kernels.layer import Int8Out, Layer
from tests.helpers import target_from_toml


def _target(arch: str, mcpu: str, mattr: tuple[str, ...] = ()):
    triple = 'mtriple = "aarch64-linux-gnu"\n' if arch == "aarch64" else ""
    attrs = ", ".join(f'"{a}"' for a in mattr)
    return target_from_toml(f'name = "{mcpu}"\narch = "{arch}"\n[tvm]\nkind = "llvm"\n{triple}'
                            f'mcpu = "{mcpu}"\nmattr = [{attrs}]\n')


AMX = _target("x86_64", "sapphirerapids")  # AMX-INT8 and AVX512-VNNI
VNNI = _target("x86_64", "sapphirerapids", ("-amx-int8", "-amx-tile"))  # x86-vnni's way
ZEN4 = _target("x86_64", "znver4")  # VNNI, no AMX: this session's host
NO_VNNI = _target("x86_64", "skylake-avx512")  # AVX-512 F/BW, no VNNI
DOTPROD = _target("aarch64", "cortex-a76", ("+neon", "+dotprod"))
NO_DOTPROD = _target("aarch64", "cortex-a72", ("+neon",))

OUT = Int8Out("uint8", 0, 0, 255)
CONV3 = Layer("conv2d", 64, 64, 56, 56, kernel=(3, 3), padding=(1, 1), dtype="uint8", quant=OUT)
STEM = Layer("conv2d", 3, 64, 224, 224, kernel=(7, 7), stride=(2, 2), padding=(3, 3),
             dtype="uint8", quant=OUT)  # 7 x 4 bytes per kernel row: no whole AMX chunk
DEPTHWISE = Layer("conv2d", 32, 32, 28, 28, kernel=(3, 3), padding=(1, 1), groups=32,
                  dtype="uint8", quant=OUT)
LINEAR = Layer("linear", 512, 1000, 1, 1, dtype="uint8", quant=Int8Out("float32"))
TERNARY = dataclasses.replace(CONV3, weight_bits=2)
INT8_INPUT = dataclasses.replace(CONV3, dtype="int8")  # s8 x s8: no u8 x s8 dot product
POOL = Layer("max_pool2d", 64, 64, 112, 112, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
             dtype="uint8", quant=PoolShape(1, 112, 112, 64, (3, 3), (2, 2), (1, 1)))
ADD_Q = AddQuant(3, 5, 1 << 20, 1 << 21, 22, 0, 0, 255)
ADD = Layer("add", 64, 64, dtype="uint8", shape=(1, 56, 56, 64),
            quant=Int8Add(ADD_Q, (1, 56, 56, 64), "uint8", "uint8"))
QUANTIZE = Layer("quantize", 3, 4, 224, 224, dtype="float32",
                 quant=InputQuant(1, 3, 224, 224, 3, 3, 0, 4, 50.0, 128, 0, 255, "uint8"))

EXPECTED = {  # layer -> {target: family NAME (None: TVM's own op)}
    "conv3": {"amx": "int8_amx", "vnni": "int8_conv", "zen4": "int8_conv", "no-vnni": None,
              "dotprod": "int8_conv_arm", "no-dotprod": None},
    "stem": {"amx": "int8_conv", "vnni": "int8_conv", "zen4": "int8_conv", "no-vnni": None,
             "dotprod": "int8_conv_arm", "no-dotprod": None},
    "depthwise": {"amx": "int8_depthwise", "vnni": "int8_depthwise", "zen4": "int8_depthwise",
                  "no-vnni": None, "dotprod": "int8_depthwise", "no-dotprod": None},
    "linear": {"amx": "int8_amx", "vnni": "int8_conv", "zen4": "int8_conv", "no-vnni": None,
               "dotprod": "int8_conv_arm", "no-dotprod": None},
    "ternary": {"amx": "int8_conv", "vnni": "int8_conv", "dotprod": "int8_conv_arm"},
    "int8_input": {"amx": None, "zen4": None, "dotprod": None},
    "pool": {"amx": "int8_pool", "no-vnni": "int8_pool", "dotprod": "int8_pool",
             "no-dotprod": "int8_pool"},
    "add": {"amx": "int8_add", "no-vnni": "int8_add", "no-dotprod": "int8_add"},
    "quantize": {"amx": "int8_quantize", "zen4": "int8_quantize", "no-vnni": None, "dotprod": None},
}
TARGETS = {"amx": AMX, "vnni": VNNI, "zen4": ZEN4, "no-vnni": NO_VNNI, "dotprod": DOTPROD,
           "no-dotprod": NO_DOTPROD}
LAYERS = {"conv3": CONV3, "stem": STEM, "depthwise": DEPTHWISE, "linear": LINEAR,
          "ternary": TERNARY, "int8_input": INT8_INPUT, "pool": POOL, "add": ADD,
          "quantize": QUANTIZE}


def test_targets_from_toml_have_the_features_the_choice_reads():
    assert (AMX.amx, AMX.vnni) == (True, True)
    assert (VNNI.amx, VNNI.vnni) == (False, True)
    assert (ZEN4.amx, ZEN4.vnni, ZEN4.avx512) == (False, True, True)
    assert (NO_VNNI.vnni, NO_VNNI.avx512) == (False, True)
    assert (DOTPROD.dotprod, NO_DOTPROD.dotprod) == (True, False)
    # the dot-product ISA is a function of the target, derived in one place
    assert [dot_isa(t) for t in (AMX, ZEN4, NO_VNNI, DOTPROD, NO_DOTPROD, None)] == [
        X86_VNNI, X86_VNNI, None, SDOT, None, None]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_registry_picks_the_int8_family_per_layer_and_target(name):
    layer = LAYERS[name]
    for key, want in EXPECTED[name].items():
        target = TARGETS[key]
        got = registry.choose(layer, target)
        assert getattr(got, "NAME", None) == want, (name, target.name,
                                                    registry.reasons(layer, target))


def test_fp32_and_int8_families_never_take_each_others_layers():
    fp32_conv = Layer("conv2d", 64, 64, 56, 56, kernel=(3, 3), padding=(1, 1))
    assert registry.choose(fp32_conv, ZEN4).NAME == "fp32_conv"
    assert all(not registry.choose(la, ZEN4).NAME.startswith("fp32")
               for la in (CONV3, DEPTHWISE, LINEAR, POOL, ADD, QUANTIZE))


def test_reasons_name_what_is_missing():
    assert "VNNI" in registry.reasons(CONV3, NO_VNNI)["int8_conv"]
    assert "dotprod" in registry.reasons(CONV3, NO_DOTPROD)["int8_conv_arm"]
    assert "AMX" in registry.reasons(CONV3, ZEN4)["int8_amx"]
    assert "64-byte chunk" in registry.reasons(STEM, AMX)["int8_amx"]
    assert "ternary" in registry.reasons(TERNARY, AMX)["int8_amx"]
    assert "uint8" in registry.reasons(INT8_INPUT, ZEN4)["int8_conv"]
    odd = dataclasses.replace(DEPTHWISE, c=24, k=24, groups=24)
    assert "whole vectors" in registry.reasons(odd, ZEN4)["int8_depthwise"]
    bias_add = dataclasses.replace(ADD.quant, b_shape=(1, 1, 1, 64))
    broadcast = dataclasses.replace(ADD, quant=bias_add)
    assert registry.choose(broadcast, ZEN4) is None


def test_instruction_checked_per_target():
    dw = registry.choose(DEPTHWISE, ZEN4)
    assert registry.instruction(dw, ZEN4) == "vpdpbusd"
    assert registry.instruction(dw, DOTPROD) == "sdot"
    assert registry.instruction(registry.choose(CONV3, AMX), AMX) == "tdpbusd"
    assert registry.instruction(registry.choose(CONV3, DOTPROD), DOTPROD) == "sdot"
    assert registry.instruction(registry.choose(POOL, ZEN4), ZEN4) is None
