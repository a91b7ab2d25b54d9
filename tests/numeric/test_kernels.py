"""The compiled path (numeric/kernels.py) equals the numpy reference: counts exactly, floats to 1e-12 relative.

Layers come from hypothesis (with all-zero filters, identical filters, NaN/Inf channels, one output channel,
quantised values that tie with the binary-likeness and level boundaries) and from the corpus lake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filterlake.derived.histograms import KDE_SPEC, HistSpec, SpecArrays
from filterlake.derived.layer_stats import finite_channels
from filterlake.numeric import histogram_kernel, kernels
from filterlake.numeric.basis import fit_basis, transform
from filterlake.numeric.histogram import bin_edges, histogram_counts
from filterlake.numeric.moments import FLAT_NAMES, Moments
from filterlake.numeric.normalise import maxabs_scale
from filterlake.numeric.params import DEFAULT_QUALITY, SPARSITY_RULES, QualityParams
from filterlake.numeric.quality import layer_quality, sparse_mask

RTOL = 1e-12
COUNTS = ("n_filters", "n_sparse", "n_levels", "binary_like", "degenerated")
# H = −Σ p log10 p of a (near) rank-deficient spectrum has eigenvalues at round-off (p ~ 1e-16), each adding
# ~ p·log10(1/p) ~ 2e-15 whatever the summation order: both paths are then right to 1e-12 absolute, not relative
ENTROPY_ATOL = 1e-12


def columns_of(layer: np.ndarray) -> np.ndarray:
    """(C_out, C_in, 9) -> the (9, n) float32 columns the kernels read."""
    return np.ascontiguousarray(layer.reshape(-1, 9).T, dtype=np.float32)


def reference_row(layer: np.ndarray, params: QualityParams) -> dict[str, float]:
    """The numpy reference's values by ROW_COLUMNS name (non-finite channels left out first)."""
    quality = layer_quality(finite_channels(layer.astype(np.float32)), params)
    row = {}
    for prefix, key in zip(
        kernels.MOMENT_PREFIXES, ("moments_raw", "moments_scaled", "moments_scaled_nonsparse")
    ):
        row.update(zip((f"{prefix}_{n}" for n in FLAT_NAMES), quality.pop(key).to_flat()))
    return {**row, **{k: float(v) for k, v in quality.items()}}


def assert_moments_close(got: np.ndarray, want: np.ndarray) -> None:
    """Flat moments: counts equal; sums and outer products within RTOL of the entries' scale
    (|Σx_i x_j| <= √(Σx_i² Σx_j²))."""
    a, b = Moments.from_flat(got), Moments.from_flat(want)
    assert a.n == b.n
    diag = np.sqrt(np.abs(np.diag(b.outer)))
    np.testing.assert_allclose(a.outer, b.outer, rtol=RTOL, atol=RTOL * np.outer(diag, diag).max(initial=0))
    np.testing.assert_allclose(a.sum, b.sum, rtol=RTOL, atol=RTOL * math.sqrt(b.n) * diag.max(initial=0))


def assert_quality_equal(layer: np.ndarray, params: QualityParams = DEFAULT_QUALITY) -> None:
    want = reference_row(layer, params)
    got = dict(zip(kernels.ROW_COLUMNS, kernels.layer_row(columns_of(layer), layer.shape[0], params)))
    assert got.keys() == want.keys()
    for prefix in kernels.MOMENT_PREFIXES:
        names = [f"{prefix}_{n}" for n in FLAT_NAMES]
        assert_moments_close(np.array([got[n] for n in names]), np.array([want[n] for n in names]))
    for key in kernels.METRICS:
        value = want[key]
        if key in COUNTS:
            assert got[key] == value, key
        elif math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            # orthogonality is 1 - mean |cos| in [0, 1]: for identical channels it is the cancellation of
            # 1 - |cos| ~ 1, exact only to a few float64 eps, so it is compared to 1e-12 of its scale, 1
            atol = (
                ENTROPY_ATOL
                if key.startswith("variance_entropy")
                else RTOL
                if key.startswith("orthogonality")
                else 1e-15
            )
            assert got[key] == pytest.approx(value, rel=RTOL, abs=atol), key


@st.composite
def layers(draw) -> np.ndarray:
    """(C_out, C_in, 9) float32-valued layers with the edge cases the analysis meets."""
    c_out, c_in = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["gauss", "ternary", "quantised", "identical", "zeros"]))
    shape = (c_out, c_in, 9)
    if kind == "gauss":
        w = rng.normal(0, 1, shape) * rng.lognormal(-3, 1, (c_out, c_in, 1))
    elif kind == "ternary":
        w = rng.integers(-1, 2, shape) * 0.25
    elif kind == "quantised":  # int8-like: scaled values tie with tol and with half level steps
        w = rng.integers(-128, 128, shape) / 64.0
    elif kind == "identical":
        w = np.broadcast_to(rng.normal(0, 1, 9), shape).copy()
    else:
        w = np.zeros(shape)
    zero = rng.random((c_out, c_in)) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    w[zero] = 0.0
    if draw(st.booleans()):
        w[rng.random((c_out, c_in)) < 0.3] *= 1e-4  # sparse filters
    if draw(st.booleans()):
        o, i, j = rng.integers(c_out), rng.integers(c_in), rng.integers(9)
        w[o, i, j] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return w.astype(np.float32)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers(), st.sampled_from(SPARSITY_RULES), st.sampled_from([0.0, 1.0]))
def test_layer_kernel_equals_reference(layer, rule, zero_value):
    assert_quality_equal(layer, QualityParams(rule=rule, zero_layer_value=zero_value))


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1), (64, 64), (2, 5000)])
def test_layer_kernel_equals_reference_on_trained_like_shapes(rng, shape):
    w = rng.normal(0, 0.05, (*shape, 9)) - 0.01
    w[rng.random(shape) < 0.1] *= 1e-4
    w[0, 0] = 0.0
    assert_quality_equal(w)


def test_layer_kernel_rejects_a_bad_layout():
    with pytest.raises(ValueError, match=r"\(9, c_out \* c_in\)"):
        kernels.layer_row(np.zeros((9, 10), np.float32), 3)


# --- histograms --------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(-4, 4, allow_nan=False),
            st.sampled_from([np.nan, np.inf, -np.inf, -3.0, 3.0, 0.0]),
            st.integers(0, 70).map(lambda i: float(bin_edges(-3, 3)[i])),  # ties on edges
            st.integers(0, 70).map(lambda i: float(np.nextafter(bin_edges(-3, 3)[i], np.inf))),
        ),
        min_size=0,
        max_size=200,
    ),
    st.sampled_from([(-3.0, 3.0, 70), (-2.7183, 3.1416, 70), (0.0, 0.0, 4), (-3.5, 3.5, 350)]),
)
def test_binning_equals_histogram_counts(values, spec):
    lo, hi, bins = spec
    c = np.resize(np.array(values, np.float64), (len(values) // 3 * 3,)).reshape(-1, 3)
    arrays = SpecArrays.of([HistSpec(lo, hi, bins)])
    got = histogram_kernel.bin_counts(c, arrays.los[0], arrays.his[0], bins, arrays.edges[0])
    np.testing.assert_array_equal(got, histogram_counts(c, lo, hi, bins))


def reference_histograms(layer: np.ndarray, basis, specs, params: QualityParams):
    filters = finite_channels(layer).reshape(-1, 9).astype(np.float64)
    coefficients = transform(basis, maxabs_scale(filters))
    kept = ~sparse_mask(filters, params.eps, params.rule, params.zero_layer_value)
    counts = [
        histogram_counts(coefficients if s.subset == "all" else coefficients[kept], s.lo, s.hi, s.bins)
        for s in specs
    ]
    return counts, coefficients


def assert_histograms_equal(layer: np.ndarray, basis, specs, params: QualityParams = DEFAULT_QUALITY) -> None:
    a = SpecArrays.of(specs)
    counts, extents = histogram_kernel.histogram_pass(
        columns_of(layer), layer.shape[0], params.eps, SPARSITY_RULES.index(params.rule),
        params.zero_layer_value == 1.0, basis.mean, basis.components, a.los, a.his, a.bins, a.nonsparse,
        a.edges,
    )  # fmt: skip
    want, coefficients = reference_histograms(layer, basis, specs, params)
    for row, spec in enumerate(specs):
        np.testing.assert_array_equal(counts[row, :, : spec.bins], want[row])
        assert not counts[row, :, spec.bins :].any()
    if len(coefficients):
        scale = np.abs(coefficients).max()
        np.testing.assert_allclose(extents[0], coefficients.min(axis=0), rtol=RTOL, atol=RTOL * scale)
        np.testing.assert_allclose(extents[1], coefficients.max(axis=0), rtol=RTOL, atol=RTOL * scale)


@pytest.fixture(scope="module")
def basis():
    rng = np.random.default_rng(5)
    return fit_basis(Moments.of(maxabs_scale(rng.normal(0, 1, (4000, 9)) @ rng.normal(0, 1, (9, 9)))))


SPECS = [KDE_SPEC, HistSpec(-3, 3, 70, "all"), HistSpec(-3, 3, 70, "nonsparse"), HistSpec(-0.5, 0.5, 7)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers())
def test_histogram_kernel_equals_reference(basis, layer):
    assert_histograms_equal(layer, basis, SPECS)


# --- the corpus ----------------------------------------------------------------------------------------------------


def test_kernels_equal_reference_on_the_corpus(corpus_lake, basis):
    from filterlake.derived.layer_stats import iter_layer_columns
    from filterlake.lake.layout import committed_ids

    seen = 0
    for model_id in sorted(committed_ids(corpus_lake)):
        for _layer_idx, c_out, columns in iter_layer_columns(corpus_lake, model_id):
            layer = columns.T.reshape(c_out, columns.shape[1] // max(c_out, 1), 9).copy()
            assert_quality_equal(layer)
            assert_histograms_equal(layer, basis, SPECS[:3])
            seen += 1
    assert seen > 100


def test_identical_output_channels_agree_to_the_scale_of_orthogonality() -> None:
    """Every output channel the same (orthogonality 0 up to round-off): the case hypothesis found in CI."""
    channel = np.random.default_rng(1).standard_normal((1, 8, 3, 3)).astype(np.float32)
    assert_quality_equal(np.repeat(channel, 16, axis=0))
