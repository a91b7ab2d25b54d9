"""Importing CNN Filter DB's dataset.h5 into a lake (ingest/cnn_filter_db.py), from synthetic files in the
published layout: rows and metadata, filters equal to the file's, the float32 cast count, a bad model failing
alone, resuming after an interrupted or killed import, idempotence, --meta-only then a full import, a catalog
entry, and the command line's one-line summary."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.synthetic.cnn_filter_db import random_models, write_dataset
from filterlake.derived.analyze import analyze
from filterlake.ingest import ingest
from filterlake.ingest.cnn_filter_db import import_cnn_filter_db
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.lake.layout import committed_ids, table_dir
from filterlake.vocab import META_ONLY, META_ONLY_MESSAGE
from tests.conftest import REPO
from tests.sources.test_cnn_filter_db import expected_filters, ragged_models, rewrite_meta, set_ids

FILTERLAKE = [sys.executable, "-m", "filterlake"]


def lake_filters(lake: Path) -> np.ndarray:
    """Every filter of the lake in dataset order (models by their dataset id, layers, filter_idx)."""
    rows = (
        connect(lake)
        .execute(
            "SELECT f.* EXCLUDE (model_id, layer_idx, filter_idx) FROM filters f JOIN models m USING (model_id) "
            "ORDER BY json_extract(m.extra, '$.cnn_filter_db_model_id')::INT, layer_idx, filter_idx"
        )
        .fetchnumpy()
    )
    return np.column_stack([rows[f"w{i}"] for i in range(9)])


def test_import_lands_each_model_with_its_rows_metadata_and_filters(tmp_path: Path) -> None:
    models = ragged_models()
    write_dataset(tmp_path / "dataset.h5", models)
    lake = tmp_path / "lake"
    result = import_cnn_filter_db(tmp_path / "dataset.h5", lake)
    assert [o.status for o in result.outcomes] == ["ingested"] * 3 and result.cast_changed == 0
    np.testing.assert_array_equal(lake_filters(lake), expected_filters(models).astype(np.float32))
    con = connect(lake)
    row = con.execute("SELECT * FROM models WHERE name = 'unet_b'").fetchdf().iloc[0]
    assert (row.domain, row.task, row.format, row.load_method) == (
        "medical ct",
        "Segmentation",
        "cnn-filter-db",
        "h5py",
    )
    assert row.source_uri == "cnn-filter-db:dataset.h5#unet_b" and len(row.model_id) == 64
    assert (row.n_layers_3x3, row.n_filters_3x3, row.depth_source, row.message) == (2, 8, "graph", None)
    extra = json.loads(row.extra)
    assert (
        extra["Paper"]
        and extra["Conv Weight Initializer"] == "kaiming"
        and extra["cnn_filter_db_model_id"] == 1
    )
    assert extra["cnn_filter_db_version"] == "v1.0.0" and META_ONLY not in extra
    layers = con.execute(
        "SELECT layer_idx, layer_name, in_channels, out_channels, n_filters, filter_offset, conv_depth, "
        "conv_depth_norm, layer_depth, dtype FROM layers l JOIN models m USING (model_id) "
        "WHERE m.name = 'resnet_a' ORDER BY layer_idx"
    ).fetchall()
    assert layers == [
        (0, "layer_0", 3, 4, 12, 0, 0, 0.0, 1, "float64"),
        (1, "layer_1", 4, 5, 20, 12, 1, 0.5, 3, "float64"),
        (2, "layer_2", 5, 7, 35, 32, 2, 1.0, 5, "float64"),
    ]
    assert check_lake(lake).ok
    again = import_cnn_filter_db(tmp_path / "dataset.h5", lake)  # idempotent
    assert [o.status for o in again.outcomes] == ["present"] * 3
    assert connect(lake).execute("SELECT count(*) FROM filters").fetchone()[0] == 99


def test_segmentation_tasks_are_cleaned_and_the_published_label_kept(tmp_path: Path) -> None:
    models = ragged_models()
    models[0].columns["Task"] = "Semantic Segmentation (instances)"
    write_dataset(tmp_path / "dataset.h5", models)
    import_cnn_filter_db(tmp_path / "dataset.h5", tmp_path / "lake")
    task, extra = (
        connect(tmp_path / "lake")
        .execute("SELECT task, extra FROM models WHERE name = 'resnet_a'")
        .fetchone()
    )
    assert (
        task == "Segmentation"
        and json.loads(extra)["Task (published)"] == "Semantic Segmentation (instances)"
    )


def test_the_cast_to_float32_counts_the_values_it_changed(tmp_path: Path) -> None:
    models = ragged_models()
    models[1].layers[0] = models[1].layers[0] + 1e-12  # 18 values that float32 cannot hold
    models[1].layers[0][0, 0, 0, 0] = np.nan  # kept, flagged, not "changed"
    write_dataset(tmp_path / "dataset.h5", models)
    result = import_cnn_filter_db(tmp_path / "dataset.h5", tmp_path / "lake")
    assert result.cast_changed == 17 and "17 values changed by the float32 cast" in result.summary_line()
    message = (
        connect(tmp_path / "lake").execute("SELECT message FROM models WHERE name = 'unet_b'").fetchone()[0]
    )
    assert "17 values changed by the float32 cast" in message and "1 NaN/Inf" in message


def test_a_bad_model_fails_alone_and_the_lake_is_unchanged_for_it(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    write_dataset(path, ragged_models())
    rewrite_meta(path, set_ids(5, "75:81"))  # tiny_c: 7 filters named, 18 expected
    result = import_cnn_filter_db(path, tmp_path / "lake")
    assert [(o.name, o.status) for o in result.outcomes] == [
        ("resnet_a", "ingested"),
        ("unet_b", "ingested"),
        ("tiny_c", "failed"),
    ]
    assert result.failed[0].message.startswith(f"{path}: model 2 (tiny_c): layer 0: filter_ids 75:81 holds 7")
    assert len(committed_ids(tmp_path / "lake")) == 2 and check_lake(tmp_path / "lake").ok


def test_an_interrupted_import_resumes_model_by_model(tmp_path: Path) -> None:
    write_dataset(tmp_path / "dataset.h5", ragged_models())
    lake, seen = tmp_path / "lake", []

    def stop_after_two(outcome) -> None:
        seen.append(outcome.name)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_cnn_filter_db(tmp_path / "dataset.h5", lake, on_result=stop_after_two)
    assert len(committed_ids(lake)) == 2
    result = import_cnn_filter_db(tmp_path / "dataset.h5", lake)
    assert [o.status for o in result.outcomes] == ["present", "present", "ingested"]
    assert check_lake(lake).ok and len(committed_ids(lake)) == 3


@pytest.mark.slow
def test_a_killed_import_subprocess_resumes_with_every_model_once(tmp_path: Path) -> None:
    counts = write_dataset(tmp_path / "dataset.h5", random_models(1_500_000, seed=3, max_layer=128))
    lake = tmp_path / "lake"
    command = [
        *FILTERLAKE,
        "import",
        "cnn-filter-db",
        str(tmp_path / "dataset.h5"),
        "--lake",
        str(lake),
        "-q",
    ]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(committed_ids(lake) if lake.is_dir() else ()) < 2:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 2 <= len(committed_ids(lake)) < counts["models"], "the import was not killed mid-way"
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert check_lake(lake).ok
    con = connect(lake)
    assert (
        con.execute("SELECT count(*), count(DISTINCT name) FROM models").fetchone() == (counts["models"],) * 2
    )
    assert con.execute("SELECT count(*) FROM filters").fetchone()[0] == counts["filters"]


def test_meta_only_lands_the_model_list_then_a_full_import_replaces_it(tmp_path: Path) -> None:
    models = ragged_models()
    write_dataset(tmp_path / "dataset.h5", models)
    lake = tmp_path / "lake"
    listed = import_cnn_filter_db(tmp_path / "dataset.h5", lake, meta_only=True)
    assert [o.status for o in listed.outcomes] == ["ingested"] * 3
    con = connect(lake)
    rows = con.execute(
        "SELECT name, n_filters_3x3, message, extra, weights_sha256 FROM models ORDER BY name"
    ).fetchall()
    assert [(r[0], r[1], r[2], json.loads(r[3])[META_ONLY], r[4]) for r in rows] == [
        ("resnet_a", 67, META_ONLY_MESSAGE, True, None),
        ("tiny_c", 24, META_ONLY_MESSAGE, True, None),
        ("unet_b", 8, META_ONLY_MESSAGE, True, None),
    ]
    assert con.execute("SELECT count(*) FROM layers").fetchone()[0] == 7
    assert not table_dir(lake, "filters").exists()
    report = check_lake(lake)
    assert report.ok and (report.models, report.filters) == (3, 0), report.lines()
    assert [
        o.status for o in import_cnn_filter_db(tmp_path / "dataset.h5", lake, meta_only=True).outcomes
    ] == ["present"] * 3

    full = import_cnn_filter_db(tmp_path / "dataset.h5", lake)
    assert [o.status for o in full.outcomes] == ["ingested"] * 3
    assert [o.status for o in import_cnn_filter_db(tmp_path / "dataset.h5", lake).outcomes] == ["present"] * 3
    assert check_lake(lake).ok and check_lake(lake).filters == 99
    np.testing.assert_array_equal(lake_filters(lake), expected_filters(models).astype(np.float32))
    assert connect(lake).execute("SELECT count(*) FROM models WHERE message IS NOT NULL").fetchone()[0] == 0


def test_analyze_leaves_meta_only_models_out_with_a_note(tmp_path: Path) -> None:
    full = write_dataset(tmp_path / "full.h5", random_models(30_000, seed=1))
    write_dataset(tmp_path / "listed.h5", ragged_models())
    lake = tmp_path / "lake"
    import_cnn_filter_db(tmp_path / "full.h5", lake)
    import_cnn_filter_db(tmp_path / "listed.h5", lake, meta_only=True)
    analysis = analyze(lake)
    assert len(analysis.meta_only) == 3 and len(analysis.model_ids) == len(committed_ids(lake)) - 3
    assert analysis.basis.n == full["filters"]
    done = filterlake("analyze", "--lake", lake, "-q")
    assert done.returncode == 0 and "note: 3 models imported with --meta-only left out" in done.stderr


def test_a_catalog_entry_imports_the_dataset(tmp_path: Path) -> None:
    write_dataset(tmp_path / "dataset.h5", ragged_models())
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[model]]\ncnn_filter_db = "dataset.h5"\nmeta_only = true\n')
    outcomes = ingest([], tmp_path / "lake", [catalog])
    assert [(o.name, o.status) for o in outcomes] == [
        (n, "ingested") for n in ("resnet_a", "unet_b", "tiny_c")
    ]
    assert check_lake(tmp_path / "lake").filters == 0
    catalog.write_text('[[model]]\ncnn_filter_db = "missing.h5"\n')
    (failed,) = ingest([], tmp_path / "lake", [catalog])
    assert failed.status == "failed" and failed.message == f"{tmp_path / 'missing.h5'}: no such file"


def filterlake(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*FILTERLAKE, *map(str, args)], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_the_command_prints_one_summary_line_and_bad_files_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    write_dataset(path, ragged_models(), key="filter")
    lake = tmp_path / "lake"
    done = filterlake("import", "cnn-filter-db", path, "--lake", lake, "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [done.stdout.splitlines()[0]] and done.stdout.startswith(
        "dataset.h5 (v1.0.0, 99 filters): 3 models: 3 ingested, 0 already present, 0 failed; new: 7 layers, "
        "99 filters; 0 values changed by the float32 cast; "
    )
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[:3000])
    done = filterlake("import", "cnn-filter-db", cut, "--lake", lake, "-q")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(
        f"filterlake: error: {cut}: cannot read 'meta' (truncated file: eof = 3000, "
    )
    assert len(done.stderr.splitlines()) == 1
    assert len(committed_ids(lake)) == 3 and check_lake(lake).ok
