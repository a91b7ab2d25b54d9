from itertools import combinations

import numpy as np
import pytest

from filterlake.numeric.histogram import bin_edges, histogram_counts
from filterlake.numeric.shift import shift
from filterlake.numeric.significance import permutation_test

EDGES = bin_edges(-3, 3, 70)
WEIGHTS = np.full(9, 1 / 9)


def model_counts(rng, offsets, n_filters=400):
    return np.stack([histogram_counts(rng.normal(o, 1, (n_filters, 9)), -3, 3) for o in offsets])


def test_same_distribution_gives_a_large_p(rng):
    counts = model_counts(rng, np.zeros(10))
    labels = np.arange(10) < 5
    result = permutation_test(counts, labels, EDGES, WEIGHTS, n_permutations=500, n_boot=200)
    assert result.p_value > 0.1


def test_different_distributions_give_the_smallest_p(rng):
    counts = model_counts(rng, [0.0] * 10 + [0.5] * 10, n_filters=200)
    labels = np.arange(20) < 10
    result = permutation_test(counts, labels, EDGES, WEIGHTS, n_permutations=500, n_boot=200)
    # only a permutation that re-draws the observed split (or its swap, 2 of 184756) can reach D_obs
    assert result.p_value <= 3 / 501
    assert np.sort(result.null)[-2] < 0.75 * result.observed
    assert result.ci_low <= result.ci_high and result.ci_low > result.null_q95


def test_deterministic_given_the_seed(rng):
    counts = model_counts(rng, np.linspace(0, 0.2, 8))
    labels = np.array([True, False] * 4)
    a = permutation_test(counts, labels, EDGES, WEIGHTS, n_permutations=300, n_boot=100, seed=7)
    b = permutation_test(counts, labels, EDGES, WEIGHTS, n_permutations=300, n_boot=100, seed=7)
    c = permutation_test(counts, labels, EDGES, WEIGHTS, n_permutations=300, n_boot=100, seed=8)
    np.testing.assert_array_equal(a.null, b.null)
    assert (a.p_value, a.ci_low, a.ci_high) == (b.p_value, b.ci_low, b.ci_high)
    assert not np.array_equal(a.null, c.null)


def test_brute_force_small_case(rng):
    counts = model_counts(rng, [0.0, 0.1, 0.05, 0.2, 0.15, 0.3], n_filters=150)
    labels = np.array([True, False, True, False, True, False])
    n_perm = 4000
    result = permutation_test(counts, labels, EDGES, WEIGHTS, n_permutations=n_perm, n_boot=50)

    def d(group_a) -> float:
        return shift(
            counts[list(group_a)].sum(0), np.delete(counts, list(group_a), 0).sum(0), EDGES, WEIGHTS
        )[0]

    observed = d(np.flatnonzero(labels))
    assert result.observed == pytest.approx(observed, rel=1e-12)
    every = np.array([d(a) for a in combinations(range(6), 3)])  # all 20 labellings with 3 models in group A
    distance = np.abs(result.null[:, None] - every[None, :]).min(axis=1)
    assert distance.max() < 1e-12  # every permutation statistic is the D of some labelling
    tie = 100 * np.finfo(float).eps * observed
    assert result.p_value == (1 + np.count_nonzero(result.null >= observed - tie)) / (1 + n_perm)
    exact = np.mean(every >= observed - 1e-12)  # exact permutation p-value over all labellings
    assert result.p_value == pytest.approx(exact, abs=0.03)
    assert result.null_mean == pytest.approx(result.null.mean()) and result.n_permutations == n_perm


def test_bootstrap_with_one_model_per_group_is_the_observed_value(rng):
    counts = model_counts(rng, [0.0, 0.4])
    result = permutation_test(counts, np.array([True, False]), EDGES, WEIGHTS, n_permutations=50, n_boot=100)
    assert result.ci_low == pytest.approx(result.observed) and result.ci_high == pytest.approx(
        result.observed
    )
    with pytest.raises(ValueError):
        permutation_test(counts, np.array([True, True]), EDGES, WEIGHTS)
