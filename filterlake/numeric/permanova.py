"""PERMANOVA (Anderson 2001) on a model-by-model shift matrix, with permutations restricted within strata,
Holm's step-down correction and the architecture-matched between/within contrast (docs/methods/permanova.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from filterlake.numeric.params import PERMUTATIONS, SEED
from filterlake.numeric.permanova_kernel import within_ss

Dissimilarity = Literal["squared", "distance"]
BLOCK_VALUES = 1 << 22  # float64 values of one block of permutations (block rows x groups x models): 32 MiB
_TIES = 100 * np.finfo(np.float64).eps  # relative tolerance for F* == F, as significance.permutation_test


@dataclass(frozen=True, eq=False)
class PermanovaResult:
    """Pseudo-F of the group factor, its restricted-permutation p-value and R², on the informative models only.

    ``included`` marks the models that entered the test (those in strata with at least two groups);
    ``informative_strata`` names those strata; ``n_arrangements`` is the number of distinct labellings the
    restricted permutations can reach (the p-value cannot fall below about 1 / n_arrangements).
    """

    pseudo_f: float
    p_value: float
    r_squared: float
    ss_total: float
    ss_within: float
    ss_between: float
    n: int
    n_per_group: dict[Any, int]
    n_strata_informative: int
    n_strata_excluded: int
    informative_strata: tuple[Any, ...]
    included: np.ndarray  # (n_models,) bool
    n_arrangements: int
    null: np.ndarray  # F of every permutation, (n_permutations,)
    n_permutations: int
    seed: int
    dissimilarity: Dissimilarity


@dataclass(frozen=True)
class MatchedContrast:
    """Mean between-group and mean within-group D inside one stratum, with the pair counts they average."""

    between_mean: float
    within_mean: float
    n_between: int
    n_within: int
    n_per_group: dict[Any, int]

    @property
    def difference(self) -> float:
        """between_mean − within_mean: > 0 when models of different groups differ more than models of one group."""
        return self.between_mean - self.within_mean


def _codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique values, integer code of every row); a 2-D array's rows are combined into one label each."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        values, codes = np.unique(labels, return_inverse=True)
        return values, codes.ravel()
    column_codes = [np.unique(column, return_inverse=True)[1].ravel() for column in labels.T]
    codes = np.unique(np.stack(column_codes, axis=1), axis=0, return_inverse=True)[1].ravel()
    first = np.unique(codes, return_index=True)[1]
    values = np.empty(len(first), dtype=object)
    values[:] = [tuple(labels[i].tolist()) for i in first]
    return values, codes


def _squared(d: np.ndarray, dissimilarity: Dissimilarity) -> np.ndarray:
    """The matrix of squared distances d²_ij after checking that d is a finite symmetric zero-diagonal matrix."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"expected a square dissimilarity matrix, got shape {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("the dissimilarity matrix must be finite and non-negative")
    if not np.allclose(d, d.T, rtol=1e-12, atol=0) or np.any(np.diag(d) != 0):
        raise ValueError("the dissimilarity matrix must be symmetric with a zero diagonal")
    if dissimilarity not in ("squared", "distance"):
        raise ValueError(f"dissimilarity must be 'squared' or 'distance', got {dissimilarity!r}")
    return d if dissimilarity == "squared" else d * d


def stratified_permutations(strata: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """(n_permutations, n) index arrays, each a uniform random permutation that maps every stratum onto itself.

    Row r reorders labels as ``labels[perm[r]]``; ``strata[perm[r]] == strata`` for every r. One
    ``Generator.permuted`` call per stratum (strata in sorted order, so a seed gives the same rows).
    """
    _, codes = _codes(strata)
    perms = np.tile(np.arange(len(codes)), (n_permutations, 1))
    for code in range(codes.max(initial=-1) + 1):
        idx = np.flatnonzero(codes == code)
        perms[:, idx] = rng.permuted(perms[:, idx], axis=1)
    return perms


def within_ss_reference(d2: np.ndarray, codes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """SS_W = Σ_g (1/n_g) Σ_{i<j in g} d²_ij for every row of group codes (P, n), as one product per block: the
    readable reference of the compiled `permanova_kernel.within_ss` that `permanova` runs."""
    n_groups, n = len(sizes), codes.shape[1]
    rows = max(1, BLOCK_VALUES // (n_groups * n))
    out = np.empty(len(codes))
    for start in range(0, len(codes), rows):
        block = codes[start : start + rows]
        onehot = (block[:, None, :] == np.arange(n_groups)[None, :, None]).astype(np.float64)
        pair_sums = 0.5 * np.einsum("pgn,pgn->pg", onehot @ d2, onehot)  # Σ_{i<j in g}: the diagonal is 0
        out[start : start + rows] = pair_sums @ (1.0 / sizes)
    return out


def _pseudo_f(ss_total: float, ss_within: np.ndarray, n: int, n_groups: int) -> np.ndarray:
    """F = (SS_A/(a−1)) / (SS_W/(n−a)); +inf where SS_W = 0 < SS_A, NaN where both are 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((ss_total - ss_within) / (n_groups - 1)) / (ss_within / (n - n_groups))


def permanova(
    d: np.ndarray,
    groups: np.ndarray,
    strata: np.ndarray | None = None,
    n_permutations: int = PERMUTATIONS,
    seed: int = SEED,
    dissimilarity: Dissimilarity = "squared",
) -> PermanovaResult:
    """Test whether the groups of models differ in D more than models within a group, permuting within strata.

    Parameters
    ----------
    d : (n, n) symmetric dissimilarities between models with a zero diagonal (the lake's shift D).
    groups : (n,) group label of every model (e.g. medical / non-medical); two or more groups.
    strata : (n,) or (n, k) stratum labels (e.g. architecture family; k columns, e.g. family and task kind,
        are combined); None puts every model in one stratum (an unrestricted test). Models of strata that
        hold only one group are excluded: their labels cannot move, and keeping them would mix the stratum
        effect into the group effect.
    n_permutations, seed : permutations drawn with ``np.random.default_rng(seed)``;
        p = (1 + #{F* >= F}) / (1 + n_permutations), F* within 100 float64 eps (relative) of F counted as ties.
    dissimilarity : "squared" (default) takes D itself as the squared distance d²_ij, because the symmetric KL
        is second order in the difference of the distributions (it equals a squared Euclidean distance for
        equal-variance Gaussians); "distance" squares D first, for a D that is a distance.
    """
    d2 = _squared(d, dissimilarity)
    groups = np.asarray(groups)
    if groups.shape != (len(d2),):
        raise ValueError(f"expected {len(d2)} group labels, got shape {groups.shape}")
    stratum_values, stratum_codes = _codes(np.zeros(len(d2)) if strata is None else strata)
    if len(stratum_codes) != len(d2):
        raise ValueError(f"expected {len(d2)} stratum labels, got {len(stratum_codes)}")
    group_codes = _codes(groups)[1]
    n_groups_in = np.array(
        [len(np.unique(group_codes[stratum_codes == s])) for s in range(len(stratum_values))]
    )
    informative = n_groups_in >= 2
    included = informative[stratum_codes]
    values, codes = _codes(groups[included])
    if len(values) < 2 or included.sum() <= len(values):
        raise ValueError("the test needs two groups inside some stratum and more models than groups")
    d2, strata_in = d2[np.ix_(included, included)], stratum_codes[included]
    n, n_groups = len(codes), len(values)
    sizes = np.bincount(codes, minlength=n_groups).astype(np.float64)

    ss_total = float(d2[np.triu_indices(n, 1)].sum() / n)
    d2, inverse = np.ascontiguousarray(d2, dtype=np.float64), 1.0 / sizes
    ss_within = float(within_ss(d2, codes[None, :].astype(np.int64), inverse)[0])
    observed = float(_pseudo_f(ss_total, np.array([ss_within]), n, n_groups)[0])
    perms = stratified_permutations(strata_in, n_permutations, np.random.default_rng(seed))
    null = _pseudo_f(ss_total, within_ss(d2, codes[perms].astype(np.int64), inverse), n, n_groups)
    tie = _TIES * abs(observed) if np.isfinite(observed) else 0.0
    p_value = (1 + np.count_nonzero(null >= observed - tie)) / (1 + n_permutations)

    arrangements = 1
    for s in np.unique(strata_in):
        counts = np.bincount(codes[strata_in == s], minlength=n_groups)
        arrangements *= math.factorial(int(counts.sum())) // math.prod(math.factorial(int(c)) for c in counts)
    return PermanovaResult(
        pseudo_f=observed,
        p_value=float(p_value),
        r_squared=(ss_total - ss_within) / ss_total if ss_total > 0 else math.nan,
        ss_total=ss_total,
        ss_within=ss_within,
        ss_between=ss_total - ss_within,
        n=n,
        n_per_group=dict(zip(values.tolist(), sizes.astype(int).tolist(), strict=True)),
        n_strata_informative=int(informative.sum()),
        n_strata_excluded=int((~informative).sum()),
        informative_strata=tuple(stratum_values[informative].tolist()) if strata is not None else (),
        included=included,
        n_arrangements=arrangements,
        null=null,
        n_permutations=n_permutations,
        seed=seed,
        dissimilarity=dissimilarity,
    )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest p (1-based) becomes
    max_{j<=i} min(1, (m − j + 1) p_(j)); monotone in p, capped at 1, controls the family-wise error rate."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("expected a 1-D array of p-values in [0, 1]")
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted


def matched_contrast(
    d: np.ndarray, groups: np.ndarray, dissimilarity: Dissimilarity = "squared"
) -> MatchedContrast:
    """Mean D between the two groups against the pooled mean D within each group, for ONE stratum's models.

    ``d`` is the stratum's (m, m) block of the shift matrix and ``groups`` its m labels (exactly two groups).
    D is averaged as given ("squared") or squared first ("distance"), as in ``permanova``. The within mean
    pools the i<j pairs of both groups; it is NaN when each group has a single model (no within pairs).
    """
    d2 = _squared(d, dissimilarity)
    values, codes = _codes(groups)
    if len(values) != 2 or len(codes) != len(d2):
        raise ValueError("expected one label per model and exactly two groups")
    same = codes[:, None] == codes[None, :]
    upper = np.triu(np.ones_like(same), 1)
    within, between = upper & same, upper & ~same
    n_within = int(within.sum())
    return MatchedContrast(
        between_mean=float(d2[between].mean()),
        within_mean=float(d2[within].mean()) if n_within else math.nan,
        n_between=int(between.sum()),
        n_within=n_within,
        n_per_group=dict(zip(values.tolist(), np.bincount(codes).tolist(), strict=True)),
    )
