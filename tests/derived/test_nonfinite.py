"""NaN/Inf weights are ingested, counted and flagged, never dropped silently; the analysis leaves them out."""

from __future__ import annotations

import math

import numpy as np
from safetensors.numpy import save_file

from filterlake.derived.analyze import analyze
from filterlake.ingest import ingest_file
from filterlake.lake.duck import connect


def test_nonfinite_weights_are_kept_counted_and_skipped_by_the_analysis(tmp_path):
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(6, 4, 3, 3)).astype(np.float32)
    weight[2, 1, 0, 0] = np.nan
    weight[5, 3, 2, 2] = np.inf
    other = rng.normal(size=(8, 6, 3, 3)).astype(np.float32)
    save_file({"a.weight": weight, "b.weight": other}, str(tmp_path / "m.safetensors"))
    lake = tmp_path / "lake"
    outcome = ingest_file(tmp_path / "m.safetensors", lake)
    assert outcome.status == "ingested" and outcome.n_filters == 24 + 48
    con = connect(lake)
    assert con.execute("SELECT n_nonfinite, message FROM models").fetchone() == (
        2,
        "2 NaN/Inf weight values kept and flagged",
    )
    assert con.execute("SELECT n_nonfinite FROM layers ORDER BY layer_idx").fetchall() == [(2,), (0,)]
    stored = con.execute("SELECT w0 FROM filters WHERE layer_idx = 0 AND filter_idx = 9").fetchone()[0]
    assert math.isnan(stored)
    analysis = analyze(lake, "medical", ("name",))
    assert analysis.basis.n == 24 - 8 + 48  # output channels 2 and 5 (4 filters each) are left out
    rows = (
        connect(lake)
        .execute(
            "SELECT layer_idx, n_filters, sparsity, variance_entropy, orthogonality "
            "FROM layer_stats ORDER BY layer_idx"
        )
        .fetchall()
    )
    assert [r[1] for r in rows] == [16, 48] and all(math.isfinite(v) for r in rows for v in r[2:])
