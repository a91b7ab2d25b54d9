"""The compiled histogram pass: projection onto the basis and binning into every spec in one read of a layer.

The compiled twin of `basis.transform` + `histogram.histogram_counts` (see `kernels.py` for why numba and the
(9, n) layout); `tests/numeric/test_kernels.py` asserts equal counts. Bins are decided exactly as the
reference decides them: the integer part of (c − lo)/(hi − lo)·bins, and by comparison with numpy's edges for
the values within 1e-9 bins of an edge.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from filterlake.numeric.kernels import _peaks, _sparse


@njit(cache=True, nogil=True, inline="always")
def _bin(c, lo, hi, bins, edges):
    """The bin of one coefficient as `histogram.histogram_counts` decides it, or -1 when it is dropped."""
    f = (c - lo) / (hi - lo) * bins
    valid = f >= 0 and f <= bins  # NaN fails both
    if not valid:
        f = 0.0
    idx = int(f)
    if abs(f - idx - 0.5) >= 0.5 - 1e-9:  # next to an edge: place by comparison with the edges
        if not (c >= lo and c <= hi):
            return -1
        at = np.searchsorted(edges, c, side="right") - 1
        return min(at, bins - 1)
    return idx if valid else -1


@njit(cache=True, nogil=True)
def bin_counts(coefficients, lo, hi, bins, edges):
    """`histogram.histogram_counts` of (n, k) coefficients (lo < hi already widened), compiled: (k, bins)."""
    n, k = coefficients.shape
    counts = np.zeros((k, bins), np.int64)
    for f in range(n):
        for c in range(k):
            b = _bin(coefficients[f, c], lo, hi, bins, edges)
            if b >= 0:
                counts[c, b] += 1
    return counts


@njit(cache=True, nogil=True)
def histogram_pass(x, c_out, eps, rule, zero_sparse, mean, components, los, his, bins, nonsparse, edges):
    """Per-component coefficient histograms of one (9, n) layer for every spec, and the coefficient extents.

    Each used filter is scaled by its max |w| (exactly as `normalise.maxabs_scale`), projected onto the basis
    (c = (f̃ − μ)Vᵀ) and binned into every spec s (range los[s]..his[s], bins[s] bins, edges[s, :bins+1];
    non-sparse filters only where nonsparse[s]). Returns counts (S, 9, max bins) int64 and extents (2, 9)
    (min, max over all used filters; +inf/−inf for a layer without used filters).
    """
    n = x.shape[1]
    c_in = n // c_out if c_out else 0
    peak, signed, finite = _peaks(x, c_out)
    need_mask = False
    for s in range(len(los)):
        need_mask |= nonsparse[s]
    if need_mask:
        mask, _top = _sparse(peak, signed, finite, c_in, eps, rule, zero_sparse)
    else:
        mask = np.zeros(n, np.bool_)
    counts = np.zeros((len(los), 9, edges.shape[1] - 1), np.int64)
    extents = np.empty((2, 9))
    extents[0] = np.inf
    extents[1] = -np.inf
    centred = np.zeros(9)
    for f in range(n):
        if not finite[f // c_in]:
            continue
        d = peak[f] if peak[f] != 0 else 1.0
        for j in range(9):
            centred[j] = np.float64(x[j, f]) / d - mean[j]
        for k in range(9):
            c = 0.0
            for j in range(9):
                c += centred[j] * components[k, j]
            extents[0, k] = min(extents[0, k], c)
            extents[1, k] = max(extents[1, k], c)
            for s in range(len(los)):
                if nonsparse[s] and mask[f]:
                    continue
                b = _bin(c, los[s], his[s], bins[s], edges[s, : bins[s] + 1])
                if b >= 0:
                    counts[s, k, b] += 1
    return counts, extents
