"""Per-layer quality ("degeneration") metrics on raw 3x3 weights: sparsity, variance entropy, orthogonality (methods §6)."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from scipy import integrate, special

from filterlake.numeric.moments import Moments
from filterlake.numeric.normalise import as_filter_matrix, maxabs_scale
from filterlake.numeric.params import DEFAULT_QUALITY, SPARSITY_RULES, QualityParams, SparsityRule

D = DEFAULT_QUALITY  # the defaults of every single metric below
_TH_L, _TH_X0, _TH_K, _TH_B = 1.2618047, 2.30436435, 0.88767525, -0.31050834  # torchconvquality constants


def _as_layer(layer: np.ndarray) -> np.ndarray:
    """A layer as float64 (C_out, C_in_per_group, 9), accepting (C_out, C_in, 3, 3) too."""
    w = np.asarray(layer, dtype=np.float64)
    if w.ndim == 4 and w.shape[2:] == (3, 3):
        w = w.reshape(w.shape[0], w.shape[1], 9)
    if w.ndim != 3 or w.shape[2] != 9:
        raise ValueError(f"expected a layer of shape (C_out, C_in, 9) or (C_out, C_in, 3, 3), got {w.shape}")
    return w


def sparse_mask(
    filters: np.ndarray,
    eps: float = D.eps,
    rule: SparsityRule = D.rule,
    zero_layer_value: float = D.zero_layer_value,
) -> np.ndarray:
    """Boolean (n,) mask of the layer's sparse (near-zero) filters; kept filters are ``~mask``.

    Parameters
    ----------
    filters : (n, 9) raw filters of ONE layer (the threshold is relative to the layer).
    eps : relative threshold; t = eps · layer max.
    rule : "abs-strict" (P1 / torchconvquality: every |w_j| < eps·max|W|), "p2-le" (P2: max_j |w_j| <=
        eps·max|W|) or "p3-signed" (P3 structured pruning: a filter is kept iff its signed max >= eps·max(W),
        so sparse iff below; the signed max is the paper's slip, kept for parity).
    zero_layer_value : sparsity of an all-zero layer under every rule: 1.0 (torchconvquality, all filters
        sparse) or 0.0 (CNN-Filter-DB ``main.ipynb``, none sparse).
    """
    x = as_filter_matrix(filters)
    return _sparse_mask(x, np.abs(x).max(axis=1) if len(x) else np.zeros(0), eps, rule, zero_layer_value)


def _sparse_mask(
    x: np.ndarray, peak: np.ndarray, eps: float, rule: SparsityRule, zero_layer_value: float
) -> np.ndarray:
    """``sparse_mask`` from the filters and their precomputed peaks max_j |w_j| (layer_quality shares them)."""
    if rule not in SPARSITY_RULES:
        raise ValueError(f"rule must be one of {SPARSITY_RULES}, got {rule!r}")
    if zero_layer_value not in (0.0, 1.0):
        raise ValueError(f"zero_layer_value must be 0.0 or 1.0, got {zero_layer_value}")
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    if peak.max() == 0:
        return np.full(len(x), zero_layer_value == 1.0)
    if rule == "abs-strict":
        return peak < eps * peak.max()
    if rule == "p2-le":
        return peak <= eps * peak.max()
    signed = x.max(axis=1)
    return ~(signed >= eps * signed.max())


def sparsity(
    filters: np.ndarray,
    eps: float = D.eps,
    rule: SparsityRule = D.rule,
    zero_layer_value: float = D.zero_layer_value,
) -> float:
    """Share S of sparse filters in a layer (see ``sparse_mask`` for the parameters); NaN for an empty layer."""
    mask = sparse_mask(filters, eps, rule, zero_layer_value)
    return float(mask.mean()) if len(mask) else float("nan")


def variance_entropy(filters: np.ndarray, rtol: float = 1e-12) -> float:
    """Base-10 entropy H of the variance ratios of the layer's centred filters, in [0, log10 9] (filter diversity).

    λ_i are the squared singular values of X_c = W − mean(W) (computed as eigenvalues of X_cᵀX_c; the 1/(n−1)
    cancels), p_i = λ_i/Σλ, H = −Σ p_i log10 p_i. Returns 0 when Σλ is zero up to round-off, i.e.
    ‖X_c‖_F <= rtol·‖W‖_F (identical or all-zero filters, as torchconvquality), and NaN for fewer than 2 filters.
    """
    x = as_filter_matrix(filters)
    if len(x) < 2:
        return float("nan")
    xc = x - x.mean(axis=0)
    scatter = xc.T @ xc
    if np.trace(scatter) <= rtol**2 * np.vdot(x, x):  # ‖X_c‖²_F = tr(X_cᵀX_c)
        return 0.0
    lam = np.clip(np.linalg.eigvalsh(scatter), 0.0, None)
    p = lam[lam > 0] / lam.sum()
    return float(-(p * np.log10(p)).sum())


def entropy_threshold(n: int | np.ndarray) -> float | np.ndarray:
    """TH(n), torchconvquality's reference entropy of n random filters: H above it means random-like filters.

    A fitted logistic curve in log2 n; meaningful for n >= 3 (TH(2) is slightly negative, and H is 0 there anyway).
    """
    th = _TH_L / (1 + np.exp(-_TH_K * (np.log2(n) - _TH_X0))) + _TH_B
    return float(th) if np.ndim(th) == 0 else th


def variance_entropy_norm(filters: np.ndarray) -> float:
    """H / TH(n), torchconvquality's ``variance_entropy_norm`` (>= 1 means random-like)."""
    x = as_filter_matrix(filters)
    return variance_entropy(x) / entropy_threshold(len(x)) if len(x) >= 2 else float("nan")


def variance_entropy_clean(
    filters: np.ndarray,
    eps: float = D.eps,
    rule: SparsityRule = D.rule,
    zero_layer_value: float = D.zero_layer_value,
) -> float:
    """H of the non-sparse filters only (n = kept filters), torchconvquality's ``variance_entropy_clean``."""
    x = as_filter_matrix(filters)
    return variance_entropy(x[~sparse_mask(x, eps, rule, zero_layer_value)])


def _orthogonalities(layer: np.ndarray) -> tuple[float, float]:
    """(clean, compat) orthogonality from one Gram matrix of the unit-norm output-channel rows."""
    w = _as_layer(layer)
    c_out = w.shape[0]
    if c_out < 2:
        return float("nan"), float("nan")
    rows = w.reshape(c_out, -1)
    norm = np.linalg.norm(rows, axis=1)
    zero = norm == 0
    unit = rows / np.where(zero, 1.0, norm)[:, None]
    gram = unit @ unit.T
    compat_total = np.abs(gram - np.eye(c_out)).sum()
    cos = np.minimum(np.abs(gram), 1.0)
    cos[zero, :] = 1.0
    cos[:, zero] = 1.0
    np.fill_diagonal(cos, 0.0)
    pairs = c_out * (c_out - 1)
    return float(1 - cos.sum() / pairs), float(1 - compat_total / pairs)


def orthogonality(layer: np.ndarray, compat: bool = False) -> float:
    """One minus the mean |cosine| between the layer's output channels (rows of C_in·9 raw weights); 1 = orthogonal.

    compat=False (clean metric, methods §10.18): a zero row counts |cos| = 1 with every other row, so an all-zero
    layer scores 0. compat=True: torchconvquality's formula 1 − Σ|ŴŴᵀ − I| / (C_out(C_out − 1)), where a zero
    row adds only its diagonal 1 (all-zero layer: 1 − 1/(C_out − 1)). Both are NaN for C_out < 2.
    """
    return _orthogonalities(layer)[int(compat)]


def is_degenerated(
    entropy: float,
    threshold: float,
    sparsity: float,
    entropy_margin: float = D.entropy_margin,
    low_entropy: float = D.low_entropy,
    sparsity_threshold: float = D.sparsity_threshold,
) -> bool:
    """P1's combined degeneration rule (methods §6.6): (H >= TH − margin) or (H < low_entropy and S >= threshold).

    The first clause flags random-like layers, the second sparse low-diversity ones; a NaN entropy gives False.
    """
    random_like = entropy >= threshold - entropy_margin
    sparse_low = entropy < low_entropy and sparsity >= sparsity_threshold
    return bool(random_like or sparse_low)


@cache
def _gaussian_ternary_share(tol: float) -> float:
    """Expected share of non-peak entries within tol of {−1, 0, 1} for max-abs-scaled 9-d i.i.d. Gaussian filters.

    With F the half-normal CDF, the peak |x| = m has density 9F(m)^8 F'(m) and the other 8 |x| are i.i.d. F on
    [0, m], so the share is ∫ 9 F(m)^7 F'(m) [F(tol·m) + F(m) − F((1 − tol)·m)] dm.
    """

    def cdf(t: float) -> float:
        return special.erf(t / np.sqrt(2))

    def integrand(m: float) -> float:
        pdf = np.sqrt(2 / np.pi) * np.exp(-m * m / 2)
        return 9 * cdf(m) ** 7 * pdf * (cdf(tol * m) + cdf(m) - cdf((1 - tol) * m))

    return float(integrate.quad(integrand, 0, np.inf)[0])


def binary_likeness(filters: np.ndarray, tol: float = D.tol) -> float:
    """Score in [0, 1] of how far a layer's scaled filters collapse onto the levels {−1, 0, +1} (P3's CompNet finding).

    Each non-zero filter is divided by its max |w|; its peak entry (always ±1, the first on ties) is dropped and the
    share m of the remaining 8 entries per filter within ``tol`` of −1, 0 or +1 is taken over the layer. With m0 the
    expected share for i.i.d. Gaussian filters (exact integral, ≈0.097 at tol = 0.05), the score is
    clip((m − m0)/(1 − m0), 0, 1): exactly ternary (or binary) filters score 1, Gaussian-random layers about 0.
    All-zero filters carry no shape and are ignored; NaN when none is left. Needs 0 < tol < 0.5.
    """
    x = as_filter_matrix(filters)
    peak = np.abs(x).max(axis=1)
    return _binary_likeness(maxabs_scale(x, peak=peak), peak, tol)


def _binary_likeness(scaled: np.ndarray, peak: np.ndarray, tol: float) -> float:
    """``binary_likeness`` from the max-abs-scaled filters and their peaks.

    Counted without removing the peaks: each non-zero filter has exactly one dropped peak entry, |x|/max|x| = 1
    exactly, which always counts as near ±1; each all-zero filter has 9 entries near 0. Both are subtracted.
    """
    if not 0 < tol < 0.5:
        raise ValueError(f"tol must lie in (0, 0.5), got {tol}")
    n_zero = int(np.count_nonzero(peak == 0))
    n = len(peak) - n_zero
    if n == 0:
        return float("nan")
    a = np.abs(scaled)
    hits = np.count_nonzero((a <= tol) | (a >= 1 - tol)) - 9 * n_zero - n
    share = hits / (8 * n)
    baseline = _gaussian_ternary_share(float(tol))
    return float(np.clip((share - baseline) / (1 - baseline), 0.0, 1.0))


def n_levels(filters: np.ndarray, resolution: float = D.level_resolution) -> int:
    """Number of distinct max-abs-scaled values in a layer after rounding to multiples of ``resolution`` (3 = ternary)."""
    return _n_levels(maxabs_scale(filters), resolution)


def _n_levels(scaled: np.ndarray, resolution: float = D.level_resolution) -> int:
    """``n_levels`` from the max-abs-scaled filters."""
    half = int(np.ceil(1 / resolution))  # scaled values lie in [-1, 1], so steps lie in [-half, half]
    steps = np.rint(scaled / resolution).astype(np.int64) + half
    return int(np.count_nonzero(np.bincount(steps.ravel(), minlength=2 * half + 1)))


def layer_quality(layer: np.ndarray, params: QualityParams = D) -> dict[str, Any]:
    """All per-layer metrics plus the moments the basis needs, from one in-memory layer (C_out, C_in, 9) of raw weights.

    Keys: n_filters, n_sparse, sparsity, variance_entropy, entropy_threshold (TH(n)), variance_entropy_norm,
    variance_entropy_clean, variance_entropy_clean_norm, orthogonality (clean), orthogonality_compat,
    binary_likeness, binary_like (score >= binary_threshold), n_levels, degenerated, max_abs, and Moments
    moments_raw, moments_scaled, moments_scaled_nonsparse. `params` are those of the single metrics.
    """
    p = params
    w = _as_layer(layer)
    filters = w.reshape(-1, 9)
    n = len(filters)
    peak = np.abs(filters).max(axis=1)
    mask = _sparse_mask(filters, peak, p.eps, p.rule, p.zero_layer_value)
    scaled = maxabs_scale(filters, peak=peak)
    entropy = variance_entropy(filters)
    entropy_clean = variance_entropy(filters[~mask])
    threshold = entropy_threshold(n) if n else float("nan")
    threshold_clean = entropy_threshold(n - int(mask.sum())) if n > mask.sum() else float("nan")
    sparse_share = float(mask.mean()) if n else float("nan")
    binary = _binary_likeness(scaled, peak, p.tol)
    ortho, ortho_compat = _orthogonalities(w)
    return {
        "n_filters": n,
        "n_sparse": int(mask.sum()),
        "sparsity": sparse_share,
        "variance_entropy": entropy,
        "entropy_threshold": threshold,
        "variance_entropy_norm": entropy / threshold,
        "variance_entropy_clean": entropy_clean,
        "variance_entropy_clean_norm": entropy_clean / threshold_clean,
        "orthogonality": ortho,
        "orthogonality_compat": ortho_compat,
        "binary_likeness": binary,
        "binary_like": bool(binary >= p.binary_threshold),
        "n_levels": _n_levels(scaled, p.level_resolution),
        "degenerated": is_degenerated(
            entropy, threshold, sparse_share, p.entropy_margin, p.low_entropy, p.sparsity_threshold
        ),
        "max_abs": float(peak.max()) if n else 0.0,
        "moments_raw": Moments.of(filters),
        "moments_scaled": Moments.of(scaled),
        "moments_scaled_nonsparse": Moments.of(scaled[~mask]),
    }
