import numpy as np
import pytest
from scipy.stats import entropy

from filterlake.numeric.moments import Moments
from filterlake.numeric.normalise import maxabs_scale
from filterlake.numeric.quality import (
    _gaussian_ternary_share,
    binary_likeness,
    entropy_threshold,
    is_degenerated,
    layer_quality,
    n_levels,
    orthogonality,
    sparse_mask,
    sparsity,
    variance_entropy,
    variance_entropy_clean,
    variance_entropy_norm,
)


def trained_layer(rng, c_out=32, c_in=16, sparse_share=0.2):
    w = rng.normal(0, 0.05, (c_out, c_in, 9))
    w[rng.random((c_out, c_in)) < sparse_share] *= 1e-4
    w[0, 0] = 0.0
    return w


# --- sparsity ---------------------------------------------------------------------------------------------------


def test_torchconvquality_sparsity_values():
    assert sparsity(np.zeros((64 * 16, 9))) == 1.0
    assert sparsity(np.ones((64 * 16, 9))) == 0.0
    w = np.ones((2, 1, 3, 3))
    w[0] = 0
    assert sparsity(w.reshape(-1, 9)) == 0.5


def test_sparsity_rules_match_direct_loops(rng):
    x = trained_layer(rng).reshape(-1, 9)
    x[5] = np.full(9, 0.01 * np.abs(x).max())  # exactly on the threshold: sparse for "<=" only
    x[6] = -np.abs(x[6])  # an all-negative filter: sparse under the signed rule
    layer_max, signed_max = np.abs(x).max(), x.max()
    strict = [all(abs(v) < 0.01 * layer_max for v in f) for f in x]
    le = [max(abs(v) for v in f) <= layer_max / 100 for f in x]
    signed = [not (max(f) >= 0.01 * signed_max) for f in x]
    np.testing.assert_array_equal(sparse_mask(x), strict)
    np.testing.assert_array_equal(sparse_mask(x, rule="p2-le"), le)
    np.testing.assert_array_equal(sparse_mask(x, rule="p3-signed"), signed)
    assert not strict[5] and le[5] and signed[6]
    assert sparsity(x) == pytest.approx(np.mean(strict))
    with pytest.raises(ValueError):
        sparse_mask(x, rule="signed")


def test_all_zero_layer_sparsity_value():
    zeros = np.zeros((10, 9))
    assert sparsity(zeros) == 1.0 and sparsity(zeros, zero_layer_value=0.0) == 0.0
    assert sparsity(zeros, rule="p3-signed") == 1.0
    assert np.isnan(sparsity(np.zeros((0, 9))))


# --- variance entropy -------------------------------------------------------------------------------------------


def svd_entropy(x: np.ndarray) -> float:
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    return float(entropy(s**2 / (len(x) - 1), base=10))


def test_variance_entropy_equals_svd_formula(rng, trained_like):
    assert variance_entropy(trained_like) == pytest.approx(svd_entropy(trained_like), rel=1e-10)
    small = rng.normal(0, 1, (3, 9))  # rank 2 after centring
    assert variance_entropy(small) == pytest.approx(svd_entropy(small), rel=1e-10, abs=1e-12)
    assert 0 <= variance_entropy(rng.normal(0, 1, (5000, 9))) <= np.log10(9)


def test_variance_entropy_edge_cases(rng):
    assert variance_entropy(np.zeros((64 * 16, 9))) == 0.0
    assert variance_entropy(np.ones((64 * 16, 9))) == 0.0
    identical = np.tile(rng.normal(0, 0.1, 9).astype(np.float32), (1001, 1))  # mean is not exact in float64
    assert variance_entropy(identical) == 0.0
    assert np.isnan(variance_entropy(np.ones((1, 9)))) and np.isnan(variance_entropy(np.zeros((0, 9))))


def test_entropy_threshold_reference_values():
    for n, value in [(9, 0.5515), (27, 0.8226), (64, 0.9056), (128, 0.9321), (576, 0.9485), (4096, 0.9511)]:
        assert round(entropy_threshold(n), 4) == value
    assert round(entropy_threshold(16384), 4) == pytest.approx(0.9513)
    np.testing.assert_allclose(
        entropy_threshold(np.array([9, 27])), [entropy_threshold(9), entropy_threshold(27)]
    )


def test_uniform_random_layer_is_above_the_threshold(rng):
    w = rng.random((128, 128, 9))
    assert variance_entropy_norm(w.reshape(-1, 9)) > 1
    assert variance_entropy_norm(np.ones((64 * 16, 9))) == 0.0


def test_variance_entropy_clean_uses_kept_filters(rng):
    x = trained_layer(rng).reshape(-1, 9)
    kept = x[~sparse_mask(x)]
    assert variance_entropy_clean(x) == pytest.approx(svd_entropy(kept), rel=1e-10)
    assert variance_entropy_clean(x, rule="p2-le") == pytest.approx(
        svd_entropy(x[~sparse_mask(x, rule="p2-le")]), rel=1e-10
    )


# --- orthogonality ----------------------------------------------------------------------------------------------


def loop_orthogonality(layer: np.ndarray, compat: bool) -> float:
    rows = layer.reshape(len(layer), -1)
    c_out = len(rows)
    total = 0.0
    for i in range(c_out):
        for j in range(c_out):
            ni, nj = np.linalg.norm(rows[i]), np.linalg.norm(rows[j])
            if i == j:
                total += (1.0 if ni == 0 else 0.0) if compat else 0.0
            elif ni == 0 or nj == 0:
                total += 0.0 if compat else 1.0
            else:
                total += abs(rows[i] @ rows[j]) / (ni * nj)
    return 1 - total / (c_out * (c_out - 1))


def test_orthogonality_equals_a_loop_over_pairs(rng):
    layer = rng.normal(0, 1, (12, 4, 9))
    layer[3] = 0.0
    layer[7] = 2 * layer[2]
    for compat in (False, True):
        assert orthogonality(layer, compat=compat) == pytest.approx(
            loop_orthogonality(layer, compat), abs=1e-12
        )


def test_orthogonality_edge_cases():
    zeros = np.zeros((64, 16, 3, 3))
    assert orthogonality(zeros) == 0.0
    assert orthogonality(zeros, compat=True) == pytest.approx(1 - 1 / 63)
    ones = np.ones((64, 16, 9))
    for compat in (False, True):
        assert abs(orthogonality(ones, compat=compat)) < 1e-5
        assert orthogonality(0.1 * ones, compat=compat) == pytest.approx(
            orthogonality(ones, compat=compat), abs=1e-5
        )
        assert np.isnan(orthogonality(np.ones((1, 16, 9)), compat=compat))
    assert orthogonality(np.eye(9).reshape(9, 1, 9)) == pytest.approx(1.0)


# --- degeneration and binary likeness ---------------------------------------------------------------------------


def test_is_degenerated_rule():
    th = entropy_threshold(576)
    assert is_degenerated(th - 0.01, th, 0.0)
    assert not is_degenerated(th - 0.03, th, 0.5)
    assert is_degenerated(0.4, th, 0.14)
    assert not is_degenerated(0.4, th, 0.13)
    assert not is_degenerated(0.6, th, 0.9)
    assert not is_degenerated(float("nan"), th, 1.0)
    assert is_degenerated(0.6, th, 0.2, low_entropy=0.7)


def test_gaussian_baseline_matches_monte_carlo(rng):
    x = rng.normal(0, 1, (100000, 9))
    a = np.abs(x / np.abs(x).max(axis=1, keepdims=True))
    a[np.arange(len(a)), a.argmax(axis=1)] = np.nan
    a = a[~np.isnan(a)]
    for tol in (0.02, 0.05, 0.1):
        assert _gaussian_ternary_share(tol) == pytest.approx(np.mean((a <= tol) | (a >= 1 - tol)), abs=3e-3)


def test_binary_likeness_of_ternary_and_gaussian_layers(rng):
    ternary = rng.choice([-1.0, 0.0, 1.0], size=(4096, 9)) * rng.lognormal(-3, 0.5, (4096, 1))
    ternary[np.abs(ternary).max(axis=1) == 0, 4] = 0.02
    assert binary_likeness(ternary) == 1.0
    assert n_levels(ternary) <= 3
    assert binary_likeness(rng.normal(0, 0.05, (4096, 9))) < 0.02
    noisy = ternary + rng.normal(0, 0.01, ternary.shape) * np.abs(ternary).max(axis=1, keepdims=True)
    assert 0.5 < binary_likeness(noisy) < 1.0
    assert np.isnan(binary_likeness(np.zeros((3, 9))))
    with pytest.raises(ValueError):
        binary_likeness(ternary, tol=0.5)


def test_binary_likeness_equals_the_drop_the_peak_definition(rng):
    """Zero rows, tied peaks and values on the tolerance bounds: same score as dropping each first peak."""
    x = rng.normal(0, 1, (500, 9))
    x[::7] = 0.0
    x[1::11, 3] = np.abs(x[1::11]).max(axis=1)  # a second entry equal to the peak
    x[2::13, :2] = [0.05, 0.95]  # on the bounds after scaling by the peak 1.0
    x[2::13, 2:] = [1.0, *[0.0] * 6]
    nonzero = x[np.abs(x).max(axis=1) > 0]
    a = np.abs(nonzero / np.abs(nonzero).max(axis=1, keepdims=True))
    rest = np.stack([np.delete(row, row.argmax()) for row in a])
    for tol in (0.02, 0.05, 0.1):
        m0 = _gaussian_ternary_share(tol)
        share = np.mean((rest <= tol) | (rest >= 1 - tol))
        assert binary_likeness(x, tol) == float(np.clip((share - m0) / (1 - m0), 0, 1))


# --- one pass per layer -----------------------------------------------------------------------------------------


def test_layer_quality_agrees_with_the_single_metrics(rng):
    layer = trained_layer(rng)
    filters = layer.reshape(-1, 9)
    q = layer_quality(layer)
    mask = sparse_mask(filters)
    assert q["n_filters"] == 512 and q["n_sparse"] == mask.sum() > 0
    assert q["sparsity"] == sparsity(filters)
    assert q["variance_entropy"] == variance_entropy(filters)
    assert q["entropy_threshold"] == entropy_threshold(512)
    assert q["variance_entropy_norm"] == pytest.approx(variance_entropy_norm(filters))
    assert q["variance_entropy_clean"] == variance_entropy_clean(filters)
    assert q["variance_entropy_clean_norm"] == pytest.approx(
        variance_entropy_clean(filters) / entropy_threshold(int((~mask).sum()))
    )
    assert q["orthogonality"] == orthogonality(layer)
    assert q["orthogonality_compat"] == orthogonality(layer, compat=True)
    assert q["binary_likeness"] == binary_likeness(filters) and q["binary_like"] is False
    assert q["n_levels"] == n_levels(filters)
    assert q["degenerated"] == is_degenerated(q["variance_entropy"], q["entropy_threshold"], q["sparsity"])
    assert q["max_abs"] == np.abs(layer).max()
    scaled = maxabs_scale(filters)
    for key, subset in [
        ("moments_raw", filters),
        ("moments_scaled", scaled),
        ("moments_scaled_nonsparse", scaled[~mask]),
    ]:
        np.testing.assert_array_equal(q[key].to_flat(), Moments.of(subset).to_flat())


def test_layer_quality_of_degenerate_layers():
    zero = layer_quality(np.zeros((8, 4, 3, 3)))
    assert zero["sparsity"] == 1.0 and zero["variance_entropy"] == 0.0 and zero["orthogonality"] == 0.0
    assert zero["orthogonality_compat"] == pytest.approx(1 - 1 / 7) and zero["max_abs"] == 0.0
    assert np.isnan(zero["variance_entropy_clean"]) and zero["moments_scaled_nonsparse"].n == 0
    single = layer_quality(np.ones((1, 1, 9)))
    assert np.isnan(single["variance_entropy"]) and np.isnan(single["orthogonality"])
    assert single["degenerated"] is False
