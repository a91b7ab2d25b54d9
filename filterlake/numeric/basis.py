"""The 9-component PCA basis of scaled filters, fitted from streamed moments (methods §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from filterlake.numeric.moments import Moments
from filterlake.numeric.normalise import as_filter_matrix

SIGN_RULE = "max-abs-loading-positive"


@dataclass(frozen=True, eq=False)
class Basis:
    """A fitted basis: ``mean`` (9,), ``components`` (9, 9) rows by descending variance, their variances and ratios."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    evr: np.ndarray
    n: int
    sign_rule: str = SIGN_RULE

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (plain lists) for storing the basis next to the results computed with it."""
        return {
            "mean": self.mean.tolist(),
            "components": self.components.tolist(),
            "explained_variance": self.explained_variance.tolist(),
            "evr": self.evr.tolist(),
            "n": int(self.n),
            "sign_rule": self.sign_rule,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Basis:
        """Inverse of ``to_dict``; checks the array shapes."""
        basis = cls(
            mean=np.asarray(data["mean"], dtype=np.float64),
            components=np.asarray(data["components"], dtype=np.float64),
            explained_variance=np.asarray(data["explained_variance"], dtype=np.float64),
            evr=np.asarray(data["evr"], dtype=np.float64),
            n=int(data["n"]),
            sign_rule=str(data.get("sign_rule", SIGN_RULE)),
        )
        shapes = (basis.mean.shape, basis.components.shape, basis.explained_variance.shape, basis.evr.shape)
        if shapes != ((9,), (9, 9), (9,), (9,)):
            raise ValueError(f"basis arrays have shapes {shapes}, expected (9,), (9, 9), (9,), (9,)")
        return basis


def fit_basis(moments: Moments) -> Basis:
    """Fit the PCA basis from (summed) moments: eigh of the ddof=1 covariance, the exact streaming form of sklearn PCA.

    Eigenvalues are sorted descending and clipped at 0 (round-off), so ``explained_variance`` equals S²/(N−1) of
    the SVD of the centred data and ``evr`` = λ/Σλ. Each component is flipped so that its largest-|loading| entry
    (the first one on exact ties) is positive (``sign_rule``), which makes the basis deterministic.
    """
    eigval, eigvec = np.linalg.eigh(moments.covariance())
    order = np.argsort(eigval)[::-1]
    variance = np.clip(eigval[order], 0.0, None)
    if variance.sum() <= 0:
        raise ValueError("all filters are identical: the basis is undefined")
    components = eigvec[:, order].T
    peak = components[np.arange(9), np.abs(components).argmax(axis=1)]
    components = components * np.where(peak < 0, -1.0, 1.0)[:, None]
    return Basis(moments.mean, components, variance, variance / variance.sum(), moments.n)


def transform(basis: Basis, scaled_filters: np.ndarray) -> np.ndarray:
    """Coefficients c = (f̃ − μ) Vᵀ of max-abs-scaled filters, shape (n, 9) (sklearn ``PCA.transform``)."""
    return (as_filter_matrix(scaled_filters) - basis.mean) @ basis.components.T
