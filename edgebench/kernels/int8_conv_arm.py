"""Direct int8 conv2d (and linear, as a 1x1 conv) on aarch64 with the Armv8.2 dot product:
sdot, s8 x s8 -> int32, 4 output channels x 4 input channels per instruction. The kernel is
int8_conv.py's builder with the `SDOT` DotIsa; this module says how sdot differs.

Why sdot on shifted activations: activations are uint8 and weights int8, and u8 x s8 needs
usdot (i8mm), which Cortex-A76 lacks. So the kernel flips the top bit of each activation byte
(x ^ 0x80 read as int8 is x - 128) and the caller adds 128 * sum(w) to the int32 bias:
sum(x * w) = sum((x - 128) * w) + 128 * sum(w), exact in int32.

Layout: NHWC uint8 activations, weights [K/4, KH, KW, C/4, 4, 4] (one 16-byte vector per
4 output x 4 input channels); a block of PB pixels x NK*4 output channels keeps PB*NK int32x4
accumulators (at most 24 of the 32 NEON registers, leaving room for the operands).
"""

from __future__ import annotations

import numpy as np

from edgebench.kernels.int8_conv import SIGN_FLIP, ConvShape, DotFamily, DotIsa, conv_dot_kernel

SDOT_INTRINSIC = "llvm.aarch64.neon.sdot.v4i32.v16i8"  # (<4 x i32>, <16 x i8>, <16 x i8>)
INSTRUCTION = "sdot"
MAX_ACCUMULATORS = 24  # int32x4 registers of 32, leaving room for the operands
SDOT = DotIsa("sdot", INSTRUCTION, SDOT_INTRINSIC, lanes=4, flip_activations=True,
              max_accumulators=MAX_ACCUMULATORS, nk_choices=(1, 2, 4, 8), min_pixels=2)

__all__ = ["SDOT", "SIGN_FLIP", "bias_shift", "blocking", "conv_sdot_kernel", "pack_weights"]

# ---- the registry's interface (kernels/registry.py) ----
_FAMILY = DotFamily(SDOT, "dotprod", "aarch64 +dotprod")
NAME = "int8_conv_arm"
QUANTIZE_EPILOGUE = True  # the builder's QUANTIZE epilogue (int8_conv.py), ISA-independent
LABEL, KERNEL = "sdot", "conv_sdot"  # its int8_layers kernel, its functions' name
fits, shape, padded_input, emit, pack = (_FAMILY.fits, _FAMILY.shape, _FAMILY.padded_input,
                                         _FAMILY.emit, _FAMILY.pack)


def blocking(s: ConvShape) -> tuple[int, int]:
    """(PB pixels, NK vectors of 4 output channels) per register block."""
    return SDOT.blocking(s)


def pack_weights(w: np.ndarray, c_pad: int, k_pad: int, bits: int = 8) -> np.ndarray:
    """[K, C, KH, KW] int -> [K/4, KH, KW, C/4, 4, 4] int8 (zero rows/columns as padding),
    or bits 2/1: packed (DotIsa.pack_weights)."""
    return SDOT.pack_weights(w, c_pad, k_pad, bits)


def bias_shift(w: np.ndarray) -> np.ndarray:
    """What the int32 bias gains per output channel for the kernel's x - 128: 128 * sum(w)."""
    return SDOT.bias_shift(w)


def conv_sdot_kernel(s: ConvShape, out: str, zero_point: int = 0, lo: int = 0,
                     hi: int = 255, bits: int = 8):
    """conv_dot_kernel on sdot: conv_vnni_kernel's arguments, weights packed by pack_weights
    and the bias including bias_shift."""
    return conv_dot_kernel(SDOT, s, out, zero_point, lo, hi, bits)
