"""Keras and TFLite checkpoints through the whole pipeline: detected by content, ingested into the lake with the
filters the readers give, exactly, and re-ingesting adds nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from filterlake.extract import iter_filters, model_shape
from filterlake.ingest import ingest
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.readers import open_checkpoint
from filterlake.vocab import INGESTED, PRESENT
from tests.readers.keras_models import write_keras2, write_keras3
from tests.readers.test_tflite import _ops, _tensors
from tests.readers.tflite_fixtures import Model, build


def _expected(path: Path) -> tuple[str, int, np.ndarray]:
    """Format, 3x3 layers and all filters of a checkpoint, read directly by its reader."""
    checkpoint = open_checkpoint(path)
    shape = model_shape(checkpoint)
    filters = np.concatenate([f for _, f in iter_filters(shape)])
    return checkpoint.format, len(shape.layers), filters


def test_keras_and_tflite_files_are_ingested_exactly(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_keras2(folder / "seg.hdf5")
    write_keras3(folder / "net.keras")
    (folder / "face.tflite").write_bytes(build(Model(_tensors(), _ops(), [0], [23])))
    lake = tmp_path / "lake"
    outcomes = ingest([str(folder)], lake)
    assert [o.status for o in outcomes] == [INGESTED] * 3, [o.message for o in outcomes]
    con = connect(lake)
    for outcome in outcomes:
        fmt, n_layers, filters = _expected(Path(outcome.source))
        row = con.execute(
            "SELECT format, n_layers_3x3, n_filters_3x3 FROM models WHERE model_id = ?", [outcome.model_id]
        ).fetchone()
        assert row == (fmt, n_layers, len(filters))
        stored = con.execute(
            "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? "
            "ORDER BY layer_idx, filter_idx",
            [outcome.model_id],
        ).fetchnumpy()
        np.testing.assert_array_equal(np.column_stack([stored[f"w{i}"] for i in range(9)]), filters)
    assert {r[0] for r in con.execute("SELECT format FROM models").fetchall()} == {
        "keras-h5",
        "keras",
        "tflite",
    }
    assert [o.status for o in ingest([str(folder)], lake)] == [PRESENT] * 3
    assert check_lake(lake).ok
