"""The atomic model writer: whole models only, one copy per model, leftovers repaired."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC

import duckdb
import numpy as np
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from filterlake.lake import writer as writer_mod
from filterlake.lake.check import check_lake
from filterlake.lake.layout import committed_ids, filters_dir, layers_file, model_file
from filterlake.lake.maintenance import leftovers, repair
from filterlake.lake.writer import ModelWriter


def layer_row(model_id, idx, n):
    return {
        "model_id": model_id,
        "layer_idx": idx,
        "layer_name": f"l{idx}",
        "in_channels": 1,
        "out_channels": n,
        "groups": None,
        "dilation": None,
        "n_filters": n,
        "filter_offset": 0,
        "conv_depth": idx,
        "conv_depth_norm": 0.0,
        "layer_depth": None,
        "dtype": "float32",
        "layout": "OIHW",
        "orientation": "unknown",
        "n_nonfinite": 0,
        "max_abs": 1.0,
    }


def model_row(model_id, n_layers, n_filters):
    from datetime import datetime

    row = {
        name: None
        for name in ("architecture", "task", "domain", "modality", "training_dataset", "license", "message")
    }
    row.update(
        model_id=model_id,
        name=model_id,
        source_uri="mem",
        format="test",
        load_method="test",
        file_bytes=1,
        n_files=1,
        n_conv_layers=n_layers,
        n_layers_3x3=n_layers,
        n_filters_3x3=n_filters,
        kernel_shapes="{}",
        n_nonfinite=0,
        orientation="unknown",
        depth_source="definition_order",
        extra="{}",
        ingested_at=datetime.now(UTC),
        filterlake_version="test",
        **{
            f"skipped_{r}": 0
            for r in ("1x1", "other_kernel", "non_square", "1d", "3d", "transposed", "unresolved")
        },
    )
    return row


def write(lake, model_id, layers):
    w = ModelWriter(lake, model_id)
    for idx, filters in enumerate(layers):
        w.add_layer(idx, filters)
    return w.commit(
        [layer_row(model_id, i, len(f)) for i, f in enumerate(layers)],
        model_row(model_id, len(layers), sum(len(f) for f in layers)),
    )


def test_written_model_reads_back_in_duckdb_polars_pyarrow(tmp_path):
    rng = np.random.default_rng(1)
    layers = [rng.normal(size=(5, 9)).astype(np.float32), rng.normal(size=(3, 9)).astype(np.float32)]
    assert write(tmp_path, "m1", layers)
    glob = str(tmp_path / "filters" / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT model_id, layer_idx, filter_idx, w0, w1, w2, w3, w4, w5, w6, w7, w8 "
        f"FROM read_parquet('{glob}', hive_partitioning=true) ORDER BY layer_idx, filter_idx"
    ).fetchall()
    assert len(rows) == 8 and {r[0] for r in rows} == {"m1"}
    np.testing.assert_array_equal(np.array([r[3:] for r in rows], np.float32), np.concatenate(layers))
    assert pl.scan_parquet(glob, hive_partitioning=True).select(pl.len()).collect().item() == 8
    assert ds.dataset(tmp_path / "filters", partitioning="hive").count_rows() == 8
    meta = pq.ParquetFile(filters_dir(tmp_path, "m1") / "part-0.parquet").metadata
    column = meta.row_group(0).column(3)
    assert column.compression == "ZSTD" and "RLE_DICTIONARY" not in column.encodings


def test_second_commit_of_same_model_is_discarded(tmp_path):
    filters = np.ones((2, 9), np.float32)
    assert write(tmp_path, "m1", [filters])
    assert not write(tmp_path, "m1", [filters])
    assert pq.ParquetFile(filters_dir(tmp_path, "m1") / "part-0.parquet").metadata.num_rows == 2
    assert not any((tmp_path / "_staging").iterdir())


def test_large_model_is_split_into_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_mod, "ROW_GROUP_ROWS", 10)
    assert write(tmp_path, "big", [np.zeros((7, 9), np.float32)] * 4)
    meta = pq.ParquetFile(filters_dir(tmp_path, "big") / "part-0.parquet").metadata
    assert meta.num_rows == 28 and meta.num_row_groups == 2


def test_model_with_no_filters_has_no_partition(tmp_path):
    assert write(tmp_path, "empty", [])
    assert model_file(tmp_path, "empty").exists() and not filters_dir(tmp_path, "empty").exists()
    assert check_lake(tmp_path).ok


def test_leftovers_of_a_dead_writer_are_repaired(tmp_path):
    assert write(tmp_path, "good", [np.ones((2, 9), np.float32)])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = tmp_path / "_staging" / f"{dead.stdout.strip()}-abc"
    stale.mkdir(parents=True)
    live = tmp_path / "_staging" / f"{os.getpid()}-live"
    live.mkdir()
    orphan = filters_dir(tmp_path, "orphan")
    orphan.mkdir(parents=True)
    (orphan / "part-0.parquet").write_bytes(b"half")
    layers_file(tmp_path, "orphan").write_bytes(b"half")
    found = leftovers(tmp_path)
    assert found["staging"] == [stale] and found["orphan_filters"] == [orphan]
    report = check_lake(tmp_path, repair_leftovers=False)
    assert not report.ok and len(report.problems) == 3
    assert repair(tmp_path) == {"staging": 1, "orphan_filters": 1, "orphan_layers": 1}
    assert live.exists() and committed_ids(tmp_path) == {"good"}
    assert check_lake(tmp_path).ok


def test_check_finds_count_mismatch(tmp_path):
    assert write(tmp_path, "m", [np.ones((3, 9), np.float32)])
    row = model_row("m", 1, 4)
    import pyarrow as pa

    from filterlake.lake.schema import arrow_schema

    pq.write_table(pa.Table.from_pylist([row], schema=arrow_schema("models")), model_file(tmp_path, "m"))
    report = check_lake(tmp_path)
    assert not report.ok and "holds 3 rows, models says 4" in report.problems[0]
