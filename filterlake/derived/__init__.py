"""Derived tables of the lake (layer statistics, basis, histograms, shifts): the analysis run over stored filters.

The numeric work lives in `filterlake.numeric` (arrays only); this package streams the lake through it and
stores the results next to the other tables, incrementally.
"""
