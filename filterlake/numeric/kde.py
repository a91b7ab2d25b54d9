"""Gaussian KDE of coefficient distributions from fine histograms, for plots only (methods §4; never used in D)."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

IQR_TO_SIGMA = 1.3489795003921634  # norm.ppf(.75) - norm.ppf(.25), KDEpy's constant


def silverman_bandwidth(std: float, iqr: float, n: int) -> float:
    """KDEpy's Silverman rule h = σ̂·(3n/4)^(−1/5), σ̂ = min(std (ddof=1), IQR/1.3489795).

    As in KDEpy, n = 1 gives 1.0. Where KDEpy would fall back to the 1–99 % range because IQR = 0, this uses the
    std alone (statsmodels' convention), since only std, IQR and n are known here; std = 0 too raises ValueError.
    """
    if n < 1:
        raise ValueError("the bandwidth needs at least one observation")
    if n == 1:
        return 1.0
    sigma = min(std, iqr / IQR_TO_SIGMA) if iqr > 0 else std
    if not sigma > 0:
        raise ValueError("constant data: the Silverman bandwidth is undefined")
    return float(sigma * (n * 3 / 4.0) ** (-1 / 5))


def histogram_quantile(counts: np.ndarray, edges: np.ndarray, q: float | np.ndarray) -> float | np.ndarray:
    """Quantile(s) of binned data, interpolating linearly inside the bin that holds the q-th share of the counts.

    Exact up to one bin width; q = 0 gives the lower edge of the first non-empty bin, q = 1 the upper edge of the
    last one. With ``q = (0.25, 0.75)`` it gives the IQR for ``silverman_bandwidth`` without the raw values.
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    cum = np.cumsum(counts)
    if cum[-1] <= 0:
        raise ValueError("no counts: the quantile is undefined")
    q = np.asarray(q, dtype=np.float64)
    if np.any((q < 0) | (q > 1)):
        raise ValueError("quantiles must lie in [0, 1]")
    target = q * cum[-1]
    i = np.maximum(np.searchsorted(cum, target, side="left"), np.flatnonzero(counts)[0])
    before = cum[i] - counts[i]
    out = edges[i] + (target - before) / counts[i] * (edges[i + 1] - edges[i])
    return float(out) if np.ndim(out) == 0 else out


def binned_kde(counts: np.ndarray, edges: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian KDE at the bin centres of data binned on a uniform grid: f(x_i) = Σ_j c_j φ((x_i − x_j)/h) / (n h).

    This is exactly the KDE of the data moved to their bin centres (all pairs, no kernel truncation), so it needs
    bins much narrower than ``bandwidth``; mass beyond the outer edges is not on the grid. It integrates to ~1
    (Σ f·Δ). Use ``silverman_bandwidth`` for the KDEpy bandwidth.
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    width = np.diff(edges)
    if not np.allclose(width, width[0], rtol=1e-9, atol=0):
        raise ValueError("binned_kde needs equal-width bins")
    if not bandwidth > 0:
        raise ValueError("the bandwidth must be positive")
    offsets = np.arange(-(len(counts) - 1), len(counts)) * width[0] / bandwidth
    kernel = np.exp(-0.5 * offsets**2) / np.sqrt(2 * np.pi)
    density = fftconvolve(counts, kernel, mode="same") / (counts.sum() * bandwidth)
    return np.clip(density, 0.0, None)
