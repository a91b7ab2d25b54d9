"""Additive per-component coefficient histograms that count exactly as ``np.histogram`` (methods §5 step 1)."""

from __future__ import annotations

import numpy as np


def outer_edges(lo: float, hi: float) -> tuple[float, float]:
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
    lo, hi = outer_edges(lo, hi)
    return np.linspace(lo, hi, bins + 1, endpoint=True, dtype=np.float64)


def histogram_counts(coefficients: np.ndarray, lo: float, hi: float, bins: int = 70) -> np.ndarray:
    """Counts (k, bins) int64 (k = 9 components) with row j == ``np.histogram(c[:, j], bins, range=(lo, hi))[0]``.

    Bins are half-open [e_i, e_i+1) except the last, which is closed; values outside [lo, hi] and NaN are dropped.
    The bin of a value is the integer part of (x − lo)/(hi − lo)·bins, except within 1e-9 bins of an edge, where
    rounding could decide it: those few values are placed exactly by comparison with numpy's edges. All components
    go through one ``np.bincount`` (out-of-range values into a dropped extra bin). Counts add across layers and
    models, so any group is a sum.
    """
    c = np.ascontiguousarray(coefficients, dtype=np.float64)  # C order: flat indices below address all arrays
    if c.ndim != 2:
        raise ValueError(f"expected coefficients of shape (n, k), got {c.shape}")
    lo, hi = outer_edges(lo, hi)
    k = c.shape[1]
    f = c - lo
    f /= hi - lo
    f *= bins
    valid = f >= 0
    valid &= f <= bins  # NaN fails both
    np.copyto(f, 0.0, where=~valid)
    idx = f.astype(np.intp)
    f -= idx
    f -= 0.5
    near = np.flatnonzero(np.abs(f, out=f) >= 0.5 - 1e-9)  # fraction within 1e-9 of 0 or 1: next to an edge
    if len(near):
        x = c.ravel()[near]
        inside = (x >= lo) & (x <= hi)
        exact = np.minimum(np.searchsorted(bin_edges(lo, hi, bins), x, side="right") - 1, bins - 1)
        idx.ravel()[near] = np.where(inside, exact, 0)
        valid.ravel()[near] = inside
    idx += np.arange(k) * bins
    np.copyto(idx, k * bins, where=~valid)
    counts = np.bincount(idx.ravel(), minlength=k * bins + 1)[: k * bins]
    return counts.reshape(k, bins).astype(np.int64, copy=False)
