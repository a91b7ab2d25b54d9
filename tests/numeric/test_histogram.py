import numpy as np
import pytest

from filterlake.numeric.histogram import bin_edges, histogram_counts


def reference_counts(c: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    return np.stack([np.histogram(c[:, k], bins, range=(lo, hi))[0] for k in range(c.shape[1])])


@pytest.mark.parametrize(
    ("lo", "hi", "bins"), [(-3.0, 3.0, 70), (-2.7183, 3.1416, 70), (-1.0, 0.3, 7), (0.1, 0.7, 3)]
)
def test_counts_equal_np_histogram_including_edges_and_out_of_range(rng, lo, hi, bins):
    edges = np.histogram_bin_edges([], bins, range=(lo, hi))
    on_edges = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    values = np.concatenate([rng.normal(0, 1.5, 20000), on_edges, [lo - 1, hi + 1, np.nan, np.inf, -np.inf]])
    c = rng.permutation(np.resize(values, (len(values) // 9 + 1) * 9)).reshape(-1, 9)
    counts = histogram_counts(c, lo, hi, bins)
    assert counts.dtype == np.int64 and counts.shape == (9, bins)
    np.testing.assert_array_equal(counts, reference_counts(c, lo, hi, bins))
    np.testing.assert_array_equal(bin_edges(lo, hi, bins), edges)


def test_exact_edge_values_land_in_numpy_bins():
    edges = np.histogram_bin_edges([], 70, range=(-3.0, 3.0))
    c = np.repeat(edges[:, None], 9, axis=1)
    np.testing.assert_array_equal(histogram_counts(c, -3.0, 3.0), reference_counts(c, -3.0, 3.0, 70))
    assert histogram_counts(c, -3.0, 3.0)[0, -1] == 2  # the last bin is closed on the right


def test_empty_range_is_widened_as_numpy_does():
    c = np.zeros((5, 9))
    np.testing.assert_array_equal(histogram_counts(c, 0.0, 0.0, 4), reference_counts(c, 0.0, 0.0, 4))
    np.testing.assert_array_equal(bin_edges(0.0, 0.0, 4), np.histogram_bin_edges([], 4, range=(0.0, 0.0)))
    with pytest.raises(ValueError):
        histogram_counts(c, 1.0, 0.0)


def test_counts_are_additive(rng):
    c = rng.normal(0, 1, (3000, 9))
    parts = sum(histogram_counts(p, -2.5, 2.5) for p in np.array_split(c, 5))
    np.testing.assert_array_equal(parts, histogram_counts(c, -2.5, 2.5))


@pytest.mark.parametrize("lo, hi, bins", [(-3.0, 3.0, 70), (-3.5, 3.5, 350), (-1.2345, 2.718, 70)])
def test_values_one_ulp_around_every_edge_and_fortran_order(rng, lo, hi, bins):
    edges = bin_edges(lo, hi, bins)
    around = np.concatenate(
        [edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf), [np.nan, np.inf, -np.inf]]
    )
    c = np.asfortranarray(rng.choice(around, size=(4000, 9)))
    expected = np.stack([np.histogram(c[:, j], bins, range=(lo, hi))[0] for j in range(9)])
    np.testing.assert_array_equal(histogram_counts(c, lo, hi, bins), expected)
