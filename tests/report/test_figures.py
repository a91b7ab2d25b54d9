"""Figures drawn from values at the edges of what an analysis gives."""

from __future__ import annotations

import numpy as np
from PIL import Image

from filterlake.report import figures


def test_the_null_figure_draws_a_bootstrap_interval_that_misses_the_observed_shift(tmp_path):
    """Regression (`make bench`'s 30-model zoo): a bootstrap interval entirely above the observed D, which a
    biased statistic on few models gives, made the error bars around it fail with negative lengths."""
    null = np.random.default_rng(1).gamma(2.0, 0.01, 2000)
    for observed, ci in ((0.02, (0.03, 0.05)), (0.09, (0.01, 0.05)), (0.03, (0.02, 0.04))):
        path = figures.null_distribution(tmp_path / f"null{observed}.png", null, observed, ci, 0.4, 0.95)
        with Image.open(path) as image:
            assert image.size == (1100, 380)
