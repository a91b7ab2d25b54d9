"""The analysis over a real lake equals an independent numpy/scipy recomputation from the raw filters."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.stats

from filterlake.derived.analyze import analyze
from filterlake.ingest import ingest
from filterlake.lake.duck import connect
from filterlake.lake.schema import moment_columns


@pytest.fixture(scope="module")
def analysed(corpus_lake, tmp_path_factory):
    lake = tmp_path_factory.mktemp("analysed") / "lake"
    shutil.copytree(corpus_lake, lake)
    return lake, analyze(lake, "medical", ("domain", "medical", "depth_decile"))


# Exports of one network in two formats (the corpus holds two such pairs): the analysis counts each once.
CORPUS_DUPLICATES = {
    frozenset({"Ultra-Light face detector RFB-320 (ONNX)", "Ultra-Light face detector RFB-320 (PyTorch)"}),
    frozenset({"unet2d_nuclei_broad (ONNX)", "unet2d_nuclei_broad (TorchScript)"}),
}
MERGED_FILTERS = 7_872 + 48_656  # the 3x3 filters of each pair's second export


def raw_filters(lake, analysis):
    """Domain and filters of every model the analysis counts."""
    con = connect(lake, analysis.model_ids)
    rows = con.execute(
        "SELECT m.domain, f.w0, f.w1, f.w2, f.w3, f.w4, f.w5, f.w6, f.w7, f.w8 FROM filters f "
        "JOIN models m USING (model_id)"
    ).fetchnumpy()
    return rows["domain"], np.column_stack([rows[f"w{i}"] for i in range(9)]).astype(np.float64)


def reference_basis(filters):
    """sklearn-style PCA by SVD of the centred max-abs-scaled filters, max-|loading|-positive signs."""
    peak = np.abs(filters).max(axis=1, keepdims=True)
    scaled = filters / np.where(peak == 0, 1, peak)
    mean = scaled.mean(axis=0)
    _, s, vt = np.linalg.svd(scaled - mean, full_matrices=False)
    signs = np.sign(vt[np.arange(9), np.abs(vt).argmax(axis=1)])
    return scaled, mean, vt * signs[:, None], s**2 / (len(scaled) - 1)


def reference_shift(a, b, lo, hi, bins, weights):
    total = 0.0
    for k in range(9):
        p, _ = np.histogram(a[:, k], bins=bins, range=(lo, hi), density=True)
        q, _ = np.histogram(b[:, k], bins=bins, range=(lo, hi), density=True)
        p, q = p.astype(np.float64), q.astype(np.float64)
        p[p == 0] = np.finfo(np.float32).eps
        q[q == 0] = np.finfo(np.float32).eps
        p, q = p / p.sum(), q / q.sum()
        total += weights[k] * (scipy.stats.entropy(p, q) + scipy.stats.entropy(q, p))
    return total


def test_basis_equals_svd_of_all_scaled_filters(analysed):
    lake, analysis = analysed
    assert {frozenset(d.names) for d in analysis.duplicates} == CORPUS_DUPLICATES
    _, filters = raw_filters(lake, analysis)
    _, mean, components, variance = reference_basis(filters)
    # the corpus's 3x3 filters (incl. the vdsr pickle), each exported network once
    assert analysis.basis.n == len(filters) == 371_777 + 73_856 - MERGED_FILTERS
    np.testing.assert_allclose(analysis.basis.mean, mean, atol=1e-12)
    np.testing.assert_allclose(analysis.basis.explained_variance, variance, rtol=1e-9)
    np.testing.assert_allclose(analysis.basis.components, components, atol=1e-9)


def test_stored_domain_shift_equals_recomputation_from_filters(analysed):
    lake, analysis = analysed
    domains, filters = raw_filters(lake, analysis)
    scaled, mean, components, _ = reference_basis(filters)
    coefficients = (scaled - mean) @ components.T
    con = connect(lake)
    stored = {
        (a, b): d
        for a, b, d in con.execute(
            "SELECT group_a, group_b, shift FROM shifts WHERE group_by = 'domain' AND preset = 'medical'"
        ).fetchall()
    }
    pairs = [
        ("medical mri", "natural"),
        ("faces", "street scenes"),
        ("medical histology", "medical microscopy"),
    ]
    for a, b in pairs:
        expected = reference_shift(
            coefficients[domains == a], coefficients[domains == b], -3, 3, 70, [1 / 9] * 9
        )
        assert stored[a, b] == pytest.approx(expected, abs=1e-9)
        assert stored[b, a] == stored[a, b]
    labels = {a for a, _ in stored}
    assert labels == set(domains.tolist()) - {None} and all(stored[g, g] == 0 for g in labels)


def test_cnn_filter_db_preset_uses_global_range_and_evr(analysed):
    lake, _ = analysed
    analysis = analyze(lake, "cnn-filter-db", ("medical",))
    domains, filters = raw_filters(lake, analysis)
    scaled, mean, components, variance = reference_basis(filters)
    coefficients = (scaled - mean) @ components.T
    lo, hi = coefficients.min(), coefficients.max()  # the reference's own global range (P1 rule)
    assert (analysis.spec.lo, analysis.spec.hi) == pytest.approx((lo, hi), abs=1e-12)
    medical = np.array([d.startswith("medical") for d in domains])
    expected = reference_shift(
        coefficients[medical], coefficients[~medical], lo, hi, 70, variance / variance.sum()
    )
    con = connect(lake)
    [(stored,)] = con.execute(
        "SELECT shift FROM shifts WHERE group_by = 'medical' AND preset = 'cnn-filter-db' "
        "AND group_a = 'medical' AND group_b = 'non-medical'"
    ).fetchall()
    assert stored == pytest.approx(expected, abs=1e-9)


def test_stored_moments_are_reachable_from_sql(analysed):
    lake, _ = analysed
    con = connect(lake)
    sums = ", ".join(
        [f"sum(w{i})" for i in range(9)] + [f"sum(w{i} * w{j})" for i in range(9) for j in range(i, 9)]
    )
    model_id, layer_idx = con.execute(
        "SELECT model_id, layer_idx FROM layers ORDER BY n_filters DESC LIMIT 1"
    ).fetchone()
    from_sql = con.execute(
        f"SELECT count(*), {sums} FROM filters_scaled WHERE model_id = ? AND layer_idx = ?",
        [model_id, layer_idx],
    ).fetchone()
    stored = con.execute(
        f"SELECT {', '.join(moment_columns('sc'))} FROM layer_stats WHERE model_id = ? AND layer_idx = ?",
        [model_id, layer_idx],
    ).fetchone()
    np.testing.assert_allclose(stored, from_sql, rtol=1e-9, atol=1e-9)


def test_layer_stats_match_direct_metrics(analysed):
    lake, _ = analysed
    con = connect(lake)
    model_id, layer_idx, c_out, c_in = con.execute(
        "SELECT model_id, layer_idx, out_channels, in_channels FROM layers WHERE n_filters > 500 "
        "ORDER BY model_id, layer_idx LIMIT 1"
    ).fetchone()
    rows = con.execute(
        "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? AND layer_idx = ? "
        "ORDER BY filter_idx",
        [model_id, layer_idx],
    ).fetchall()
    w = np.array(rows, np.float64)
    t = 0.01 * np.abs(w).max()
    sparsity = np.mean(np.all(np.abs(w) < t, axis=1))
    s = np.linalg.svd(w - w.mean(axis=0), compute_uv=False)
    p = s**2 / (s**2).sum()
    entropy = -(p[p > 0] * np.log10(p[p > 0])).sum()
    rows_o = w.reshape(c_out, c_in * 9)
    unit = rows_o / np.linalg.norm(rows_o, axis=1, keepdims=True)
    cos = np.abs(unit @ unit.T)
    ortho = 1 - (cos.sum() - np.trace(cos)) / (c_out * (c_out - 1))
    got = con.execute(
        "SELECT sparsity, variance_entropy, orthogonality FROM layer_stats WHERE model_id = ? "
        "AND layer_idx = ?",
        [model_id, layer_idx],
    ).fetchone()
    assert got == pytest.approx((sparsity, entropy, ortho), abs=1e-9)


def test_new_model_does_not_recompute_others_and_regrouping_reads_no_filters(analysed, corpus, tmp_path):
    lake, _ = analysed
    fresh = tmp_path / "lake"
    shutil.copytree(lake, fresh)
    before = {p.name: p.stat().st_mtime_ns for p in (fresh / "layer_stats").glob("*.parquet")}
    extra = tmp_path / "extra"
    extra.mkdir()
    weights = np.random.default_rng(0).normal(size=(8, 3, 3, 3)).astype(np.float32)
    from safetensors.numpy import save_file

    save_file({"conv.weight": weights}, str(extra / "tiny.safetensors"))
    [outcome] = ingest([str(extra)], fresh)
    assert outcome.status == "ingested"
    analysis = analyze(fresh, "medical", ("domain",))
    assert analysis.stats == {"computed": 1, "reused": len(before), "removed": 0}
    after = {p.name: p.stat().st_mtime_ns for p in (fresh / "layer_stats").glob("*.parquet")}
    assert all(after[name] == mtime for name, mtime in before.items())
    # regrouping by other columns needs only stored statistics and histograms: hide the filters to prove it
    shutil.move(fresh / "filters", tmp_path / "hidden_filters")
    regrouped = analyze(fresh, "medical", ("task", "architecture", "depth_decile"))
    assert regrouped.basis_id == analysis.basis_id and regrouped.histograms["computed"] == 0
    rows = pq.read_table(regrouped.shifts["task"]).to_pylist()
    assert {r["group_a"] for r in rows} >= {"image classification (10 classes)", "face detection"}


def test_analysis_keeps_its_snapshot_while_an_ingest_commits(analysed, tmp_path):
    lake, first = analysed
    fresh = tmp_path / "lake"
    shutil.copytree(lake, fresh)
    newcomer = tmp_path / "new" / "late.safetensors"
    newcomer.parent.mkdir()
    from safetensors.numpy import save_file

    save_file(
        {"conv.weight": np.random.default_rng(1).normal(size=(16, 8, 3, 3)).astype(np.float32)}, str(newcomer)
    )
    committed = []

    def ingest_midway(_model_id):  # an ingest that commits while the analysis is running
        if not committed:
            committed.append(ingest([str(newcomer)], fresh)[0].model_id)

    during = analyze(fresh, "medical", ("name",), on_model=ingest_midway)
    assert committed and during.basis.n == first.basis.n  # the late model is not in this analysis
    names = {r["group_a"] for r in pq.read_table(during.shifts["name"]).to_pylist()}
    assert "late" not in names
    after = analyze(fresh, "medical", ("name",))
    assert after.basis.n == first.basis.n + 16 * 8 and after.stats["computed"] == 1
    assert "late" in {r["group_a"] for r in pq.read_table(after.shifts["name"]).to_pylist()}
