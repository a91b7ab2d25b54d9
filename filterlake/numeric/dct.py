"""Frequency content of 3x3 filters in the orthonormal 2-D DCT-II basis, from filters or from their stored moments
(docs/methods/dct.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from filterlake.numeric.moments import Moments
from filterlake.numeric.normalise import as_filter_matrix

LOW_CUTOFF = 1  # low frequency: u + v <= 1, i.e. the DC (0,0) and the two first-order gradients (0,1), (1,0)


def _dct_matrix(size: int = 3) -> np.ndarray:
    """The orthonormal 1-D DCT-II matrix C[k, n] = α_k cos(π (2n + 1) k / (2 size)), as scipy ``norm="ortho"``."""
    k, n = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    c = np.sqrt(2 / size) * np.cos(np.pi * (2 * n + 1) * k / (2 * size))
    c[0] /= np.sqrt(2)
    return c


DCT_BASIS = np.kron(
    _dct_matrix(), _dct_matrix()
)  # (9, 9) orthogonal: row 3u + v maps a row-major filter to Y[u, v]
ORDERS = np.add.outer(
    np.arange(3), np.arange(3)
).ravel()  # u + v of coefficient 3u + v: 0 (DC) ... 4 (checkerboard)


@dataclass(frozen=True, eq=False)
class FrequencyContent:
    """DCT energy of a set of n filters: per coefficient, per order u + v, and split into low and high frequency."""

    n: int
    energy: np.ndarray  # (9,) Σ_filters Y[u, v]², index 3u + v
    by_order: np.ndarray  # (5,) energy summed over coefficients with u + v = 0 ... 4
    low: float  # energy with u + v <= cutoff
    high: float  # energy with u + v > cutoff
    cutoff: int

    @property
    def high_share(self) -> float:
        """high / (low + high), the energy-weighted share of high frequency; NaN when all filters are zero."""
        total = self.low + self.high
        return self.high / total if total > 0 else float("nan")

    @classmethod
    def of_energy(cls, n: int, energy: np.ndarray, cutoff: int = LOW_CUTOFF) -> FrequencyContent:
        """Group a per-coefficient energy (9,) into orders and the low/high split at ``cutoff`` (0 ... 3)."""
        if not 0 <= cutoff <= 3:
            raise ValueError(f"cutoff must lie in 0 ... 3 (u + v), got {cutoff}")
        low, high = split_energy(energy, cutoff)
        return cls(n, energy, energy_by_order(energy), float(low), float(high), cutoff)


def dct_coefficients(filters: np.ndarray) -> np.ndarray:
    """The (n, 9) DCT-II coefficients of (n, 9) or (n, 3, 3) filters, == ``scipy.fft.dctn(f, norm="ortho")``."""
    return as_filter_matrix(filters) @ DCT_BASIS.T


def energy_from_outer(outer: np.ndarray) -> np.ndarray:
    """Per-coefficient energy diag(T Σxxᵀ Tᵀ) (..., 9) from sums of outer products Σxxᵀ (..., 9, 9).

    Exact because the energy of a linear map of x is a quadratic form in x; with T orthogonal the 9 energies
    sum to trace(Σxxᵀ) = Σ‖x‖² (Parseval). Leading axes broadcast, so all layers of a selection are one call.
    """
    outer = np.asarray(outer, dtype=np.float64)
    if outer.shape[-2:] != (9, 9):
        raise ValueError(f"expected outer-product sums (..., 9, 9), got {outer.shape}")
    return np.einsum("ki,...ij,kj->...k", DCT_BASIS, outer, DCT_BASIS)


def energy_by_order(energy: np.ndarray) -> np.ndarray:
    """Sum a per-coefficient energy (..., 9) over the coefficients of each order u + v: (..., 5)."""
    energy = np.asarray(energy, dtype=np.float64)
    return np.stack([energy[..., ORDERS == order].sum(axis=-1) for order in range(5)], axis=-1)


def split_energy(energy: np.ndarray, cutoff: int = LOW_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) energy (...) of a per-coefficient energy (..., 9): u + v <= cutoff against u + v > cutoff."""
    energy = np.asarray(energy, dtype=np.float64)
    low = ORDERS <= cutoff
    return energy[..., low].sum(axis=-1), energy[..., ~low].sum(axis=-1)


def frequency_content(filters: np.ndarray, cutoff: int = LOW_CUTOFF) -> FrequencyContent:
    """The frequency content of an (n, 9) filter array, computed from its DCT coefficients."""
    coefficients = dct_coefficients(filters)
    return FrequencyContent.of_energy(len(coefficients), (coefficients**2).sum(axis=0), cutoff)


def frequency_content_from_moments(moments: Moments, cutoff: int = LOW_CUTOFF) -> FrequencyContent:
    """The same from stored sufficient statistics (only Σxxᵀ is needed), so any selection of layers is a sum."""
    return FrequencyContent.of_energy(moments.n, energy_from_outer(moments.outer), cutoff)
