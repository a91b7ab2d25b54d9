"""The compiled histogram pass: projection onto the basis and binning into every spec in one read of a layer.

The compiled twin of `basis.transform` + `histogram.histogram_counts` (see `kernels.py` for why numba and the
(9, n) layout); `tests/numeric/test_kernels.py` asserts equal counts. Bins are decided as the reference
decides them: the integer part of the position in bins, and by comparison with numpy's edges for the values
within 1e-9 bins of an edge. Filters are scaled, centred and projected a block at a time, in loops over the
block that LLVM vectorises (the nine products of a coefficient add up in one fixed order).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from filterlake.numeric.kernels import _peaks, _sparse

BLOCK = 256  # filters projected together: the loops over a block are vectorisable


@njit(cache=True, nogil=True, inline="always")
def _bin(c, lo, hi, bins, factor, edges):
    """The bin of one coefficient as `histogram.histogram_counts` decides it, or -1 when it is dropped.

    f = (c − lo)·bins/(hi − lo) differs from the reference's ((c − lo)/(hi − lo))·bins by a few ulps (< 1e-13
    bins), far inside the 1e-9-bin band next to an edge where both place the value exactly by comparison with
    the edges; elsewhere the integer part is the same, so the counts are too. Values outside the range (and
    NaN) also take the exact path, as in the reference.
    """
    f = (c - lo) * factor
    valid = f >= 0 and f <= bins  # NaN fails both
    if not valid:
        f = 0.0
    idx = int(f)
    frac = f - idx
    if frac <= 1e-9 or frac >= 1 - 1e-9:  # next to an edge: place by comparison with the edges
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
    factor = bins / (hi - lo)
    for f in range(n):
        for c in range(k):
            b = _bin(coefficients[f, c], lo, hi, bins, factor, edges)
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
    n_specs = len(los)
    peak, signed, finite = _peaks(x, c_out)
    need_mask = False
    for s in range(n_specs):
        need_mask |= nonsparse[s]
    if need_mask:
        mask, _top = _sparse(peak, signed, finite, c_in, eps, rule, zero_sparse)
    else:
        mask = np.zeros(n, np.bool_)
    used = np.empty(n, np.int64)
    n_used = 0
    for f in range(n):
        if finite[f // c_in]:
            used[n_used] = f
            n_used += 1
    factors = np.empty(n_specs)
    for s in range(n_specs):
        factors[s] = bins[s] / (his[s] - los[s])
    counts = np.zeros((n_specs, 9, edges.shape[1] - 1), np.int64)
    extents = np.empty((2, 9))
    extents[0] = np.inf
    extents[1] = -np.inf
    scale = np.empty(BLOCK)
    centred = np.empty((9, BLOCK))
    coef = np.empty(BLOCK)
    for b0 in range(0, n_used, BLOCK):
        m = min(BLOCK, n_used - b0)
        for f in range(m):
            p = peak[used[b0 + f]]
            scale[f] = p if p != 0 else 1.0
        for j in range(9):
            for f in range(m):
                centred[j, f] = np.float64(x[j, used[b0 + f]]) / scale[f] - mean[j]
        for k in range(9):
            coef[:m] = 0.0
            for j in range(9):
                v = components[k, j]
                for f in range(m):
                    coef[f] += centred[j, f] * v
            for f in range(m):
                extents[0, k] = min(extents[0, k], coef[f])
                extents[1, k] = max(extents[1, k], coef[f])
            for s in range(n_specs):
                lo, hi, nb, factor = los[s], his[s], bins[s], factors[s]
                row = edges[s, : nb + 1]
                skip = nonsparse[s]
                for f in range(m):
                    if skip and mask[used[b0 + f]]:
                        continue
                    b = _bin(coef[f], lo, hi, nb, factor, row)
                    if b >= 0:
                        counts[s, k, b] += 1
    return counts, extents
