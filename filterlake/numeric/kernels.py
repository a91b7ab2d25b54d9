"""The compiled analysis path of a layer's statistics: one fused pass over its filters (`layer_row`).

Arrays in, arrays out, like the rest of `numeric/`; `histogram_kernel.py` holds the histogram pass. The
readable numpy reference of every quantity stays in `quality.py`, `moments.py`, `basis.py` and
`histogram.py`; `tests/numeric/test_kernels.py` asserts that the compiled path equals it (counts exactly,
floats to 1e-12 relative) on the corpus and on hypothesis-generated layers.

Why numba: the reference makes about twenty float64 numpy passes (and temporaries) per layer, while one
compiled loop reads each filter once while it is in registers. numba installs from the package index as a
wheel (no compiler on the machine, unlike Cython or a C extension), compiles plain Python loops, releases the
GIL (``nogil=True``: the per-model thread pool of `derived/per_model.py` keeps both cores busy) and caches its
machine code beside this file (``cache=True``), so the JIT cost is paid once per machine, not per run
(`warm_up` measures it).

Layout: a layer is a ``(9, n)`` float32 array, one row per weight position (the lake's columns w0..w8), filter
``f = o * c_in + i``. Output channels holding a NaN/Inf are left out, as `derived/layer_stats.finite_channels`.
Sums are float64; the outer products are summed per block of filters in an order LLVM may vectorise, within
round-off of numpy's. The orthogonality Gram matrix is left to BLAS (`gram_sums` reduces it): it costs
C_out x 9 multiply-adds per filter, more than everything else together, and BLAS runs it at full SIMD speed.

The sparse rules are numbered as `params.SPARSITY_RULES`: 0 abs-strict, 1 p2-le, 2 p3-signed.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from filterlake.numeric.moments import FLAT_NAMES
from filterlake.numeric.params import DEFAULT_QUALITY, SPARSITY_RULES, QualityParams
from filterlake.numeric.quality import _TH_B, _TH_K, _TH_L, _TH_X0, _gaussian_ternary_share

# the columns of `layer_pass`'s `counts` output
N_USED, N_SPARSE, N_ZERO, BINARY_HITS, N_LEVELS, C_USED = range(6)
# the values of `layer_row`, in order: the layer_stats columns after model_id, layer_idx and params
MOMENT_PREFIXES = ("raw", "sc", "scn")
METRICS = (
    "n_filters", "n_sparse", "sparsity", "variance_entropy", "entropy_threshold", "variance_entropy_norm",
    "variance_entropy_clean", "variance_entropy_clean_norm", "orthogonality", "orthogonality_compat",
    "binary_likeness", "binary_like", "n_levels", "degenerated", "max_abs",
)  # fmt: skip
ROW_COLUMNS = (*(f"{p}_{name}" for p in MOMENT_PREFIXES for name in FLAT_NAMES), *METRICS)


@njit(cache=True, nogil=True)
def _peaks(x, c_out):
    """Per-filter max |w| and signed max, and which output channels hold only finite weights."""
    n = x.shape[1]
    c_in = n // c_out if c_out else 0
    peak = np.zeros(n)
    signed = np.full(n, -np.inf)
    bad = np.zeros(n, np.bool_)
    for j in range(9):  # position-major: each inner loop runs down one contiguous column
        for f in range(n):
            v = np.float64(x[j, f])
            bad[f] |= not np.isfinite(v)
            peak[f] = max(peak[f], abs(v))
            signed[f] = max(signed[f], v)
    finite = np.ones(c_out, np.bool_)
    for f in range(n):
        if bad[f]:
            finite[f // c_in] = False
    return peak, signed, finite


@njit(cache=True, nogil=True)
def _sparse(peak, signed, finite, c_in, eps, rule, zero_sparse):
    """The sparse mask over the used (finite-channel) filters, as `quality.sparse_mask`."""
    n = len(peak)
    top = 0.0
    stop = -np.inf
    for f in range(n):
        if finite[f // c_in]:
            top = max(top, peak[f])
            stop = max(stop, signed[f])
    mask = np.zeros(n, np.bool_)
    for f in range(n):
        if not finite[f // c_in]:
            continue
        if top == 0:
            mask[f] = zero_sparse
        elif rule == 0:
            mask[f] = peak[f] < eps * top
        elif rule == 1:
            mask[f] = peak[f] <= eps * top
        else:
            mask[f] = not (signed[f] >= eps * stop)
    return mask, top


BLOCK = 256  # filters gathered before their outer products are summed (a vectorisable reduction)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _flush(acc, buf, m):
    """Add the moments of the first m columns of a (9, BLOCK) buffer to flat accumulators ``acc``.

    acc[0] += m, acc[1:10] += row sums, acc[10:] += the upper triangle of Σ v vᵀ (the `Moments.to_flat`
    order). Each entry is one reduction over the block, which LLVM vectorises (``reassoc``): the order of the
    additions differs from numpy's, within round-off, and is fixed for a given build.
    """
    acc[0] += m
    k = 10
    for a in range(9):
        t = 0.0
        for f in range(m):
            t += buf[a, f]
        acc[1 + a] += t
        for b in range(a, 9):
            t = 0.0
            for f in range(m):
                t += buf[a, f] * buf[b, f]
            acc[k] += t
            k += 1


@njit(cache=True, nogil=True)
def layer_pass(x, c_out, eps, rule, zero_sparse, tol, resolution):
    """Everything `quality.layer_quality` needs from one layer, in one read of its filters after the peaks.

    Returns ``counts`` (int64: see N_USED...C_USED), ``max_abs``, ``moments`` (3, 55) float64 flat moments
    of the raw, scaled and scaled non-sparse filters, ``scatter`` (2, 9, 9) centred scatter matrices of all and
    of the non-sparse raw filters, ``sq_norm`` (2,) their ‖W‖², ``unit`` (C_used, c_in·9) the unit-norm rows
    of the used output channels (zero rows stay zero) and ``zero_row`` (C_used,) which rows are zero.

    The scatter is accumulated about a shift K (the first non-sparse filter): Σ(x−K)(x−K)ᵀ − n·ddᵀ with
    d = mean(x) − K, so identical filters give exactly zero, as the reference's explicit centring.
    """
    n = x.shape[1]
    c_in = n // c_out if c_out else 0
    peak, signed, finite = _peaks(x, c_out)
    mask, top = _sparse(peak, signed, finite, c_in, eps, rule, zero_sparse)
    shift = np.zeros(9)
    kept = np.zeros(n, np.int64)  # used filters by kind: non-sparse first, sparse from the end
    n_kept = 0
    n_used = 0
    for f in range(n):
        if finite[f // c_in]:
            if mask[f]:
                n_used += 1
                kept[n - (n_used - n_kept)] = f
            else:
                kept[n_kept] = f
                n_kept += 1
                n_used += 1
    if n_kept:
        for j in range(9):
            shift[j] = x[j, kept[0]]
    unit, zero_row, c_used = _unit_rows(x, c_out, c_in, finite)
    # flat moments of the shifted raw and of the scaled filters, non-sparse [0] and sparse [1]
    shifted = np.zeros((2, 55))
    scaled = np.zeros((2, 55))
    ybuf = np.zeros((9, BLOCK))
    sbuf = np.zeros((9, BLOCK))
    pbuf = np.zeros(BLOCK)
    sq = np.zeros(2)
    half = int(np.ceil(1 / resolution))
    inv_res = 1 / resolution
    exact_inv = math.frexp(resolution)[0] == 0.5  # a power of two: x / r == x * (1 / r) exactly
    levels = np.zeros(2 * half + 1, np.bool_)
    n_zero = 0
    hits = 0
    for part in range(2):
        lo, hi = (0, n_kept) if part == 0 else (n - (n_used - n_kept), n)
        for b0 in range(lo, hi, BLOCK):
            m = min(BLOCK, hi - b0)
            for f in range(m):
                p = peak[kept[b0 + f]]
                n_zero += p == 0
                pbuf[f] = p if p != 0 else 1.0
            e = 0.0
            for j in range(9):
                for f in range(m):
                    v = np.float64(x[j, kept[b0 + f]])
                    e += v * v
                    ybuf[j, f] = v - shift[j]
                    sbuf[j, f] = v / pbuf[f]
            sq[part] += e
            for j in range(9):
                for f in range(m):
                    a = abs(sbuf[j, f])
                    hits += (a <= tol) | (a >= 1 - tol)
                    step = sbuf[j, f] * inv_res if exact_inv else sbuf[j, f] / resolution
                    levels[np.int64(np.rint(step)) + half] = True
            _flush(shifted[part], ybuf, m)
            _flush(scaled[part], sbuf, m)
    moments = np.zeros((3, 55))
    scatter = np.zeros((2, 9, 9))
    total = shifted[0] + shifted[1]
    _unshift(total, shift, moments[0])
    moments[1] = scaled[0] + scaled[1]
    moments[2] = scaled[0]
    _centred(total, scatter[0])
    _centred(shifted[0], scatter[1])
    counts = np.zeros(6, np.int64)
    counts[N_USED] = n_used
    counts[N_SPARSE] = n_used - n_kept
    counts[N_ZERO] = n_zero
    counts[BINARY_HITS] = hits
    counts[N_LEVELS] = levels.sum() if n_used else 0
    counts[C_USED] = c_used
    sq_norm = np.array([sq[0] + sq[1], sq[0]])
    return counts, top, moments, scatter, sq_norm, unit, zero_row


@njit(cache=True, nogil=True)
def _unit_rows(x, c_out, c_in, finite):
    """The used output channels as unit-norm rows of c_in·9 float64 weights (filter-major, as the reference
    reshapes the layer), which rows are zero, and how many channels are used; no rows below 2 channels."""
    c_used = 0
    for o in range(c_out):
        c_used += finite[o]
    unit = np.zeros((c_used if c_used >= 2 else 0, c_in * 9))
    zero_row = np.zeros(c_used, np.bool_)
    row = -1
    for o in range(c_out):
        if not finite[o]:
            continue
        row += 1
        norm = 0.0
        for f in range(o * c_in, (o + 1) * c_in):
            for j in range(9):
                v = np.float64(x[j, f])
                norm += v * v
        zero_row[row] = norm == 0
        if unit.shape[0] == 0:
            continue
        inv = 1 / np.sqrt(norm) if norm > 0 else 1.0
        for f in range(o * c_in, (o + 1) * c_in):
            for j in range(9):
                unit[row, (f - o * c_in) * 9 + j] = x[j, f] * inv
    return unit, zero_row, c_used


@njit(cache=True, nogil=True)
def _unshift(flat, k, out):
    """Flat moments of x from those of y = x − k: Σx = Σy + nk, Σxxᵀ = Σyyᵀ + k(Σy)ᵀ + (Σy)kᵀ + n kkᵀ."""
    n = flat[0]
    out[0] = n
    for a in range(9):
        out[1 + a] = flat[1 + a] + n * k[a]
    i = 10
    for a in range(9):
        for b in range(a, 9):
            out[i] = flat[i] + k[a] * flat[1 + b] + flat[1 + a] * k[b] + n * k[a] * k[b]
            i += 1


@njit(cache=True, nogil=True)
def _centred(flat, out):
    """The centred scatter Σ(x−μ)(x−μ)ᵀ from the flat moments of a shifted set (shifts cancel)."""
    n = flat[0]
    i = 10
    for a in range(9):
        for b in range(a, 9):
            v = flat[i] - flat[1 + a] * flat[1 + b] / n if n > 0 else 0.0
            out[a, b] = v
            out[b, a] = v
            i += 1


@njit(cache=True, nogil=True)
def gram_sums(gram, zero_row):
    """(Σ clean |cos| over off-diagonal pairs, Σ|G − I|) of a Gram matrix, as `quality._orthogonalities`."""
    c = gram.shape[0]
    clean = 0.0
    compat = 0.0
    for a in range(c):
        for b in range(c):
            g = gram[a, b]
            compat += abs(g - 1.0) if a == b else abs(g)
            if a != b:
                clean += 1.0 if zero_row[a] or zero_row[b] else min(abs(g), 1.0)
    return clean, compat


@njit(cache=True, nogil=True)
def _entropy(scatter, sq_norm, n, rtol):
    """`quality.variance_entropy` from the centred scatter, ‖W‖² and n (0 at round-off, NaN below 2 filters)."""
    if n < 2:
        return np.nan
    if np.trace(scatter) <= rtol**2 * sq_norm:
        return 0.0
    lam = np.maximum(np.linalg.eigvalsh(scatter), 0.0)
    total = lam.sum()
    h = 0.0
    for v in lam:
        if v > 0:
            h -= v / total * np.log10(v / total)
    return h


@njit(cache=True, nogil=True)
def _threshold(n):
    """`quality.entropy_threshold` TH(n) (NaN for an empty set)."""
    if n == 0:
        return np.nan
    return _TH_L / (1 + np.exp(-_TH_K * (np.log2(n) - _TH_X0))) + _TH_B


@njit(cache=True, nogil=True)
def layer_finish(counts, top, flat, scatter, sq_norm, gram, zero_row, q):
    """One layer_stats row (ROW_COLUMNS) from `layer_pass`'s outputs and the Gram matrix of its unit rows.

    ``q`` = (binary baseline m0, binary threshold, entropy margin, low entropy, sparsity threshold).
    """
    baseline, binary_threshold, margin, low, sparse_threshold = q[0], q[1], q[2], q[3], q[4]
    n, n_sparse, n_zero, c_used = counts[N_USED], counts[N_SPARSE], counts[N_ZERO], counts[C_USED]
    out = np.empty(len(flat.ravel()) + 15)
    out[: 3 * 55] = flat.ravel()
    entropy = _entropy(scatter[0], sq_norm[0], n, 1e-12)
    clean = _entropy(scatter[1], sq_norm[1], n - n_sparse, 1e-12)
    threshold = _threshold(n)
    sparsity = n_sparse / n if n else np.nan
    ortho = compat = np.nan
    if c_used >= 2:
        cos, diff = gram_sums(gram, zero_row)
        pairs = c_used * (c_used - 1)
        ortho, compat = 1 - cos / pairs, 1 - diff / pairs
    binary = np.nan
    if n > n_zero:
        share = (counts[BINARY_HITS] - 9 * n_zero - (n - n_zero)) / (8 * (n - n_zero))
        binary = min(max((share - baseline) / (1 - baseline), 0.0), 1.0)
    degenerated = entropy >= threshold - margin or (entropy < low and sparsity >= sparse_threshold)
    metrics = [
        float(n), float(n_sparse), sparsity, entropy, threshold, entropy / threshold, clean,
        clean / _threshold(n - n_sparse) if n > n_sparse else np.nan, ortho, compat, binary,
        1.0 if binary >= binary_threshold else 0.0, float(counts[N_LEVELS]), 1.0 if degenerated else 0.0, top,
    ]  # fmt: skip
    out[3 * 55 :] = np.array(metrics)
    return out


def layer_row(columns: np.ndarray, c_out: int, params: QualityParams = DEFAULT_QUALITY) -> np.ndarray:
    """`quality.layer_quality` of one layer given as (9, n) columns with n = c_out * c_in, compiled: the
    float64 values of ROW_COLUMNS (moments flat as `Moments.to_flat`, then the metrics; flags as 0/1).

    Output channels with NaN/Inf weights are left out first, as the analysis does before the reference.
    """
    p = params
    x = np.asarray(columns)
    if x.ndim != 2 or x.shape[0] != 9 or (c_out and x.shape[1] % c_out) or (x.shape[1] and not c_out):
        raise ValueError(f"expected (9, c_out * c_in) columns, got {x.shape} for c_out = {c_out}")
    counts, top, flat, scatter, sq_norm, unit, zero_row = layer_pass(
        x, c_out, p.eps, SPARSITY_RULES.index(p.rule), p.zero_layer_value == 1.0, p.tol, p.level_resolution
    )
    return layer_finish(counts, top, flat, scatter, sq_norm, unit @ unit.T, zero_row, _finish_params(p))


def _finish_params(p: QualityParams) -> np.ndarray:
    """The parameters `layer_finish` takes, as one array (the binary baseline is an integral, computed once)."""
    baseline = _gaussian_ternary_share(float(p.tol))
    return np.array([baseline, p.binary_threshold, p.entropy_margin, p.low_entropy, p.sparsity_threshold])


def warm_up() -> float:
    """Compile (or load from the cache) every kernel on a tiny layer; returns the seconds it took, the
    first-call JIT cost that the benchmark reports apart from the analysis."""
    import time

    from filterlake.numeric.histogram_kernel import bin_counts, histogram_pass

    start = time.perf_counter()
    x = np.ones((9, 4), np.float32)
    layer_row(x, 2)
    edges = np.linspace(-3.0, 3.0, 71)[None, :]
    histogram_pass(
        x, 2, 0.01, 0, True, np.zeros(9), np.eye(9), np.array([-3.0]), np.array([3.0]),
        np.array([70]), np.array([False]), edges,
    )  # fmt: skip
    bin_counts(np.zeros((1, 9)), -3.0, 3.0, 70, edges[0])
    return time.perf_counter() - start
