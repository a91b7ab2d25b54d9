"""A damaged lake can be repaired by the user: check names the model and its source, `ingest --force` rewrites
a model, `remove` drops one with its derived rows, and one unreadable file never takes the lake down."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from filterlake.lake.check import check_lake
from filterlake.lake.layout import committed_ids, filters_part, model_file, per_model_derived_files
from tests.cli.test_cli import run
from tests.conftest import manifest_rows

ROWS = {row["path"]: row for row in manifest_rows()}
PNET = "mtcnn/pnet.pt"


@pytest.fixture
def lake(corpus_lake, tmp_path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(corpus_lake, copy)
    return copy


def test_a_truncated_partition_is_named_and_ingest_force_rewrites_it(lake, corpus):
    """Regression: check named neither model nor source, and re-ingesting said "already present"."""
    model_id = ROWS[PNET]["sha256"]
    part = filters_part(lake, model_id)
    part.write_bytes(part.read_bytes()[:200])
    done = run("check", "--lake", lake, "--no-repair")
    source = str((corpus / PNET).resolve())
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if model_id[:12] in line]
    assert all(f"'{ROWS[PNET]['name']}' from {source}" in line for line in lines)
    assert all(f"filterlake ingest --force {source}" in line for line in lines)
    assert any("unreadable Parquet" in line for line in lines) and any(
        "holds 0 rows" in line for line in lines
    )
    assert run("ingest", corpus / PNET, "--lake", lake).returncode == 0  # present: nothing rewritten
    assert not check_lake(lake, repair_leftovers=False).ok
    forced = run("ingest", "--force", corpus / PNET, "--lake", lake)
    assert forced.returncode == 0 and "1 ingested" in forced.stdout, forced.stderr
    assert check_lake(lake).ok


def test_an_unreadable_models_file_does_not_take_the_lake_down(lake):
    """Regression: one garbage models file broke every command."""
    model_id = ROWS[PNET]["sha256"]
    model_file(lake, model_id).write_bytes(b"garbage")
    listed = run("models", "--lake", lake, "--format", "csv")
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 1 + 16
    assert f"{model_file(lake, model_id)}: unreadable models row, left out" in listed.stderr
    analysed = run("analyze", "--lake", lake, "-q")
    assert analysed.returncode == 0 and f"model {model_id[:12]} left out" in analysed.stderr, analysed.stderr
    checked = run("check", "--lake", lake, "--no-repair")
    assert checked.returncode == 1 and f"`filterlake remove {model_id[:12]}` drops it" in checked.stdout
    removed = run("remove", model_id[:12], "--lake", lake)
    assert (
        removed.returncode == 0
        and f"removed {model_id[:12]} (its models row is unreadable)" in removed.stdout
    )
    assert check_lake(lake).ok and model_id not in committed_ids(lake)


def test_remove_drops_a_model_with_its_derived_rows(lake):
    assert run("analyze", "--lake", lake, "-q").returncode == 0
    model_id = ROWS[PNET]["sha256"]
    assert per_model_derived_files(lake, model_id)
    done = run("remove", model_id[:8], "--lake", lake)
    assert done.returncode == 0 and f"'{ROWS[PNET]['name']}'" in done.stdout
    assert not per_model_derived_files(lake, model_id) and model_id not in committed_ids(lake)
    assert check_lake(lake, repair_leftovers=False).ok
    again = run("analyze", "--lake", lake, "-q")
    assert again.returncode == 0, again.stderr
    count = run("sql", "SELECT count(*) AS n FROM layer_stats", "--lake", lake, "--format", "csv")
    assert count.stdout.split() == ["n", str(371 - int(ROWS[PNET]["conv2d_3x3_layers"]))]
    for bad, why in (("zzzzzz", "no model has this id"), ("0", "give at least 6 characters")):
        refused = run("remove", bad, "--lake", lake)
        assert refused.returncode == 1 and why in refused.stderr and "Traceback" not in refused.stderr
    assert len(committed_ids(lake)) == 16
