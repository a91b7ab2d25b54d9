"""The stored comparisons (family shifts, medical test, per-component KL) equal an independent recomputation
from the raw filters of a small lake, and live under the lake's contracts (schemas, paths, views, check)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.stats
from safetensors.numpy import save_file

from filterlake.derived.analyze import analyze
from filterlake.derived.comparisons import FAMILY_SHIFTS, MEDICAL_COMPONENTS, MEDICAL_TEST, TABLES
from filterlake.derived.controlled import CONTROLLED_TEST, FAMILY_CONTRASTS
from filterlake.ingest import ingest
from filterlake.lake import layout
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.numeric.shift import shift_matrix, sort_by_column_mean
from filterlake.numeric.significance import permutation_test

PERMUTATIONS, SEED = 300, 7
# name, architecture, domain, per-model filter pattern strength: three UNets, two ResNets, one VGG
MODELS = [
    ("unet-a", "UNet2d (4 levels)", "medical mri", 0.0),
    ("unet-b", "UNet", "medical histology", 0.8),
    ("unet-c", "UNet++ (nested)", "natural", 1.6),
    ("resnet-20", "ResNet-20", "natural", 0.4),
    ("resnet-56", "ResNet-56", "medical xray", 1.2),
    ("vgg16", "VGG16", "faces", 2.0),
]


def write_models(folder: Path, models: list[tuple[str, str, str, float]]) -> None:
    """Two 3x3 conv layers per model, Gaussian weights plus a model-specific filter pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern = np.array([1, 0, -1, 2, 0, -2, 1, 0, -1], np.float32).reshape(3, 3)
    for i, (name, architecture, domain, strength) in enumerate(models):
        rng = np.random.default_rng(i)
        weights = {
            "conv1.weight": rng.normal(size=(16, 3, 3, 3)) + strength * pattern,
            "conv2.weight": rng.normal(size=(12, 16, 3, 3)) - strength * pattern.T,
        }
        path = folder / f"{name}.safetensors"
        save_file({k: v.astype(np.float32) for k, v in weights.items()}, str(path))
        meta = {"name": name, "architecture": architecture, "domain": domain, "task": "classification"}
        path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("comparisons")
    write_models(root / "models", MODELS)
    lake = root / "lake"
    assert all(o.status == "ingested" for o in ingest([str(root / "models")], lake))
    return lake, analyze(lake, "medical", ("domain",), permutations=PERMUTATIONS, seed=SEED)


def reference_counts(lake: Path, analysis) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """(model ids sorted, names, domains, per-model histograms (M, 9, B)) from the raw filters with np.histogram."""
    con = connect(lake)
    rows = con.execute(
        "SELECT f.model_id, m.name, m.domain, f.w0, f.w1, f.w2, f.w3, f.w4, f.w5, f.w6, f.w7, f.w8 "
        "FROM filters AS f JOIN models AS m USING (model_id)"
    ).fetchnumpy()
    ids = sorted(set(rows["model_id"].tolist()))
    weights = np.column_stack([rows[f"w{i}"] for i in range(9)]).astype(np.float64)
    scaled = weights / np.abs(weights).max(axis=1, keepdims=True)
    coefficients = (scaled - analysis.basis.mean) @ analysis.basis.components.T
    spec = analysis.spec
    counts = np.zeros((len(ids), 9, spec.bins), np.int64)
    names, domains = [], []
    for i, model_id in enumerate(ids):
        mine = rows["model_id"] == model_id
        names.append(rows["name"][mine][0])
        domains.append(rows["domain"][mine][0])
        for k in range(9):
            counts[i, k] = np.histogram(coefficients[mine, k], bins=spec.bins, range=(spec.lo, spec.hi))[0]
    return ids, names, domains, counts


def stored(lake: Path, table: str) -> list[dict]:
    con = connect(lake)
    result = con.execute(f"SELECT * FROM {table}")
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, r)) for r in result.fetchall()]


def test_family_shifts_equal_shift_matrix_of_recomputed_histograms(small):
    lake, analysis = small
    _ids, names, _domains, counts = reference_counts(lake, analysis)
    rows = stored(lake, FAMILY_SHIFTS)
    assert {r["family"] for r in rows} == {"UNet", "ResNet"}  # VGG has one model
    for family, members in (("UNet", ["unet-a", "unet-b", "unet-c"]), ("ResNet", ["resnet-20", "resnet-56"])):
        mine = [r for r in rows if r["family"] == family]
        order = list(dict.fromkeys(r["group_a"] for r in mine))
        family_counts = np.stack([counts[names.index(n)] for n in members])
        expected, labels = sort_by_column_mean(
            shift_matrix(family_counts, analysis.spec.edges, analysis.weights()), members
        )
        assert order == labels
        got = np.array([r["shift"] for r in mine]).reshape(len(labels), len(labels))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
        assert all(r["n_filters_a"] == 16 * 3 + 12 * 16 and r["n_models_a"] == 1 for r in mine)
        assert all(r["basis_id"] == analysis.basis_id and r["group_by"] == "model" for r in mine)


def test_medical_test_equals_permutation_test_of_recomputed_histograms(small):
    lake, analysis = small
    _ids, _names, domains, counts = reference_counts(lake, analysis)
    labels = np.array([d.startswith("medical") for d in domains])
    expected = permutation_test(
        counts, labels, analysis.spec.edges, analysis.weights(), n_permutations=PERMUTATIONS, seed=SEED
    )
    [row] = stored(lake, MEDICAL_TEST)
    assert (row["n_permutations"], row["seed"], row["n_models_a"], row["n_models_b"]) == (
        PERMUTATIONS,
        SEED,
        3,
        3,
    )
    for name in (
        "observed",
        "p_value",
        "null_mean",
        "null_std",
        "null_q95",
        "ci_low",
        "ci_high",
        "confidence",
    ):
        assert row[name] == pytest.approx(getattr(expected, name), rel=1e-12, abs=1e-15), name
    np.testing.assert_allclose(row["null_distribution"], expected.null, rtol=1e-12, atol=1e-15)


def test_medical_components_equal_scipy_kl_of_pooled_histograms(small):
    lake, analysis = small
    _ids, _names, domains, counts = reference_counts(lake, analysis)
    medical = np.array([d.startswith("medical") for d in domains])
    rows = sorted(stored(lake, MEDICAL_COMPONENTS), key=lambda r: r["component"])
    width = np.diff(analysis.spec.edges)
    for k, row in enumerate(rows):
        pooled = []
        for group in (medical, ~medical):  # np.histogram(density=True), empty bins at float32 eps, sum 1
            density = counts[group, k].sum(axis=0) / width / counts[group, k].sum()
            density[density == 0] = np.finfo(np.float32).eps
            pooled.append(density / density.sum())
        p, q = pooled
        assert row["kl_sym"] == pytest.approx(scipy.stats.entropy(p, q) + scipy.stats.entropy(q, p), rel=1e-9)
        assert row["contribution"] == pytest.approx(row["kl_sym"] / 9, rel=1e-12)
    [test] = stored(lake, MEDICAL_TEST)
    assert sum(r["contribution"] for r in rows) == pytest.approx(test["observed"], rel=1e-9)


def test_comparisons_follow_the_lake_contracts(small):
    lake, analysis = small
    assert set(analysis.comparisons) == set(TABLES)
    for table, path in analysis.comparisons.items():
        assert path == layout.comparison_file(lake, table, analysis.basis_id, "medical")
        assert path.relative_to(lake).match(layout.GLOBS[table]) and path.is_file()
    report = check_lake(lake, repair_leftovers=False)
    assert report.ok, report.problems


def test_empty_comparisons_are_stored_empty_and_old_bases_are_pruned(tmp_path):
    write_models(tmp_path / "models", [m for m in MODELS if not m[2].startswith("medical")])
    lake = tmp_path / "lake"
    ingest([str(tmp_path / "models")], lake)
    old = analyze(lake, "medical", ("domain",), basis_on="domain = 'natural'", permutations=10)
    current = analyze(lake, "medical", ("domain",), permutations=10)
    assert old.basis_id != current.basis_id
    for table in (FAMILY_SHIFTS, MEDICAL_TEST, MEDICAL_COMPONENTS):  # no medical model, no family pair
        assert pq.read_table(current.comparisons[table]).num_rows == 0, table
    contrasts = pq.read_table(current.comparisons[FAMILY_CONTRASTS]).to_pylist()
    assert contrasts and all(r["n_medical"] == 0 and r["between_mean"] is None for r in contrasts)
    factors = pq.read_table(current.comparisons[CONTROLLED_TEST]).column("factor").to_pylist()
    assert set(factors) == {"domain"}  # the domains are still tested against each other
    assert not any(p.exists() for p in old.comparisons.values())  # the second analysis pruned the old basis
    assert check_lake(lake).ok
    assert all(p.exists() for p in current.comparisons.values())


def test_permutations_must_be_positive(small):
    from filterlake.derived.comparisons import store_comparisons
    from filterlake.errors import FilterlakeError

    with pytest.raises(FilterlakeError, match="at least 1"):
        store_comparisons(small[1], permutations=0)
