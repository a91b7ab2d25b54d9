import json

import numpy as np
import pytest

from filterlake.numeric.basis import SIGN_RULE, Basis, fit_basis, transform
from filterlake.numeric.moments import Moments
from filterlake.numeric.normalise import maxabs_scale


def svd_reference(scaled: np.ndarray):
    """sklearn-PCA quantities by direct SVD of the centred data, signs by the max-|loading|-positive rule."""
    mean = scaled.mean(axis=0)
    u, s, vt = np.linalg.svd(scaled - mean, full_matrices=False)
    signs = np.sign(vt[np.arange(9), np.abs(vt).argmax(axis=1)])
    return mean, vt * signs[:, None], s**2 / (len(scaled) - 1), s**2 / np.sum(s**2), u * s * signs


def assert_matches_svd(basis: Basis, scaled: np.ndarray):
    mean, components, variance, evr, _ = svd_reference(scaled)
    assert (
        np.min(-np.diff(variance)) > 1e-4 * variance[0]
    )  # distinct eigenvalues: components are well defined
    assert basis.n == len(scaled)
    np.testing.assert_allclose(basis.mean, mean, rtol=0, atol=1e-14)
    np.testing.assert_allclose(basis.explained_variance, variance, rtol=1e-9)
    np.testing.assert_allclose(basis.evr, evr, rtol=1e-9)
    np.testing.assert_allclose(basis.components, components, rtol=0, atol=1e-8)


def test_basis_equals_svd_of_centred_scaled_filters(trained_like):
    scaled = maxabs_scale(trained_like)
    assert_matches_svd(fit_basis(Moments.of(scaled)), scaled)


def test_basis_from_chunk_moments_equals_svd_of_all(trained_like):
    scaled = maxabs_scale(trained_like)
    moments = sum((Moments.of(c) for c in np.array_split(scaled, 6)), Moments.zero())
    assert_matches_svd(fit_basis(moments), scaled)


def test_sign_rule_and_orthonormality(trained_like):
    basis = fit_basis(Moments.of(maxabs_scale(trained_like)))
    peak = basis.components[np.arange(9), np.abs(basis.components).argmax(axis=1)]
    assert (peak > 0).all() and basis.sign_rule == SIGN_RULE
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(9), atol=1e-12)
    assert np.all(np.diff(basis.explained_variance) <= 0)
    flipped = fit_basis(Moments.of(-maxabs_scale(trained_like)))  # mirrored data: same rule, same components
    np.testing.assert_allclose(flipped.components, basis.components, atol=1e-8)


def test_transform_equals_pca_transform(trained_like):
    scaled = maxabs_scale(trained_like)
    basis = fit_basis(Moments.of(scaled))
    coefficients = transform(basis, scaled)
    np.testing.assert_allclose(coefficients, (scaled - basis.mean) @ basis.components.T, rtol=0, atol=1e-13)
    *_, us = svd_reference(scaled)  # sklearn fit_transform = U·S
    np.testing.assert_allclose(coefficients, us, rtol=0, atol=1e-8)
    np.testing.assert_allclose(coefficients.var(axis=0, ddof=1), basis.explained_variance, rtol=1e-9)


def test_dict_roundtrip_through_json(trained_like):
    basis = fit_basis(Moments.of(maxabs_scale(trained_like)))
    back = Basis.from_dict(json.loads(json.dumps(basis.to_dict())))
    for name in ("mean", "components", "explained_variance", "evr"):
        np.testing.assert_array_equal(getattr(back, name), getattr(basis, name))
    assert (back.n, back.sign_rule) == (basis.n, basis.sign_rule)
    with pytest.raises(ValueError):
        Basis.from_dict({**basis.to_dict(), "mean": [0.0] * 8})


def test_identical_filters_have_no_basis():
    with pytest.raises(ValueError):
        fit_basis(Moments.of(np.ones((10, 9))))
