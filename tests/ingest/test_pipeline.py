"""The ingest stages as public functions: fetch -> identify -> load, each checkpoint hashed and parsed once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from filterlake.errors import CheckpointError
from filterlake.ingest import identify, ingest_source, load, pipeline
from filterlake.lake.layout import committed_ids
from filterlake.sources.discover import Source
from filterlake.vocab import INGESTED, PRESENT
from tests.conftest import manifest_rows

ROWS = {row["path"]: row for row in manifest_rows()}
RESNET = "resnet20_cifar10/resnet20-12fca82f.th"


def _read_bytes() -> int:
    """Bytes this process has read so far (/proc/self/io rchar: every read, page cache included)."""
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


@pytest.fixture
def counted(monkeypatch):
    """How often the pipeline opens (parses) and hashes a checkpoint."""
    calls = {"open": 0, "hash": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(pipeline, "open_checkpoint", counting("open", pipeline.open_checkpoint))
    monkeypatch.setattr(pipeline, "hash_files", counting("hash", pipeline.hash_files))
    return calls


def test_a_catalog_path_with_a_sha256_is_parsed_and_hashed_once(corpus, tmp_path, counted):
    """Regression: the CLI hashed a path source with a catalog sha256 twice (and the flow parsed it twice)."""
    row = ROWS[RESNET]
    source = Source("path", {"path": str(corpus / RESNET), "sha256": row["sha256"]}, {"name": "r20"})
    ingest_source(source, tmp_path / "warm-up")  # imports the readers' modules, which would count as reads
    counted.update(open=0, hash=0)
    before = _read_bytes()
    outcome = ingest_source(source, tmp_path / "lake")
    read = _read_bytes() - before
    assert outcome.status == INGESTED and outcome.model_id == row["sha256"]
    assert counted == {"open": 1, "hash": 1}
    size = (corpus / RESNET).stat().st_size
    assert read < 2.5 * size, (
        f"read {read:,} bytes of a {size:,}-byte checkpoint: one hash and one parse expected"
    )


def test_identify_holds_no_arrays_and_load_commits_it(corpus, tmp_path, counted):
    identified = identify(corpus / RESNET)
    assert identified.model_id == ROWS[RESNET]["sha256"] and identified.format.startswith("torch")
    assert identified.shape.n_filters == int(ROWS[RESNET]["shape_only_filters"])
    lake = tmp_path / "lake"
    assert committed_ids(lake) == set()
    assert load(identified, lake).status == INGESTED
    assert load(identified, lake).status == PRESENT
    assert committed_ids(lake) == {identified.model_id} and counted == {"open": 1, "hash": 1}


def test_identify_refuses_a_wrong_catalog_checksum_and_a_folder(corpus, tmp_path):
    copy = tmp_path / "r.th"
    shutil.copyfile(corpus / RESNET, copy)
    with pytest.raises(CheckpointError, match="sha256 differs from the catalog's 00000"):
        identify(copy, expected_sha256="0" * 64)
    with pytest.raises(CheckpointError, match="is a directory"):
        identify(Path(tmp_path))


def test_conflicting_metadata_says_what_was_kept_and_how_to_change_it(corpus, tmp_path):
    lake = tmp_path / "lake"
    pnet = corpus / "mtcnn/pnet.pt"
    assert load(identify(pnet), lake, {"domain": "faces"}).status == INGESTED
    kept = load(identify(pnet), lake, {"domain": "natural", "task": "detection"})
    assert kept.status == "updated"  # the missing task is filled in, the domain kept
    assert kept.message == (
        "already in the lake; kept domain='faces' (this source says 'natural'): "
        "--update-metadata replaces them"
    )
    replaced = load(identify(pnet), lake, {"domain": "natural"}, update_metadata=True)
    assert replaced.status == "updated" and replaced.domain == "natural" and replaced.message is None
