"""Quantization: dynamic/static int8, QAT, FP16, ternary and binary weights.

    result = quantize(model, parse_quant("static:entropy"), spec)
    result.model        # fake-quant model (what the pipeline runs as its reference)
    result.description  # per-op scheme + integer parameters, keyed by torch.export node names
    result.reference    # integer reference executor: the oracle for TVM's int8 kernels
    result.size         # bytes as stored vs FP32

PyTorch's quantized modules do not survive torch.export into TVM, so edgebench keeps its own
description (scheme.py) over the exported FP32 graph; the arithmetic is specified in
reference.py. Modules: config (grammar), observers, fold (BN), graph (export + int8 plan),
fakequant, qat, lowbit (binary/ternary + packing), describe, reference, size, api.
"""

from edgebench.quantize.config import (
    DEFAULT_OBSERVER,
    METHODS,
    OBSERVERS,
    QuantConfig,
    QuantError,
    parse_quant,
)

__all__ = [
    "DEFAULT_OBSERVER",
    "METHODS",
    "OBSERVERS",
    "AccumulatorOverflow",
    "ActQParams",
    "FP16Model",
    "IntegerReference",
    "LayerQuant",
    "QuantConfig",
    "QuantDescription",
    "QuantError",
    "QuantResult",
    "SizeReport",
    "check_calibration",
    "choose_qparams",
    "default_calibration",
    "pack",
    "parse_quant",
    "quantize",
    "unpack",
]


_LAZY = {  # name -> the submodule (importing torch) that defines it
    **dict.fromkeys(("FP16Model", "QuantResult", "check_calibration", "default_calibration",
                     "quantize"), "api"),
    **dict.fromkeys(("pack", "unpack"), "lowbit"),
    **dict.fromkeys(("AccumulatorOverflow", "IntegerReference"), "reference"),
    **dict.fromkeys(("ActQParams", "LayerQuant", "QuantDescription", "choose_qparams"), "scheme"),
    **dict.fromkeys(("SizeReport",), "size"),
}


def __getattr__(name: str):
    """The torch-using names load on first use, so parsing a recipe stays cheap."""
    if name not in _LAZY:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
