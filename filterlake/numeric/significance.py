"""Model-level permutation test and bootstrap interval for the shift D between two groups of models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from filterlake.numeric.shift import shift


@dataclass(frozen=True, eq=False)
class PermutationResult:
    """Observed D, its permutation p-value and null distribution, and a bootstrap percentile interval."""

    observed: float
    p_value: float
    null: np.ndarray  # D of every permutation, (n_permutations,)
    null_mean: float
    null_std: float
    null_q95: float
    ci_low: float
    ci_high: float
    confidence: float
    n_permutations: int
    n_boot: int
    seed: int


def _grouped_shift(
    members: np.ndarray, counts: np.ndarray, edges: np.ndarray, weights: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """D between the groups whose per-model multiplicities are the rows of members (2, R, M): one product each."""
    a = (members[0] @ counts).reshape(-1, *shape)
    b = (members[1] @ counts).reshape(-1, *shape)
    return shift(a, b, edges, weights)[0]


def permutation_test(
    counts: np.ndarray,
    labels: np.ndarray,
    edges: np.ndarray,
    weights: np.ndarray,
    n_permutations: int = 2000,
    seed: int = 0,
    n_boot: int = 2000,
    confidence: float = 0.95,
) -> PermutationResult:
    """Test whether D between the models labelled True and False exceeds chance, with models as the resampling unit.

    Parameters
    ----------
    counts : (M, 9, B) histogram counts per model (a group's counts are the sum over its models).
    labels : (M,) bool, True for group A.
    edges, weights : as for ``shift``.
    n_permutations : label permutations; p = (1 + #{D_perm >= D_obs}) / (1 + n_permutations), with D_perm
        within 100 float64 eps (relative) of D_obs counted as ties (scipy.stats.permutation_test's rule).
    n_boot, confidence : models are resampled with replacement within each group; the interval is the
        percentile interval of the bootstrap D at ``confidence``.
    seed : seed of ``np.random.default_rng``; the result is deterministic given it.
    """
    counts = np.asarray(counts, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if counts.ndim != 3 or labels.shape != (len(counts),):
        raise ValueError(f"expected counts (M, 9, B) and labels (M,), got {counts.shape} and {labels.shape}")
    idx_a, idx_b = np.flatnonzero(labels), np.flatnonzero(~labels)
    if len(idx_a) == 0 or len(idx_b) == 0:
        raise ValueError("both groups need at least one model")
    shape = counts.shape[1:]
    flat = counts.reshape(len(counts), -1)
    rng = np.random.default_rng(seed)

    observed = float(
        _grouped_shift(np.stack([labels, ~labels])[:, None].astype(float), flat, edges, weights, shape)[0]
    )
    permuted = rng.permuted(np.tile(labels, (n_permutations, 1)), axis=1)
    null = _grouped_shift(np.stack([permuted, ~permuted]).astype(float), flat, edges, weights, shape)
    ties = np.finfo(np.float64).eps * 100 * abs(observed)
    p_value = float((1 + np.count_nonzero(null >= observed - ties)) / (1 + n_permutations))

    members = np.empty((2, n_boot, len(counts)))
    for g, idx in enumerate((idx_a, idx_b)):
        draws = (
            idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))] + len(counts) * np.arange(n_boot)[:, None]
        )
        members[g] = np.bincount(draws.ravel(), minlength=n_boot * len(counts)).reshape(n_boot, -1)
    boot = _grouped_shift(members, flat, edges, weights, shape)
    alpha = (1 - confidence) / 2
    ci_low, ci_high = np.quantile(boot, [alpha, 1 - alpha])

    return PermutationResult(
        observed=observed,
        p_value=p_value,
        null=null,
        null_mean=float(null.mean()),
        null_std=float(null.std()),
        null_q95=float(np.quantile(null, 0.95)),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        confidence=confidence,
        n_permutations=n_permutations,
        n_boot=n_boot,
        seed=seed,
    )
