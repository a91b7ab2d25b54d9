"""Filter-matrix validation and per-filter max-abs scaling, the normalisation applied before the basis (methods §2)."""

from __future__ import annotations

import numpy as np


def as_filter_matrix(filters: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Return filters as an (n, 9) array of ``dtype``, accepting (n, 9) or (n, 3, 3), so every function checks alike."""
    x = np.asarray(filters, dtype=dtype)
    if x.ndim == 3 and x.shape[1:] == (3, 3):
        x = x.reshape(-1, 9)
    if x.ndim != 2 or x.shape[1] != 9:
        raise ValueError(f"expected filters of shape (n, 9) or (n, 3, 3), got {x.shape}")
    return x


def maxabs_scale(
    filters: np.ndarray, fp16_compat: bool = False, peak: np.ndarray | None = None
) -> np.ndarray:
    """Divide each filter by its own max |w| so that shapes, not magnitudes, are compared; returns float64 (n, 9).

    Parameters
    ----------
    filters : array of shape (n, 9) or (n, 3, 3)
        Raw filters, one row-major 3x3 kernel per row.
    fp16_compat : bool, default False
        Cast to float16 and scale in float16, as CNN-Filter-DB ``main.ipynb`` did (bit-level notebook parity
        only); the result is still returned as float64.
    peak : array of shape (n,), optional
        The filters' max |w| when the caller already has them (layer_quality shares them across metrics).

    All-zero rows keep divisor 1 and stay zero; every other row has at least one entry equal to +-1.
    """
    x = as_filter_matrix(filters, np.float16 if fp16_compat else np.float64)
    if peak is None:
        peak = np.abs(x).max(axis=1)
    return (x / np.where(peak == 0, 1, peak)[:, None]).astype(np.float64, copy=False)
