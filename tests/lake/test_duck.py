"""The views of sql/: usable on an empty lake, and they hide filters of uncommitted models."""

from __future__ import annotations

import numpy as np

from filterlake.lake.duck import connect
from filterlake.lake.layout import filters_dir
from tests.lake.test_writer import write


def test_views_on_an_empty_lake(tmp_path):
    con = connect(tmp_path)
    for view in ("models", "layers", "filters", "filters_scaled", "filters_meta", "skipped_layers"):
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)


def test_filters_of_uncommitted_models_are_invisible(tmp_path):
    write(tmp_path, "m1", [np.array([[0.5, -2, 1, 0, 0, 0, 0, 0, 0], [0] * 9], np.float32)])
    orphan = filters_dir(tmp_path, "zz")
    orphan.parent.mkdir(exist_ok=True)
    (filters_dir(tmp_path, "m1")).rename(orphan)  # pretend m1's rows belong to an uncommitted model
    assert connect(tmp_path).execute("SELECT count(*) FROM filters").fetchone() == (0,)


def test_scaled_view_divides_by_filter_peak(tmp_path):
    write(tmp_path, "m1", [np.array([[0.5, -2, 1, 0, 0, 0, 0, 0, 0], [0] * 9], np.float32)])
    con = connect(tmp_path)
    rows = con.execute("SELECT w0, w1, w2 FROM filters_scaled ORDER BY filter_idx").fetchall()
    assert rows == [(0.25, -1.0, 0.5), (0.0, 0.0, 0.0)]
    assert con.execute("SELECT count(*) FROM filters_meta WHERE name = 'm1'").fetchone() == (2,)
