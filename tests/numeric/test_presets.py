import numpy as np
import pytest

from filterlake.numeric.basis import fit_basis
from filterlake.numeric.moments import Moments
from filterlake.numeric.normalise import maxabs_scale
from filterlake.numeric.presets import PRESETS, Preset


def test_paper_presets():
    medical, db = PRESETS["medical"], PRESETS["cnn-filter-db"]
    assert (medical.bins, medical.range, medical.weights, medical.exclude_sparse) == (
        70,
        (-3.0, 3.0),
        "uniform",
        False,
    )
    assert (db.bins, db.range, db.weights, db.exclude_sparse) == (70, None, "evr", False)


def test_weights_and_range(trained_like):
    basis = fit_basis(Moments.of(maxabs_scale(trained_like)))
    np.testing.assert_array_equal(PRESETS["medical"].weights_for(basis), np.full(9, 1 / 9))
    np.testing.assert_array_equal(PRESETS["cnn-filter-db"].weights_for(basis), basis.evr)
    assert PRESETS["cnn-filter-db"].weights_for(basis).sum() == pytest.approx(1.0)
    assert PRESETS["medical"].range_for(-2.9, 3.1) == (-3.0, 3.0)
    assert PRESETS["cnn-filter-db"].range_for(-2.9, 3.1) == (-2.9, 3.1)
    with pytest.raises(ValueError):
        Preset("bad", weights="equal")
