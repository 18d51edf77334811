"""The integer arithmetic primitives; the full specification is in edgebench.quantize.reference.

Every function here is the single definition used by the fake-quant simulator, the
description builder and the integer reference, so the three cannot drift apart. Rounding is
round-half-to-even everywhere (torch.round, std::nearbyint, and the integer shift below).
"""

from __future__ import annotations

import numpy as np
import torch

QRANGE = {"uint8": (0, 255), "int8": (-128, 127)}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MIN_SCALE = 2.0**-120  # smallest activation scale: 1 / scale stays finite in float32
MAX_SHIFT = 62  # |acc * M0| < 2**62 keeps the product inside int64


def f32(value: float) -> float:
    """`value` rounded to the nearest float32 (scales are float32 numbers everywhere)."""
    return float(np.float32(value))


def inv_scale(scale: float | np.ndarray) -> np.ndarray:
    """float32(1) / float32(scale), an IEEE float32 division (what fake_quantize computes)."""
    return np.float32(1.0) / np.asarray(scale, dtype=np.float32)


def quantize(x: torch.Tensor, scale: float | torch.Tensor, zero_point: int | torch.Tensor,
             qmin: int, qmax: int) -> torch.Tensor:
    """float32 -> int64: clamp(round_half_even(x * inv_scale) + zp, qmin, qmax), in float32.

    scale/zero_point broadcast (per-channel callers pass shaped tensors).
    """
    inv = torch.tensor(1.0) / torch.as_tensor(scale, dtype=torch.float32)
    zp = torch.as_tensor(zero_point, dtype=torch.float32)
    q = torch.clamp(torch.round(x.to(torch.float32) * inv) + zp, qmin, qmax)
    return q.to(torch.int64)


def dequantize(q: torch.Tensor, scale: float | torch.Tensor,
               zero_point: int | torch.Tensor) -> torch.Tensor:
    """int -> float32: float32(q - zp) * float32(scale)."""
    s = torch.as_tensor(scale, dtype=torch.float32)
    zp = torch.as_tensor(zero_point, dtype=torch.int64)
    return (q.to(torch.int64) - zp).to(torch.float32) * s


def quantize_multiplier(real: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers M > 0 -> (M0, n) with M ~= M0 * 2**-n, M0 in [2**30, 2**31).

    M = m * 2**e with m in [0.5, 1) (frexp); M0 = round_half_even(m * 2**31) (M0 == 2**31
    becomes 2**30 with e + 1); n = 31 - e. Multipliers so small that n > 62 are encoded with
    n = 62 and M0 = round(M * 2**62) (< 2**30, possibly 0). M >= 2**30 is refused.
    """
    m_real = np.atleast_1d(np.asarray(real, dtype=np.float64))
    if np.any(~np.isfinite(m_real)) or np.any(m_real < 0):
        raise ValueError(f"requantize multiplier must be finite and >= 0, got {m_real}")
    mant, exp = np.frexp(m_real)
    m0 = np.rint(mant * 2.0**31).astype(np.int64)
    carry = m0 == 2**31
    m0[carry] //= 2
    exp = exp + carry
    n = 31 - exp.astype(np.int64)
    if np.any(n < 1):
        raise ValueError(f"requantize multiplier too large: {m_real.max():g}")
    small = (n > MAX_SHIFT) | (m_real == 0)
    m0[small] = np.rint(m_real[small] * 2.0**MAX_SHIFT).astype(np.int64)
    n[small] = MAX_SHIFT
    return m0, n


def common_multipliers(reals: list[float]) -> tuple[list[int], int]:
    """Several multipliers sharing one shift n (set by the largest): for add's single rounding."""
    _, n = quantize_multiplier(max(reals))
    shift = int(n[0])
    return [int(np.rint(r * 2.0**shift)) for r in reals], shift


def shift_round_half_even(value: torch.Tensor, shift: torch.Tensor | int) -> torch.Tensor:
    """round_half_even(value / 2**shift) for int64 value, shift >= 1 (elementwise, broadcast).

    q = value >> shift (arithmetic, i.e. floor); r = value - (q << shift) in [0, 2**shift);
    half = 1 << (shift - 1); q += 1 if r > half or (r == half and q is odd).
    """
    shift_t = torch.as_tensor(shift, dtype=torch.int64)
    q = torch.bitwise_right_shift(value, shift_t)
    r = value - torch.bitwise_left_shift(q, shift_t)
    half = torch.bitwise_left_shift(torch.ones_like(shift_t), shift_t - 1)
    up = (r > half) | ((r == half) & (torch.bitwise_and(q, 1) == 1))
    return q + up.to(torch.int64)


def requantize(acc: torch.Tensor, m0: torch.Tensor | int, shift: torch.Tensor | int,
               zero_point: int, lo: int, hi: int) -> torch.Tensor:
    """int32 accumulator -> output int: clamp(zp + shift_round_half_even(acc * M0, n), lo, hi)."""
    prod = acc.to(torch.int64) * torch.as_tensor(m0, dtype=torch.int64)
    return torch.clamp(shift_round_half_even(prod, shift) + zero_point, lo, hi)


def f64_requantize_exact(shift: np.ndarray | int, zero_point: int, lo: int, hi: int) -> bool:
    """Whether `requantize` equals, bit for bit, its float64 form for every int32 accumulator:
    zp + nearbyint(clamp(float64(acc) * (M0 * 2**-n), lo - zp, hi - zp)) (M0 * 2**-n is an
    exact float64). Where the clamp does not saturate, |acc * M0| <= B * 2**n with
    B = max(|lo - zp|, |hi - zp|) + 1; if that is <= 2**53, the float64 product is the exact
    integer product scaled, and round-to-nearest-even matches the shift's rounding, ties
    included. Where it saturates, the product's relative error (2**-53) cannot bring it back
    inside B - 1, so it clamps to the same bound."""
    bound = max(abs(lo - zero_point), abs(hi - zero_point)) + 1
    return bound * 2.0 ** int(np.max(shift)) <= 2.0**53


def saturate_int32(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Clamp to the int32 range; also say whether anything was clamped."""
    clipped = np.clip(values, INT32_MIN, INT32_MAX)
    return clipped.astype(np.int64), bool(np.any(clipped != values))
