"""Keras 3 sharded weights through the whole pipeline: a sharded .keras and a standalone manifest with its shards
are ingested with exactly the filters their readers give, the same filters as the unsharded files, once."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from filterlake.extract import iter_filters, model_shape
from filterlake.ingest import ingest
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.readers import open_checkpoint
from filterlake.vocab import INGESTED, PRESENT
from tests.readers.test_keras_sharded import SPLIT, THREE, write_sharded_folder, write_sharded_keras


def _filters(path: Path) -> np.ndarray:
    """All 3x3 filters of a checkpoint in lake order, read directly by its reader."""
    return np.concatenate([f for _, f in iter_filters(model_shape(open_checkpoint(path)))])


def _stored(lake: Path, model_id: str) -> tuple[tuple[object, ...], np.ndarray]:
    """The models row (format, n_files, file_bytes, n_filters_3x3) and the filters of one model in the lake."""
    con = connect(lake)
    row = con.execute(
        "SELECT format, n_files, file_bytes, n_filters_3x3 FROM models WHERE model_id = ?", [model_id]
    ).fetchone()
    stored = con.execute(
        "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? ORDER BY layer_idx, filter_idx",
        [model_id],
    ).fetchnumpy()
    return row, np.column_stack([stored[f"w{i}"] for i in range(9)])


def test_sharded_keras_is_ingested_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    path, _ = write_sharded_keras(folder / "net.keras", SPLIT)
    plain = tmp_path / "plain_net.keras"
    (folder / "plain_net.keras").rename(plain)
    lake = tmp_path / "lake"
    [outcome] = ingest([str(folder)], lake)
    assert outcome.status == INGESTED, outcome.message
    row, filters = _stored(lake, outcome.model_id)
    assert row == ("keras", 1, path.stat().st_size, len(filters))
    np.testing.assert_array_equal(filters, _filters(path))
    np.testing.assert_array_equal(filters, _filters(plain))
    assert [o.status for o in ingest([str(folder)], lake)] == [PRESENT]
    assert check_lake(lake).ok


def test_standalone_manifest_is_one_model_over_every_shard(tmp_path: Path) -> None:
    manifest, plain = write_sharded_folder(tmp_path / "w", THREE)
    files = open_checkpoint(manifest).files
    assert len(files) == 4
    lake = tmp_path / "lake"
    [outcome] = ingest([str(manifest)], lake)
    assert outcome.status == INGESTED, outcome.message
    row, filters = _stored(lake, outcome.model_id)
    assert row == ("keras-h5", 4, sum(p.stat().st_size for p in files), len(filters))
    np.testing.assert_array_equal(filters, _filters(manifest))
    # the same filters as the unsharded file, which lists its layers by name rather than in saving order
    assert sorted(map(bytes, filters)) == sorted(map(bytes, _filters(plain)))
    with h5py.File(files[3], "a") as f:  # one value of the last shard changed in place: another model
        f["layers/functional/layers/conv2d_1/vars/0"][0, 0, 0, 0] = 9.0
    [again] = ingest([str(manifest)], lake)
    assert again.status == INGESTED and again.model_id != outcome.model_id
    assert check_lake(lake).ok


def test_folder_with_a_manifest_ingests_one_model(tmp_path: Path) -> None:
    manifest, plain = write_sharded_folder(tmp_path / "w", THREE)
    plain.unlink()
    plain.parent.rmdir()
    outcomes = ingest([str(manifest.parent)], tmp_path / "lake")
    assert [(o.status, Path(o.source).name) for o in outcomes] == [(INGESTED, manifest.name)]
