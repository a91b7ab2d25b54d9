"""Distribution shift D between groups: weighted symmetric KL of per-component coefficient histograms (methods §5)."""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float32).eps)  # floor for empty bins, applied to densities (methods §5 step 2)


def histogram_density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin probabilities of the papers: np.histogram density, empty bins set to float32 eps, renormalised to sum 1.

    Works on the last axis of ``counts`` (..., B); a histogram with no counts in range gives NaN. The eps floor is
    applied to the density values (count / width / total) before renormalising, exactly as the notebooks did.
    """
    counts = np.asarray(counts, dtype=np.float64)
    width = np.diff(np.asarray(edges, dtype=np.float64))
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        density = counts / width / total
    density[density == 0] = EPS
    return density / density.sum(axis=-1, keepdims=True)


def kl_symmetric(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p‖q) + KL(q‖p) in nats along the last axis, as Σ (p − q)(ln p − ln q); p and q must be positive."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    return np.sum((p - q) * (np.log(p) - np.log(q)), axis=-1)


def shift(
    counts_a: np.ndarray, counts_b: np.ndarray, edges: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """D = Σ_k w_k KL_sym(p_k, q_k) between two groups' counts (..., 9, B); returns (D (...), per-component (..., 9)).

    Leading axes broadcast, so a batch of group pairs is one call.
    """
    per_component = kl_symmetric(histogram_density(counts_a, edges), histogram_density(counts_b, edges))
    return per_component @ np.asarray(weights, dtype=np.float64), per_component


def shift_matrix(counts: np.ndarray, edges: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """D between all pairs of G groups' counts (G, 9, B) as a symmetric (G, G) matrix with zero diagonal.

    Uses KL_sym(p, q) = Σ p ln p + q ln q − p ln q − q ln p, so the matrix is a_i + a_j − M_ij − M_ji with
    a_i = Σ w p_i ln p_i and M = (w·P) Lᵀ: one matrix product; round-off below 0 is clipped to 0. Rows and
    columns of groups without counts in range are NaN.
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    p = histogram_density(counts, edges)
    log_p = np.log(p)
    weighted = (p * weights[:, None]).reshape(len(p), -1)
    log_p = log_p.reshape(len(p), -1)
    self_term = np.einsum("ij,ij->i", weighted, log_p)
    cross = weighted @ log_p.T
    matrix = np.maximum(self_term[:, None] + self_term[None, :] - cross - cross.T, 0.0)
    valid = np.isfinite(self_term)
    matrix[~valid, :] = np.nan
    matrix[:, ~valid] = np.nan
    matrix[np.diag_indices(len(p))] = np.where(valid, 0.0, np.nan)
    return matrix


def sort_by_column_mean(matrix: np.ndarray, labels: list[str] | np.ndarray) -> tuple[np.ndarray, list]:
    """Reorder rows and columns by ascending column mean (stable), as the papers' heatmaps with ``sort=True``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    order = np.argsort(matrix.mean(axis=0), kind="stable")
    return matrix[np.ix_(order, order)], [labels[i] for i in order]
