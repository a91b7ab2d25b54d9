import numpy as np
import pytest

from filterlake.numeric.moments import FLAT_NAMES, FLAT_SIZE, Moments


def test_moments_of_matches_direct_sums(trained_like):
    m = Moments.of(trained_like)
    assert m.n == len(trained_like)
    np.testing.assert_allclose(m.sum, trained_like.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m.outer, np.einsum("ni,nj->ij", trained_like, trained_like), rtol=1e-12)
    np.testing.assert_allclose(m.mean, trained_like.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        m.covariance(), np.cov(trained_like, rowvar=False, ddof=1), rtol=1e-9, atol=1e-15
    )


def test_moments_add_across_chunks(trained_like):
    chunks = np.array_split(trained_like, [7, 1000, 1001, 3500])
    total = sum((Moments.of(c) for c in chunks), Moments.zero())
    whole = Moments.of(trained_like)
    assert total.n == whole.n
    np.testing.assert_allclose(total.sum, whole.sum, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(total.outer, whole.outer, rtol=1e-12)


def test_flat_roundtrip_and_column_sums(trained_like):
    chunks = np.array_split(trained_like, 4)
    flats = np.stack([Moments.of(c).to_flat() for c in chunks])
    assert flats.shape == (4, FLAT_SIZE) == (4, 55) and len(FLAT_NAMES) == 55
    assert FLAT_NAMES[:2] == ("n", "s0") and FLAT_NAMES[10:12] == ("o00", "o01") and FLAT_NAMES[-1] == "o88"
    summed = Moments.from_flat(flats.sum(axis=0))  # what SUM() over stored columns gives
    whole = Moments.of(trained_like)
    assert summed.n == whole.n
    np.testing.assert_allclose(summed.outer, whole.outer, rtol=1e-12)
    np.testing.assert_allclose(summed.sum, whole.sum, rtol=1e-12, atol=1e-15)
    back = Moments.from_flat(whole.to_flat())
    np.testing.assert_array_equal(back.outer, np.triu(whole.outer) + np.triu(whole.outer, 1).T)


def test_covariance_needs_two_filters():
    with pytest.raises(ValueError):
        Moments.of(np.ones((1, 9))).covariance()
    assert np.isnan(Moments.zero().mean).all()
