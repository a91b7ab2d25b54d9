"""Spikiness of coefficient distributions from stored histograms: the peak density against a Gaussian of the same
variance, histogram kurtosis, and which layers fill a model's peak (docs/methods/spikiness.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPIKY_THRESHOLD = (
    3.0  # a distribution is "spikey" when its peak is at least 3x that of a same-variance Gaussian
)
PEAK_FRACTION = 0.5  # the peak region: contiguous bins around the mode with density >= half the peak density
_GAUSS_PEAK = np.sqrt(2 * np.pi)  # 1 / the peak density of a unit Gaussian


def _bins(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """counts as float64 (..., B), and the B bin midpoints and widths of the B + 1 increasing edges."""
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    width = np.diff(edges)
    if edges.ndim != 1 or counts.shape[-1:] != width.shape or not (width > 0).all():
        raise ValueError(
            f"expected counts (..., B) and B + 1 increasing edges, got {counts.shape}, {edges.shape}"
        )
    if (counts < 0).any():
        raise ValueError("histogram counts must be non-negative")
    return counts, (edges[:-1] + edges[1:]) / 2, width


def histogram_moments(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean, variance) along the last axis, every count placed at its bin midpoint (population variance).

    No Sheppard correction: for a smooth peak its first-order bias (+h²/12 on the variance) cancels that of
    averaging the density over the peak bin (see ``spikiness``), and for a spike inside one bin it would make
    the variance negative. Empty histograms give NaN mean and variance.
    """
    counts, mid, _ = _bins(counts, edges)
    n = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = counts @ mid / n
        variance = np.einsum("...b,...b->...", counts, (mid - mean[..., None]) ** 2) / n
    return n, mean, variance


def spikiness(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The peak ratio S = f_max · σ · √(2π) of each histogram (last axis): 1 for a Gaussian, higher for a spike.

    f_max = max_b c_b / (N w_b) is the largest bin density and σ the histogram's standard deviation
    (``histogram_moments``). S is invariant to shifting and scaling the values (with the edges). Reference
    values: uniform √(π/6) ≈ 0.72, Gaussian 1, logistic ≈ 1.14, Laplace √π ≈ 1.77. A share q of the mass in
    one bin of width h gives S >= q σ √(2π) / h, so S of a spike is resolution-limited: compare scores only
    on the same edges. All counts in one bin (a spike narrower than the resolution) give +inf; an empty
    histogram gives NaN. Histograms add across layers and models, so a group's S is S of the summed counts.
    """
    counts, _, width = _bins(counts, edges)
    n, _, variance = histogram_moments(counts, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        peak = (counts / width).max(axis=-1) / n
        score = peak * np.sqrt(variance) * _GAUSS_PEAK
    return np.where(np.count_nonzero(counts, axis=-1) == 1, np.inf, score)


def histogram_kurtosis(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Excess kurtosis m4 / m2² − 3 of each histogram (midpoints, population moments; Fisher's definition).

    A secondary score: 0 for a Gaussian, −1.2 for a uniform, large for a spike, but also large for heavy tails
    without a peak, and biased by the histogram range, which drops the tails. NaN when the histogram is empty or
    all counts fall in one bin (zero variance).
    """
    counts, mid, _ = _bins(counts, edges)
    n, mean, variance = histogram_moments(counts, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        m4 = np.einsum("...b,...b->...", counts, (mid - mean[..., None]) ** 4) / n
        return np.where(variance > 0, m4 / variance**2 - 3.0, np.nan)


@dataclass(frozen=True, eq=False)
class PeakContributions:
    """Which layers fill a model's peak: the peak region [first, last] (bin indices, inclusive) and per layer
    its share of the peak mass, its share of all mass, and their ratio (> 1: the layer is over-represented)."""

    first: int
    last: int
    peak_share: np.ndarray  # (L,) layer's counts in the peak / the model's counts in the peak; sums to 1
    mass_share: np.ndarray  # (L,) layer's counts / the model's counts; sums to 1
    enrichment: np.ndarray  # (L,) peak_share / mass_share; NaN for an empty layer


def peak_region(
    counts: np.ndarray, edges: np.ndarray, peak_fraction: float = PEAK_FRACTION
) -> tuple[int, int]:
    """The contiguous bins (first, last) around the densest bin whose density is >= peak_fraction · the peak.

    For one histogram (B,); the densest bin is the first one on ties. A spike straddling a bin edge thus spans
    both bins; for a Gaussian the region is about its full width at half maximum (±1.18 σ).
    """
    counts, _, width = _bins(counts, edges)
    if counts.ndim != 1 or counts.sum() == 0 or not 0 < peak_fraction <= 1:
        raise ValueError("expected one non-empty histogram (B,) and a peak_fraction in (0, 1]")
    density = counts / width
    mode = int(density.argmax())
    low = np.flatnonzero(density[:mode] < peak_fraction * density[mode])
    high = np.flatnonzero(density[mode + 1 :] < peak_fraction * density[mode])
    return (int(low[-1]) + 1 if len(low) else 0), (mode + int(high[0]) if len(high) else len(density) - 1)


def peak_contributions(
    layer_counts: np.ndarray, edges: np.ndarray, peak_fraction: float = PEAK_FRACTION
) -> PeakContributions:
    """Attribute a model's peak to its layers: ``layer_counts`` (L, B) holds one component's histogram per layer.

    The peak region is found on the model's summed histogram (``peak_region``); a layer's peak share is its
    counts in that region over the model's. A layer with a large share but enrichment near 1 is merely large;
    the layers responsible for a spike have enrichment well above 1.
    """
    layer_counts, _, _ = _bins(layer_counts, edges)
    if layer_counts.ndim != 2:
        raise ValueError(f"expected layer counts (L, B), got {layer_counts.shape}")
    first, last = peak_region(layer_counts.sum(axis=0), edges, peak_fraction)
    in_peak = layer_counts[:, first : last + 1].sum(axis=1)
    per_layer = layer_counts.sum(axis=1)
    peak_share, mass_share = in_peak / in_peak.sum(), per_layer / per_layer.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        enrichment = np.where(per_layer > 0, peak_share / mass_share, np.nan)
    return PeakContributions(first, last, peak_share, mass_share, enrichment)
