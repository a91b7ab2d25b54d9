"""Numeric filter analysis on arrays only (no files): scaling, basis, histograms, shift D, layer quality, tests."""
from filterlake.numeric.basis import Basis, fit_basis, transform
from filterlake.numeric.histogram import bin_edges, histogram_counts
from filterlake.numeric.kde import binned_kde, histogram_quantile, silverman_bandwidth
from filterlake.numeric.moments import FLAT_NAMES, Moments
from filterlake.numeric.normalise import as_filter_matrix, maxabs_scale
from filterlake.numeric.presets import PRESETS, Preset
from filterlake.numeric.quality import (
    binary_likeness,
    entropy_threshold,
    is_degenerated,
    layer_quality,
    n_levels,
    orthogonality,
    sparse_mask,
    sparsity,
    variance_entropy,
    variance_entropy_clean,
    variance_entropy_norm,
)
from filterlake.numeric.shift import (
    histogram_density,
    kl_symmetric,
    shift,
    shift_matrix,
    sort_by_column_mean,
)
from filterlake.numeric.significance import PermutationResult, permutation_test

__all__ = [
    "FLAT_NAMES", "PRESETS", "Basis", "Moments", "PermutationResult", "Preset", "as_filter_matrix", "bin_edges",
    "binary_likeness", "binned_kde", "entropy_threshold", "fit_basis", "histogram_counts", "histogram_density",
    "histogram_quantile", "is_degenerated", "kl_symmetric", "layer_quality", "maxabs_scale", "n_levels",
    "orthogonality", "permutation_test", "shift", "shift_matrix", "silverman_bandwidth", "sort_by_column_mean",
    "sparse_mask", "sparsity", "transform", "variance_entropy", "variance_entropy_clean", "variance_entropy_norm",
]
