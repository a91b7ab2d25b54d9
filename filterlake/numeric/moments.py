"""Additive sufficient statistics (count, sum, sum of outer products) of filters, for a streamed basis fit (methods §3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from filterlake.numeric.normalise import as_filter_matrix

_IU = np.triu_indices(9)
FLAT_SIZE = 1 + 9 + len(_IU[0])  # n, sum, upper triangle of the outer-product sum: 55 values
FLAT_NAMES = (
    "n",
    *(f"s{i}" for i in range(9)),
    *(f"o{i}{j}" for i, j in zip(*_IU)),
)  # column names for to_flat


@dataclass(frozen=True, eq=False)
class Moments:
    """Count ``n``, ``sum`` (9,) and ``outer`` (9, 9) = sum of x xᵀ of a set of filters; partitions add with ``+``."""

    n: int
    sum: np.ndarray
    outer: np.ndarray

    @classmethod
    def zero(cls) -> Moments:
        """The statistics of an empty set, the neutral element of ``+``."""
        return cls(0, np.zeros(9), np.zeros((9, 9)))

    @classmethod
    def of(cls, filters: np.ndarray) -> Moments:
        """The statistics of an (n, 9) filter array, accumulated in float64."""
        x = as_filter_matrix(filters)
        return cls(len(x), x.sum(axis=0), x.T @ x)

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.sum + other.sum, self.outer + other.outer)

    @property
    def mean(self) -> np.ndarray:
        """Mean filter Σx/n (NaN for an empty set)."""
        return self.sum / self.n if self.n else np.full(9, np.nan)

    def covariance(self) -> np.ndarray:
        """Sample covariance (Σxxᵀ − n μμᵀ)/(n − 1), ddof=1 as sklearn's explained_variance; needs n >= 2."""
        if self.n < 2:
            raise ValueError(f"the covariance needs at least 2 filters, got {self.n}")
        mu = self.mean
        cov = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return (cov + cov.T) / 2

    def to_flat(self) -> np.ndarray:
        """Pack as 55 float64 values [n, sum_0..8, outer_ij for i <= j row-major] so they can be stored and SUMmed."""
        return np.concatenate([[float(self.n)], self.sum, self.outer[_IU]])

    @classmethod
    def from_flat(cls, flat: np.ndarray) -> Moments:
        """Inverse of ``to_flat`` (also for column-wise sums of several packed vectors)."""
        v = np.asarray(flat, dtype=np.float64)
        if v.shape != (FLAT_SIZE,):
            raise ValueError(f"expected {FLAT_SIZE} values, got shape {v.shape}")
        outer = np.zeros((9, 9))
        outer[_IU] = v[10:]
        outer = outer + np.triu(outer, 1).T
        return cls(round(float(v[0])), v[1:10].copy(), outer)
