import time

import numpy as np
import pytest
from scipy.stats import entropy

from filterlake.numeric.histogram import bin_edges, histogram_counts
from filterlake.numeric.shift import (
    histogram_density,
    kl_symmetric,
    shift,
    shift_matrix,
    sort_by_column_mean,
)

EPS32 = np.finfo(np.float32).eps


def paper_probabilities(
    x: np.ndarray, bins: int, rng_: tuple[float, float], density: bool = True
) -> np.ndarray:
    """The notebooks' steps 1-3, written out: np.histogram, eps on empty bins, renormalise."""
    v = np.histogram(x, bins=bins, range=rng_, density=density)[0].astype(np.float64)
    v[v == 0] = EPS32
    return v / v.sum()


def test_synthetic_check_of_methods_md():
    a, b = np.linspace(-1, 1, 1000), np.linspace(-0.5, 1.5, 1000)
    edges = bin_edges(-2, 2, 70)
    d, per_component = shift(
        histogram_counts(a[:, None], -2, 2), histogram_counts(b[:, None], -2, 2), edges, np.array([1.0])
    )
    assert round(float(d), 4) == 7.2950
    assert d == pytest.approx(7.295045, abs=1e-6)
    assert per_component.shape == (1,) and per_component[0] == d
    pa, pb = (
        paper_probabilities(a, 70, (-2, 2), density=False),
        paper_probabilities(b, 70, (-2, 2), density=False),
    )
    raw_count_floor = entropy(pa, pb) + entropy(pb, pa)
    assert round(raw_count_floor, 4) == 9.2329 and abs(d - raw_count_floor) > 1


def test_histogram_density_follows_the_paper_steps(rng):
    x = rng.normal(0, 0.8, 500)
    edges = bin_edges(-3, 3, 70)
    p = histogram_density(histogram_counts(x[:, None], -3, 3)[0], edges)
    np.testing.assert_allclose(p, paper_probabilities(x, 70, (-3, 3)), rtol=1e-13)
    assert np.isnan(histogram_density(np.zeros(70), edges)).all()


def test_kl_symmetric_equals_scipy_entropies(rng):
    p, q = rng.dirichlet(np.ones(50), size=2)
    assert kl_symmetric(p, q) == pytest.approx(entropy(p, q) + entropy(q, p), rel=1e-12)
    assert kl_symmetric(p, p) == 0.0


def test_shift_is_the_weighted_sum_of_per_component_kl(rng):
    a, b = rng.normal(0, 1, (800, 9)), rng.normal(0.3, 1.2, (600, 9))
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    weights = rng.dirichlet(np.ones(9))
    d, per_component = shift(
        histogram_counts(a, lo, hi), histogram_counts(b, lo, hi), bin_edges(lo, hi), weights
    )
    expected = []
    for k in range(9):
        p, q = paper_probabilities(a[:, k], 70, (lo, hi)), paper_probabilities(b[:, k], 70, (lo, hi))
        expected.append(entropy(p, q) + entropy(q, p))
    np.testing.assert_allclose(per_component, expected, rtol=1e-12)
    assert d == pytest.approx(np.dot(weights, expected), rel=1e-12)


def group_counts(rng, n_groups: int) -> np.ndarray:
    shifts = rng.normal(0, 0.3, (n_groups, 1, 9))
    return np.stack([histogram_counts(rng.normal(0, 1, (300, 9)) + s[0], -3, 3) for s in shifts])


def test_shift_matrix_equals_a_loop_of_shift(rng):
    counts = group_counts(rng, 12)
    counts[4] = 0  # a group without filters in range
    edges, weights = bin_edges(-3, 3), rng.dirichlet(np.ones(9))
    matrix = shift_matrix(counts, edges, weights)
    for i in range(12):
        for j in range(12):
            expected = 0.0 if i == j and i != 4 else shift(counts[i], counts[j], edges, weights)[0]
            np.testing.assert_allclose(matrix[i, j], expected, rtol=1e-10, atol=1e-12)
    assert np.isnan(matrix[4]).all() and np.isnan(matrix[:, 4]).all()
    valid = np.delete(np.delete(matrix, 4, 0), 4, 1)
    np.testing.assert_array_equal(valid, valid.T)
    np.testing.assert_array_equal(np.diag(valid), 0.0)


def test_shift_matrix_of_1000_groups_is_fast(rng):
    counts = rng.poisson(5.0, (1000, 9, 70))
    start = time.perf_counter()
    matrix = shift_matrix(counts, bin_edges(-3, 3), np.full(9, 1 / 9))
    assert time.perf_counter() - start < 2.0
    assert matrix.shape == (1000, 1000)
    assert matrix[3, 7] == pytest.approx(shift(counts[3], counts[7], bin_edges(-3, 3), np.full(9, 1 / 9))[0])


def test_sort_by_column_mean(rng):
    m = rng.random((5, 5))
    m = m + m.T
    labels = ["a", "b", "c", "d", "e"]
    sorted_m, sorted_labels = sort_by_column_mean(m, labels)
    order = np.argsort(m.mean(axis=0))
    assert sorted_labels == [labels[i] for i in order]
    np.testing.assert_array_equal(sorted_m, m[order][:, order])
    assert np.all(np.diff(sorted_m.mean(axis=0)) >= 0)
