"""Numeric filter analysis on arrays only (no files): parameters, scaling, moments, basis, histograms, KDE,
shift D, layer quality and significance tests. Import the modules themselves (nothing is re-exported, so that
importing one does not import scipy for all)."""
