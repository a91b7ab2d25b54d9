"""Density curves and spreads of stored coefficient histograms (binned KDE, standard deviation per component)."""

from __future__ import annotations

import warnings

import numpy as np

from filterlake.numeric.kde import binned_kde, histogram_quantile, silverman_bandwidth


def centres_of(edges: np.ndarray) -> np.ndarray:
    """The bin centres of histogram edges."""
    return (edges[:-1] + edges[1:]) / 2


def kde_curves(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian KDE (Silverman bandwidth, at least one bin width) of each (group, component) histogram.

    counts: (G, 9, B). Returns (bin centres (B,), densities (G, 9, B), bandwidths (G, 9)); a histogram with
    fewer than 2 counts gives a NaN curve.
    """
    centres = centres_of(edges)
    width = float(edges[1] - edges[0])
    dens = np.full(counts.shape, np.nan)
    bws = np.full(counts.shape[:2], np.nan)
    for g in range(counts.shape[0]):
        for k in range(counts.shape[1]):
            c = counts[g, k].astype(np.float64)
            n = c.sum()
            if n < 2:
                continue
            mean = (c * centres).sum() / n
            std = float(np.sqrt((c * (centres - mean) ** 2).sum() / (n - 1)))
            q25, q75 = histogram_quantile(c, edges, [0.25, 0.75])
            try:
                h = silverman_bandwidth(std, float(q75 - q25), int(n))
            except ValueError:
                h = width
            h = max(h, width)
            bws[g, k] = h
            dens[g, k] = binned_kde(c, edges, h)
    return centres, dens, bws


def component_std(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Standard deviation of each (group, component) histogram from its bin centres, (G, 9)."""
    centres = centres_of(edges)
    n = counts.sum(axis=2).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (counts * centres).sum(axis=2) / n
        var = (counts * (centres[None, None, :] - mean[..., None]) ** 2).sum(axis=2) / (n - 1)
    return np.sqrt(var)


DEPTH_BINS = 10  # relative-depth bins of the layer-quality bands (P1's deciles)


def depth_bands(
    models: list[tuple[str, np.ndarray, np.ndarray]], bins: int = DEPTH_BINS
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per group: the median and the interquartile range over models of each model's mean metric per
    relative-depth bin, so every model weighs once whatever its number of layers.

    ``models``: (group, relative depth of its layers, metric of its layers). Returns, per group, (bin centres,
    median, first quartile, third quartile, models per bin); a bin no model of the group reaches is NaN.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = centres_of(edges)
    per_group: dict[str, list[np.ndarray]] = {}
    for group, depth, values in models:
        where = np.clip(np.searchsorted(edges, np.asarray(depth, np.float64), side="right") - 1, 0, bins - 1)
        values = np.asarray(values, np.float64)
        means = np.full(bins, np.nan)
        for b in range(bins):
            chosen = values[(where == b) & np.isfinite(values)]
            if chosen.size:
                means[b] = chosen.mean()
        per_group.setdefault(group, []).append(means)
    out = {}
    for group, rows in per_group.items():
        stack = np.vstack(rows)
        counts = np.isfinite(stack).sum(axis=0)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an empty bin is NaN, as documented
            q25, median, q75 = np.nanpercentile(stack, [25, 50, 75], axis=0)
        out[group] = (centres, median, q25, q75, counts)
    return out
