"""Additive per-component coefficient histograms that count exactly as ``np.histogram`` (methods §5 step 1)."""
from __future__ import annotations

import numpy as np


def _outer_edges(lo: float, hi: float) -> tuple[float, float]:
    """numpy's checks of an explicit range, including its widening of an empty range by ±0.5."""
    lo, hi = float(lo), float(hi)
    if lo > hi:
        raise ValueError("max must be larger than min in range parameter.")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"supplied range of [{lo}, {hi}] is not finite")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def bin_edges(lo: float, hi: float, bins: int = 70) -> np.ndarray:
    """The ``bins + 1`` float64 edges that ``np.histogram(x, bins, range=(lo, hi))`` uses."""
    lo, hi = _outer_edges(lo, hi)
    return np.linspace(lo, hi, bins + 1, endpoint=True, dtype=np.float64)


def histogram_counts(coefficients: np.ndarray, lo: float, hi: float, bins: int = 70) -> np.ndarray:
    """Counts (k, bins) int64 (k = 9 components) with row j == ``np.histogram(c[:, j], bins, range=(lo, hi))[0]``.

    Bins are half-open [e_i, e_i+1) except the last, which is closed; values outside [lo, hi] and NaN are dropped.
    The bin index is computed as numpy does ((x − lo)/(hi − lo)·bins, then ±1 corrections against the edges), so
    results agree exactly, also for values on edges; all components go through one ``np.bincount``. Counts add across layers and models, so any group is a sum.
    """
    c = np.asarray(coefficients, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"expected coefficients of shape (n, k), got {c.shape}")
    lo, hi = _outer_edges(lo, hi)
    edges = bin_edges(lo, hi, bins)
    keep = (c >= lo) & (c <= hi)
    component = np.broadcast_to(np.arange(c.shape[1]), c.shape)[keep]
    x = c[keep]
    idx = (((x - lo) / (hi - lo)) * bins).astype(np.intp)
    idx[idx == bins] -= 1
    idx[x < edges[idx]] -= 1
    idx[(x >= edges[idx + 1]) & (idx != bins - 1)] += 1
    counts = np.bincount(component * bins + idx, minlength=c.shape[1] * bins)
    return counts.reshape(c.shape[1], bins).astype(np.int64, copy=False)
