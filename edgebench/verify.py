"""Verify: a runtime's outputs against the PyTorch reference, before any timing is reported.

Tolerance is per dtype and relative to the output's scale (max(1, max|ref|)), so logits of any
magnitude are judged alike. The model's metric (pipeline._score) and top-1 agreement are scored
from the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Relative tolerance on max|out - ref| / max(1, max|ref|), by the dtype the variant computes in.
# A peer's own int8 build (another quantizer) has no elementwise bound against FP32: only its
# outputs' count, shape and finiteness are checked; its score (metric drop vs FP32) judges it.
# Winograd (fp32+winograd) rounds more than a direct conv: its own, looser FP32 bound.
TOLERANCE = {"float32": 1e-3, "float32-winograd": 5e-3, "float16": 2e-2, "int8": 5e-2,
             "int8-peer": float("inf")}


@dataclass(frozen=True)
class Check:
    ok: bool
    max_abs_err: float
    tolerance: float
    message: str = ""


def compare(outputs: list[np.ndarray], reference: list[np.ndarray],
            dtype: str = "float32") -> Check:
    """Outputs (list over model outputs, each (N, ...)) within tolerance of the reference?"""
    tol_rel = TOLERANCE[dtype]
    if len(outputs) != len(reference):
        return Check(False, float("inf"), tol_rel,
                     f"{len(outputs)} outputs, PyTorch has {len(reference)}")
    worst, worst_tol = 0.0, tol_rel
    for i, (out, ref) in enumerate(zip(outputs, reference, strict=True)):
        out = np.asarray(out)
        if out.shape != ref.shape:
            return Check(False, float("inf"), tol_rel,
                         f"output {i} has shape {out.shape}, PyTorch {ref.shape}")
        if not np.all(np.isfinite(out)):
            return Check(False, float("inf"), tol_rel, f"output {i} has NaN or Inf")
        err = max_abs_err(out, ref)
        tol = tol_rel * max(1.0, float(np.max(np.abs(ref), initial=0.0)))
        if err > tol:
            return Check(False, err, tol, f"outputs differ from PyTorch: max abs error "
                         f"{err:.3g} > tolerance {tol:.3g} (output {i})")
        if err >= worst:
            worst, worst_tol = err, tol
    return Check(True, worst, worst_tol)


def compare_lsb(outputs: list[np.ndarray], reference: list[np.ndarray],
                lsb: list[float | None]) -> Check:
    """Integer code vs the integer reference executor: every element within one LSB of its
    output's integer scale (lsb[i]); None falls back to the int8 relative tolerance."""
    worst = Check(True, 0.0, 0.0)
    for i, (out, ref, step) in enumerate(zip(outputs, reference, lsb, strict=True)):
        if step is None:
            check = compare([out], [ref], "int8")
        else:
            out = np.asarray(out)
            err = (max_abs_err(out, ref) if out.shape == ref.shape and np.all(np.isfinite(out))
                   else float("inf"))
            tol = step * (1 + 1e-6)
            check = Check(err <= tol, err, tol, "" if err <= tol else
                          f"outputs differ from the integer reference by {err:.3g} > 1 LSB "
                          f"({step:.3g}) (output {i})")
        if not check.ok:
            return check
        if check.max_abs_err >= worst.max_abs_err:
            worst = check
    return worst


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of (N, classes) logits."""
    return float(np.mean(logits.reshape(len(labels), -1).argmax(1) == labels))


def top1_agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of samples whose arg-max class matches the FP32 reference's."""
    n = len(reference)
    return float(np.mean(logits.reshape(n, -1).argmax(1) == reference.reshape(n, -1).argmax(1)))


def max_abs_err(out: np.ndarray, reference: np.ndarray) -> float:
    diff = np.abs(out.astype(np.float64) - reference.astype(np.float64))
    return float(np.max(diff, initial=0.0))


def degenerate(reference: np.ndarray) -> str | None:
    """Why top-1 agreement on these evaluation outputs cannot discriminate (None: it can): the
    FP32 model gives every input the same class, so any variant that does the same, however
    broken, agrees 100%."""
    n = len(reference)
    flat = reference.reshape(n, -1)
    if n < 2 or flat.shape[1] < 2:
        return None
    classes = np.unique(flat.argmax(1))
    if len(classes) > 1:
        return None
    return (f"the FP32 model gives class {int(classes[0])} to all {n} evaluation inputs, so "
            "top-1 agreement cannot tell a broken variant from a good one (max_abs_err can)")
