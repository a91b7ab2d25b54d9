import numpy as np
import pytest
from scipy.stats import gaussian_kde

from filterlake.numeric.histogram import bin_edges, histogram_counts
from filterlake.numeric.kde import binned_kde, histogram_quantile, silverman_bandwidth


def test_silverman_bandwidth_matches_the_kdepy_rule(rng):
    x = rng.standard_t(4, 3000)
    std = np.std(x, ddof=1)
    iqr = np.percentile(x, 75) - np.percentile(x, 25)
    expected = min(std, iqr / 1.3489795003921634) * (3 * len(x) / 4) ** (-1 / 5)
    assert silverman_bandwidth(std, iqr, len(x)) == pytest.approx(expected, rel=1e-15)
    assert silverman_bandwidth(std, 0.0, len(x)) == pytest.approx(std * (3 * len(x) / 4) ** (-1 / 5))
    assert silverman_bandwidth(2.0, 1.0, 1) == 1.0
    with pytest.raises(ValueError):
        silverman_bandwidth(0.0, 0.0, 10)


def test_histogram_quantile_is_within_one_bin_of_np_quantile(rng):
    x = rng.normal(0.2, 0.7, 50000)
    edges = bin_edges(-4, 4, 800)
    counts = histogram_counts(x[:, None], -4, 4, 800)[0]
    q = np.array([0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
    assert np.all(np.abs(histogram_quantile(counts, edges, q) - np.quantile(x, q)) <= edges[1] - edges[0])
    assert histogram_quantile(counts, edges, 0.0) == edges[np.flatnonzero(counts)[0]]
    assert histogram_quantile(counts, edges, 1.0) == edges[np.flatnonzero(counts)[-1] + 1]


def test_binned_kde_is_the_exact_kde_of_bin_centres(rng):
    x = rng.normal(0, 1, 4000)
    edges = bin_edges(-6, 6, 600)
    counts = histogram_counts(x[:, None], -6, 6, 600)[0]
    centres = (edges[:-1] + edges[1:]) / 2
    h = 0.3
    reference = gaussian_kde(centres[counts > 0], weights=counts[counts > 0])
    reference.set_bandwidth(h * reference.factor / np.sqrt(reference.covariance[0, 0]))
    np.testing.assert_allclose(binned_kde(counts, edges, h), reference(centres), rtol=1e-9, atol=1e-12)


def test_binned_kde_approximates_scipy_kde_of_raw_data(rng):
    x = np.concatenate([rng.normal(-0.5, 0.3, 6000), rng.normal(0.8, 0.5, 4000)])
    edges = bin_edges(-3.5, 3.5, 1400)
    counts = histogram_counts(x[:, None], -3.5, 3.5, 1400)[0]
    std = np.std(x, ddof=1)
    h = silverman_bandwidth(std, np.subtract(*np.percentile(x, [75, 25])), len(x))
    density = binned_kde(counts, edges, h)
    centres = (edges[:-1] + edges[1:]) / 2
    reference = gaussian_kde(x, bw_method=h / std)(centres)
    assert np.max(np.abs(density - reference)) < 5e-3 * reference.max()
    assert np.sum(density) * (edges[1] - edges[0]) == pytest.approx(1.0, abs=1e-6)
