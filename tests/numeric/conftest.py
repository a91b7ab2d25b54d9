"""Shared random data for the analysis tests: trained-like 3x3 filters with a clear variance spectrum."""

from __future__ import annotations

import numpy as np
import pytest


def make_trained_like(rng: np.random.Generator, n: int, zero_share: float = 0.02) -> np.ndarray:
    """(n, 9) filters: anisotropic Gaussian around a slightly negative mean, with a share of all-zero filters."""
    mixing = rng.standard_normal((9, 9)) * np.geomspace(1.0, 0.05, 9)[:, None]
    filters = rng.standard_normal((n, 9)) @ mixing - 0.05
    filters *= rng.lognormal(-3.0, 0.5, size=(n, 1))  # per-filter magnitudes, as in a trained layer
    filters[rng.random(n) < zero_share] = 0.0
    return filters


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20221025)


@pytest.fixture
def trained_like(rng: np.random.Generator) -> np.ndarray:
    return make_trained_like(rng, 5000)
