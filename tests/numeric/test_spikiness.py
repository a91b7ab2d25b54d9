import numpy as np
import pytest
from scipy import stats

from filterlake.numeric.histogram import bin_edges, histogram_counts
from filterlake.numeric.spikiness import (
    SPIKY_THRESHOLD,
    histogram_kurtosis,
    histogram_moments,
    peak_contributions,
    peak_region,
    spikiness,
)

EDGES = bin_edges(-3, 3, 70)  # the P3 histogram spec
MID = (EDGES[:-1] + EDGES[1:]) / 2


def expected_counts(dist: stats.rv_continuous, edges: np.ndarray = EDGES, n: float = 1e6) -> np.ndarray:
    """Exact expected bin counts of a distribution (no sampling noise)."""
    return np.diff(dist.cdf(edges)) * n


def direct_score(samples: np.ndarray, edges: np.ndarray = EDGES) -> float:
    """The peak ratio computed from the samples: numpy's density histogram and the midpoint standard deviation."""
    density, _ = np.histogram(samples, edges, density=True)
    counts, _ = np.histogram(samples, edges)
    mid = (edges[:-1] + edges[1:]) / 2
    return density.max() * np.std(np.repeat(mid, counts)) * np.sqrt(2 * np.pi)


@pytest.mark.parametrize("sigma", [0.3, 0.5, 0.8])
def test_a_gaussian_scores_one(sigma):
    for mean in (0.0, 3 / 70):  # the mode on a bin edge, and in the middle of a bin
        counts = expected_counts(stats.norm(mean, sigma))
        assert spikiness(counts, EDGES) == pytest.approx(1.0, abs=0.015)
        if sigma <= 0.5:  # wider Gaussians lose their tails beyond ±3, which biases the kurtosis (next test)
            assert histogram_kurtosis(counts, EDGES) == pytest.approx(0.0, abs=0.01)


def test_the_range_truncation_biases_the_kurtosis_more_than_the_score():
    counts = expected_counts(stats.norm(0, 1.0))  # 0.27% of the mass lies outside (-3, 3) and is dropped
    assert spikiness(counts, EDGES) == pytest.approx(1.0, abs=0.015)
    assert histogram_kurtosis(counts, EDGES) < -0.15


def test_reference_distributions_on_fine_bins():
    fine = bin_edges(-12, 12, 4000)
    assert spikiness(expected_counts(stats.uniform(-1, 2), fine), fine) == pytest.approx(
        np.sqrt(np.pi / 6), rel=1e-3
    )
    assert spikiness(expected_counts(stats.laplace(0, 1), fine), fine) == pytest.approx(
        np.sqrt(np.pi), rel=1e-2
    )
    logistic = np.pi * np.sqrt(2 * np.pi) / (4 * np.sqrt(3))
    assert spikiness(expected_counts(stats.logistic(0, 0.5), fine), fine) == pytest.approx(logistic, rel=1e-3)
    assert histogram_kurtosis(expected_counts(stats.uniform(-1, 2), fine), fine) == pytest.approx(
        -1.2, abs=1e-3
    )


def test_a_point_mass_makes_it_spikey_and_a_uniform_does_not(rng):
    gauss = rng.normal(0, 1, 9000)
    spiked = np.concatenate([gauss, np.full(1000, 0.01)])  # 10% of the filters share one coefficient value
    assert spikiness(np.histogram(gauss, EDGES)[0], EDGES) == pytest.approx(1.0, abs=0.1)
    score = spikiness(np.histogram(spiked, EDGES)[0], EDGES)
    assert score > SPIKY_THRESHOLD
    # the bound of the spec: S >= q σ √(2π) / h for a share q in one bin of width h
    assert score >= 0.1 * np.std(spiked) * np.sqrt(2 * np.pi) / (6 / 70)
    assert spikiness(np.histogram(rng.uniform(-2, 2, 50000), EDGES)[0], EDGES) < 0.85


def test_equals_the_direct_computation_from_samples(rng):
    samples = np.concatenate([rng.normal(0.2, 0.6, 4000), rng.normal(0, 0.02, 800)])
    counts = np.histogram(samples, EDGES)[0]
    assert spikiness(counts, EDGES) == pytest.approx(direct_score(samples), rel=1e-12)
    # the midpoints shift the moments by at most a bin: close to the samples' own standard deviation
    peak = np.histogram(samples, EDGES, density=True)[0].max()
    assert spikiness(counts, EDGES) == pytest.approx(peak * np.std(samples) * np.sqrt(2 * np.pi), rel=0.01)
    assert histogram_kurtosis(counts, EDGES) == pytest.approx(
        stats.kurtosis(np.repeat(MID, counts)), rel=1e-10
    )
    assert histogram_kurtosis(counts, EDGES) == pytest.approx(stats.kurtosis(samples), rel=0.05)
    n, mean, variance = histogram_moments(counts, EDGES)
    assert (n, mean) == (len(samples), pytest.approx(np.repeat(MID, counts).mean(), rel=1e-12))
    assert variance == pytest.approx(np.var(np.repeat(MID, counts)), rel=1e-12)


def test_histograms_add_across_layers(rng):
    layers = [rng.normal(0, s, (300, 9)) for s in (0.2, 0.5, 1.0)]
    per_layer = np.stack([histogram_counts(x, -3, 3) for x in layers])  # (L, 9, B) as the lake stores them
    summed = spikiness(per_layer.sum(axis=0), EDGES)
    assert summed.shape == (9,)
    joined = np.concatenate(layers)
    expected = [direct_score(joined[:, k]) for k in range(9)]
    np.testing.assert_allclose(summed, expected, rtol=1e-12)
    assert spikiness(per_layer, EDGES).shape == (3, 9)


def test_uneven_edges_use_the_bin_widths(rng):
    edges = np.array([-3.0, -1.0, -0.2, -0.05, 0.05, 0.3, 1.5, 3.0])
    samples = rng.normal(0, 0.7, 5000)
    assert spikiness(np.histogram(samples, edges)[0], edges) == pytest.approx(
        direct_score(samples, edges), rel=1e-12
    )


def test_invariant_to_shift_and_scale(rng):
    counts = np.histogram(rng.gamma(2.0, 0.3, 3000) - 1, EDGES)[0]
    assert spikiness(counts, 2.5 * EDGES + 7) == pytest.approx(spikiness(counts, EDGES), rel=1e-12)


def test_edge_cases():
    assert np.isnan(spikiness(np.zeros(70), EDGES)) and np.isnan(histogram_kurtosis(np.zeros(70), EDGES))
    one_bin = np.zeros(70)
    one_bin[40] = 12
    assert spikiness(one_bin, EDGES) == np.inf and np.isnan(histogram_kurtosis(one_bin, EDGES))
    two_bins = one_bin.copy()
    two_bins[41] = 12  # half the mass in each of two neighbouring bins: σ = h/2, f = 1/(2h) -> S = √(2π)/4
    assert spikiness(two_bins, EDGES) == pytest.approx(np.sqrt(2 * np.pi) / 4)
    with pytest.raises(ValueError):
        spikiness(np.ones(69), EDGES)
    with pytest.raises(ValueError):
        spikiness(-np.ones(70), EDGES)


def test_peak_region():
    straddling = np.zeros(70)
    straddling[[30, 31]] = [50, 48]
    straddling[[10, 60]] = 5
    assert peak_region(straddling, EDGES) == (30, 31)
    first, last = peak_region(expected_counts(stats.norm(3 / 70, 1.0)), EDGES)
    half_width = (last - first + 1) / 2 * (6 / 70)
    assert half_width == pytest.approx(np.sqrt(2 * np.log(2)), abs=6 / 70)  # the half maximum of a Gaussian
    assert peak_region(np.ones(70), EDGES) == (0, 69)
    with pytest.raises(ValueError):
        peak_region(np.zeros(70), EDGES)


def test_peak_contributions_find_the_layer_with_the_spike(rng):
    wide = [histogram_counts(rng.normal(0, 0.8, (2000, 1)), -3, 3)[0] for _ in range(2)]
    spike = histogram_counts(rng.normal(0.5, 0.01, (800, 1)), -3, 3)[0]
    layers = np.stack([wide[0], spike, wide[1], np.zeros(70)])
    result = peak_contributions(layers, EDGES)
    assert spikiness(layers.sum(axis=0), EDGES) > SPIKY_THRESHOLD
    assert result.first <= np.searchsorted(EDGES, 0.5) - 1 <= result.last
    assert result.peak_share.sum() == pytest.approx(1) and result.mass_share.sum() == pytest.approx(1)
    assert (
        result.enrichment[1] > 3 and (result.enrichment[[0, 2]] < 1).all() and np.isnan(result.enrichment[3])
    )
    assert np.argmax(result.peak_share) == 1
    with pytest.raises(ValueError):
        peak_contributions(layers[0], EDGES)
