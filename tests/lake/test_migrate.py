"""A lake written before lake version 2 (no models.weights_sha256, no layers.trainable, no lake.json) is brought
up to date in place: the views work, the digest is computed from the stored filters and equals a fresh
ingest's, and a read-only old lake is refused with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from filterlake.ingest import ingest
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.lake.files import lake_version, read_table
from filterlake.lake.layout import committed_ids, layers_file, model_file, version_file
from filterlake.lake.schema import LAKE_VERSION
from tests.cli.test_cli import FILTERLAKE
from tests.cli.test_environment import in_namespace


@pytest.fixture(scope="module")
def current_lake(tmp_path_factory) -> Path:
    """Two models; one has a 300 x 300 layer (90,000 filters), more than one Parquet batch of filters."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    torch.save(
        {"a.weight": torch.randn(8, 3, 3, 3), "b.weight": torch.randn(4, 8, 3, 3)}, folder / "small.pt"
    )
    torch.save(
        {"wide.weight": torch.randn(300, 300, 3, 3), "c.weight": torch.randn(2, 300, 3, 3)},
        folder / "wide.pt",
    )
    lake = tmp_path_factory.mktemp("lake") / "lake"
    ingest([str(folder)], lake)
    return lake


def downgrade(lake: Path) -> None:
    """Rewrite the lake as filterlake wrote it before version 2."""
    for model_id in committed_ids(lake):
        for path, column in (
            (model_file(lake, model_id), "weights_sha256"),
            (layers_file(lake, model_id), "trainable"),
        ):
            pq.write_table(read_table(path).drop_columns([column]), path, compression="zstd")
    version_file(lake).unlink()


def test_new_lake_records_its_version(current_lake: Path) -> None:
    assert json.loads(version_file(current_lake).read_text()) == {"lake_version": LAKE_VERSION}


def test_old_lake_is_migrated_with_the_digests_a_fresh_ingest_gives(
    current_lake: Path, tmp_path: Path
) -> None:
    fresh = connect(current_lake).execute("SELECT model_id, weights_sha256 FROM models").fetchall()
    assert len(fresh) == 2 and all(digest for _, digest in fresh)
    old = tmp_path / "old"
    shutil.copytree(current_lake, old)
    downgrade(old)
    assert lake_version(old) == 1
    report = check_lake(old, repair_leftovers=False)  # looking only: one problem that says what to do
    assert not report.ok and len(report.problems) == 1
    assert "written by an older filterlake" in report.problems[0] and "filterlake check" in report.problems[0]
    notes: list[str] = []
    con = connect(old, on_note=notes.append)
    assert notes == [f"{old}: migrating 2 models to lake version {LAKE_VERSION} (new columns added)"]
    assert sorted(con.execute("SELECT model_id, weights_sha256 FROM models").fetchall()) == sorted(fresh)
    assert con.execute("SELECT count(*), count(trainable) FROM layers").fetchone() == (4, 0)
    assert lake_version(old) == LAKE_VERSION and check_lake(old).ok


def test_check_migrates_and_says_so(current_lake: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(current_lake, old)
    downgrade(old)
    report = check_lake(old)
    assert (
        report.ok and f"migrated 2 models to lake version {LAKE_VERSION} (new columns added)" in report.notes
    )


def test_read_only_old_lake_is_one_line(current_lake: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(current_lake, old)
    downgrade(old)
    before = sorted(p.stat().st_mtime_ns for p in old.rglob("*") if p.is_file())
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    done = in_namespace(script, old, *FILTERLAKE, "models", "--lake", old)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("filterlake: error:")]
    assert len(errors) == 1 and "older filterlake" in errors[0] and "read-only" in errors[0], done.stderr
    assert sorted(p.stat().st_mtime_ns for p in old.rglob("*") if p.is_file()) == before
