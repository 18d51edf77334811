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

from edgebench.quantize.api import (
    FP16Model,
    QuantResult,
    check_calibration,
    default_calibration,
    quantize,
)
from edgebench.quantize.config import (
    DEFAULT_OBSERVER,
    METHODS,
    OBSERVERS,
    QuantConfig,
    QuantError,
    parse_quant,
)
from edgebench.quantize.lowbit import pack, unpack
from edgebench.quantize.reference import AccumulatorOverflow, IntegerReference
from edgebench.quantize.scheme import ActQParams, LayerQuant, QuantDescription, choose_qparams
from edgebench.quantize.size import SizeReport

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
