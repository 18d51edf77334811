"""Activation range observers for calibration: min-max, percentile and entropy (KL).

Histogram observers take two passes over the calibration set (pass 0 finds the range, pass 1
fills a fixed-range histogram), so the result does not depend on batch order or size.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class Observer:
    """Collects statistics of one tensor over the calibration set; range() gives [lo, hi]."""

    passes = 1

    def __init__(self) -> None:
        self.lo, self.hi = math.inf, -math.inf

    def observe(self, x: torch.Tensor, pass_index: int = 0) -> None:
        if pass_index == 0 and x.numel():
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))

    def range(self) -> tuple[float, float]:
        if self.lo > self.hi:
            raise RuntimeError("observer saw no data: run calibration first")
        return self.lo, self.hi


class MinMaxObserver(Observer):
    """The full observed range: no clipping, so rare outliers widen the step for everyone."""


class _HistogramObserver(Observer):
    passes = 2
    bins = 2048

    def __init__(self) -> None:
        super().__init__()
        self.hist: torch.Tensor | None = None

    def _values(self, x: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        return x, self.lo, self.hi

    def observe(self, x: torch.Tensor, pass_index: int = 0) -> None:
        if pass_index == 0:
            super().observe(x)
            return
        values, lo, hi = self._values(x.detach().float())
        if hi <= lo:
            return
        h = torch.histc(values, self.bins, lo, hi).double()
        self.hist = h if self.hist is None else self.hist + h


class PercentileObserver(_HistogramObserver):
    """[P(100 - p), P(p)] of the values (p = 99.99 by default): clips rare outliers."""

    bins = 8192

    def __init__(self, percentile: float = 99.99) -> None:
        super().__init__()
        self.percentile = percentile

    def range(self) -> tuple[float, float]:
        lo, hi = super().range()
        if self.hist is None:
            return lo, hi
        cdf = np.cumsum(self.hist.numpy())
        cdf /= cdf[-1]
        width = (hi - lo) / self.bins

        def quantile(q: float) -> float:
            i = int(np.searchsorted(cdf, q))
            prev = cdf[i - 1] if i else 0.0
            frac = (q - prev) / (cdf[i] - prev) if cdf[i] > prev else 1.0
            return lo + (i + frac) * width

        p = self.percentile / 100.0
        return max(lo, quantile(1.0 - p)), min(hi, quantile(p))


class EntropyObserver(_HistogramObserver):
    """Clipping threshold T minimizing KL(P || Q) (TensorRT's calibrator).

    P is the histogram of |x| clipped at T (outliers added to the last bin), Q is P merged
    into as many bins as the quantized range has levels and expanded back over P's non-empty
    bins. Non-negative tensors get 256 levels on [0, T]; signed ones 128 per side of [-T, T].
    """

    def _values(self, x: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        return x.abs(), 0.0, max(abs(self.lo), abs(self.hi))

    def range(self) -> tuple[float, float]:
        lo, hi = super().range()
        if self.hist is None:
            return lo, hi
        amax = max(abs(lo), abs(hi))
        levels = 256 if lo >= 0 else 128
        t = kl_threshold(self.hist.numpy(), levels) * amax / self.bins
        return max(lo, -t), min(hi, t)


def kl_threshold(hist: np.ndarray, levels: int) -> int:
    """Number of histogram bins to keep (the clipping point) with the least KL divergence."""
    nbins = len(hist)
    if nbins <= levels:
        return nbins
    best_kl, best_i = math.inf, nbins
    suffix = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # suffix[i] = sum(hist[i:])
    hist = hist.astype(np.float64)
    for i in range(levels, nbins + 1):
        sliced = hist[:i]
        p = sliced.copy()
        p[-1] += suffix[i]
        if p.sum() <= 0:
            continue
        idx = np.minimum(np.arange(i) * levels // i, levels - 1)
        nonzero = p > 0
        merged = np.bincount(idx, weights=sliced, minlength=levels)  # Q lacks the outliers
        count = np.bincount(idx, weights=nonzero, minlength=levels)
        q = np.where(nonzero, merged[idx] / np.maximum(count[idx], 1), 0.0)
        ps, qs = _smooth(p), _smooth(q)
        if ps is None or qs is None:
            continue
        ps, qs = ps / ps.sum(), qs / qs.sum()
        kl = float(np.sum(ps * np.log(ps / qs)))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def _smooth(counts: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """Move eps of mass into empty bins (MXNet's calibration) so KL stays finite."""
    zeros = counts == 0
    n_nonzero = counts.size - int(zeros.sum())
    if n_nonzero == 0:
        return None
    eps1 = eps * zeros.sum() / n_nonzero
    out = counts + eps * zeros - eps1 * ~zeros
    return np.maximum(out, 1e-12)


def make_observer(name: str, percentile: float = 99.99) -> Observer:
    if name == "minmax":
        return MinMaxObserver()
    if name == "percentile":
        return PercentileObserver(percentile)
    if name == "entropy":
        return EntropyObserver()
    raise ValueError(f"unknown observer {name!r}")
