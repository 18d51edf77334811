"""Binary and ternary weights (per-output-channel scale) and bit packing of integer weights.

Ternary (TWN, Li et al. 2016): delta_c = 0.7 * mean|w_c|, t = sign(w) * (|w| > delta_c),
alpha_c = mean of |w| where t != 0. Binary (BWN, Rastegari et al. 2016): t = sign(w) with
sign(0) = +1, alpha_c = mean|w_c|. Scales are stored as float16 (the value used everywhere is
the float16-rounded one): for 1-2-bit weights the scale dominates the overhead and 11 bits of
mantissa are far below the quantization error.

Packed layout: the integer tensor flattened row-major (C order), each value mapped to an
unsigned code, codes packed little-end-first (value k in bits [(k % per) * bits, ...) of
byte k // per, per = 8 // bits), the last byte zero-padded. Codes: bits 8 store the int8 two's
complement byte; bits 4 and 2 store v + 2**(bits-1) (int4 in [-7, 7], ternary in {-1, 0, 1});
bits 1 stores (v + 1) / 2 (binary {-1, +1}).
"""

from __future__ import annotations

import torch

PACK_BITS = (1, 2, 4, 8)


def _fp16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float16).to(torch.float32)


def _fallback(alpha: torch.Tensor) -> torch.Tensor:
    """Channels with no weight mass get the largest scale (any value works: their ints are 0)."""
    top = alpha.max() if alpha.numel() else torch.tensor(1.0)
    return torch.where(alpha > 0, alpha, top if top > 0 else torch.tensor(1.0))


@torch.no_grad()
def ternarize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t int8 in {-1, 0, 1} shaped like w, alpha float32 per output channel, fp16-exact)."""
    flat = w.detach().reshape(w.shape[0], -1).float()
    mag = flat.abs()
    delta = 0.7 * mag.mean(1, keepdim=True)
    keep = mag > delta
    t = torch.sign(flat) * keep
    count = keep.sum(1)
    alpha = torch.where(count > 0, (mag * keep).sum(1) / count.clamp(min=1), 0.0)
    return t.to(torch.int8).reshape(w.shape), _fp16(_fallback(alpha))


@torch.no_grad()
def binarize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(b int8 in {-1, 1} shaped like w, alpha float32 per output channel, fp16-exact)."""
    flat = w.detach().reshape(w.shape[0], -1).float()
    b = torch.where(flat >= 0, 1, -1)
    alpha = flat.abs().mean(1)
    return b.to(torch.int8).reshape(w.shape), _fp16(_fallback(alpha))


def pack(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer weights -> packed uint8 bytes (layout in the module docstring)."""
    if bits not in PACK_BITS:
        raise ValueError(f"cannot pack {bits}-bit values (supported: {PACK_BITS})")
    v = values.detach().reshape(-1).to(torch.int64)
    if bits == 8:
        return v.to(torch.int8).view(torch.uint8).clone()
    codes = (v + 1) // 2 if bits == 1 else v + 2 ** (bits - 1)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= 2**bits):
        raise ValueError(f"values outside the {bits}-bit range")
    per = 8 // bits
    pad = (-codes.numel()) % per
    codes = torch.cat([codes, codes.new_zeros(pad)]).reshape(-1, per)
    shifts = torch.arange(per, dtype=torch.int64) * bits
    return (codes << shifts).sum(1).to(torch.uint8)


def unpack(packed: torch.Tensor, bits: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of pack: int8 tensor of the given shape."""
    if bits not in PACK_BITS:
        raise ValueError(f"cannot unpack {bits}-bit values (supported: {PACK_BITS})")
    n = 1
    for d in shape:
        n *= int(d)
    if bits == 8:
        return packed.view(torch.int8)[:n].reshape(shape).clone()
    per = 8 // bits
    shifts = torch.arange(per, dtype=torch.int64) * bits
    codes = ((packed.to(torch.int64).unsqueeze(1) >> shifts) & (2**bits - 1)).reshape(-1)[:n]
    values = codes * 2 - 1 if bits == 1 else codes - 2 ** (bits - 1)
    return values.to(torch.int8).reshape(shape)


def packed_bytes(numel: int, bits: int) -> int:
    return -(-numel * bits // 8)
