import numpy as np
import pytest
import scipy.fft

from filterlake.numeric.dct import (
    DCT_BASIS,
    ORDERS,
    FrequencyContent,
    dct_coefficients,
    energy_by_order,
    energy_from_outer,
    frequency_content,
    frequency_content_from_moments,
)
from filterlake.numeric.moments import Moments

CHECKERBOARD = np.array([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], dtype=float)


def test_coefficients_match_scipy_dctn_on_each_filter(trained_like):
    filters = trained_like.reshape(-1, 3, 3)
    expected = np.stack([scipy.fft.dctn(f, type=2, norm="ortho").ravel() for f in filters[:500]])
    np.testing.assert_allclose(dct_coefficients(filters[:500]), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dct_coefficients(trained_like[:500]), expected, rtol=1e-12, atol=1e-15)


def test_basis_is_orthonormal_and_ordered_by_frequency():
    np.testing.assert_allclose(DCT_BASIS @ DCT_BASIS.T, np.eye(9), atol=1e-15)
    np.testing.assert_array_equal(ORDERS, [0, 1, 2, 1, 2, 3, 2, 3, 4])
    for k in range(9):  # each basis image has all its energy in its own coefficient
        np.testing.assert_allclose(dct_coefficients(DCT_BASIS[k][None])[0], np.eye(9)[k], atol=1e-15)


def test_energy_from_moments_equals_the_direct_energy(trained_like):
    direct = frequency_content(trained_like)
    streamed = sum((Moments.of(c) for c in np.array_split(trained_like, 5)), Moments.zero())
    from_moments = frequency_content_from_moments(streamed)
    np.testing.assert_allclose(from_moments.energy, direct.energy, rtol=1e-10)
    np.testing.assert_allclose(from_moments.by_order, direct.by_order, rtol=1e-10)
    assert from_moments.n == direct.n == len(trained_like)
    assert from_moments.high_share == pytest.approx(direct.high_share, rel=1e-10)
    assert direct.energy.sum() == pytest.approx((trained_like**2).sum(), rel=1e-12)  # Parseval


def test_energy_from_outer_broadcasts_over_layers(trained_like):
    layers = np.array_split(trained_like, 4)
    outer = np.stack([Moments.of(x).outer for x in layers])
    energy = energy_from_outer(outer)
    assert energy.shape == (4, 9)
    for row, x in zip(energy, layers, strict=True):
        np.testing.assert_allclose(row, (dct_coefficients(x) ** 2).sum(axis=0), rtol=1e-10)
    assert energy_by_order(energy).shape == (4, 5)


def test_a_constant_filter_is_all_dc():
    content = frequency_content(np.full((2, 9), -0.5))
    np.testing.assert_allclose(content.energy, np.eye(9)[0] * 2 * 9 * 0.25, atol=1e-15)
    assert content.low == pytest.approx(4.5) and content.high == pytest.approx(0, abs=1e-15)
    assert content.high_share == pytest.approx(0, abs=1e-15)


def test_a_checkerboard_is_the_highest_frequency():
    # per axis [1, -1, 1] has DCT energies (1/3, 0, 8/3); the 2-D energies are their products
    content = frequency_content(CHECKERBOARD[None])
    expected = np.array([1, 0, 8, 0, 0, 0, 8, 0, 64]) / 9
    np.testing.assert_allclose(content.energy, expected, atol=1e-14)
    assert np.argmax(content.energy) == 8  # (u, v) = (2, 2)
    np.testing.assert_allclose(content.by_order, [1 / 9, 0, 16 / 9, 0, 64 / 9], atol=1e-14)
    assert content.high_share == pytest.approx(80 / 81)


def test_a_gradient_is_low_frequency():
    gradient = np.tile([-1.0, 0.0, 1.0], (3, 1))  # left to right: coefficient (0, 1) = -√6
    coefficients = dct_coefficients(gradient[None])[0]
    np.testing.assert_allclose(coefficients, np.eye(9)[1] * -np.sqrt(6), atol=1e-14)
    content = frequency_content(gradient[None])
    assert content.low == pytest.approx(6.0) and content.high_share == pytest.approx(0, abs=1e-15)


def test_cutoff_and_empty_energy():
    content = frequency_content(CHECKERBOARD[None], cutoff=3)
    assert (
        content.low == pytest.approx(17 / 9) and content.high == pytest.approx(64 / 9) and content.cutoff == 3
    )
    assert np.isnan(frequency_content(np.zeros((3, 9))).high_share)
    with pytest.raises(ValueError):
        FrequencyContent.of_energy(1, np.ones(9), cutoff=4)
    with pytest.raises(ValueError):
        energy_from_outer(np.eye(3))


def test_random_filters_spread_energy_evenly(rng):
    content = frequency_content(
        rng.normal(size=(20000, 9))
    )  # i.i.d. zero-mean entries: 6 of 9 coefficients high
    assert content.high_share == pytest.approx(6 / 9, abs=0.01)
