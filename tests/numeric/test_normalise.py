import numpy as np
import pytest

from filterlake.numeric.normalise import as_filter_matrix, maxabs_scale


def test_maxabs_scale_matches_direct_division(trained_like):
    x = trained_like
    peak = np.abs(x).max(axis=1)
    expected = x / np.where(peak == 0, 1.0, peak)[:, None]
    scaled = maxabs_scale(x)
    np.testing.assert_array_equal(scaled, expected)
    nonzero = peak > 0
    np.testing.assert_array_equal(np.abs(scaled[nonzero]).max(axis=1), 1.0)
    np.testing.assert_array_equal(scaled[~nonzero], 0.0)
    assert (~nonzero).any()


def test_maxabs_scale_accepts_3x3_and_rejects_other_shapes(trained_like):
    np.testing.assert_array_equal(maxabs_scale(trained_like.reshape(-1, 3, 3)), maxabs_scale(trained_like))
    with pytest.raises(ValueError):
        as_filter_matrix(np.zeros((4, 8)))


def test_fp16_compat_reproduces_the_notebook_scale(trained_like):
    x16 = trained_like.astype(np.float16)
    den = np.abs(x16).max(axis=1)
    den = np.where(den == 0, 1, den)[:, None]
    notebook = (x16 / den).astype(np.float64)
    np.testing.assert_array_equal(maxabs_scale(trained_like, fp16_compat=True), notebook)
    assert maxabs_scale(trained_like, fp16_compat=True).dtype == np.float64
