"""The working copy of an object lake (lake/working_copy.py) against a real `moto_server`: what a pull copies
and skips, when an object counts as current, a model removed from the bucket, and what a push writes and
deletes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from filterlake.lake import objects
from filterlake.lake.layout import filters_part, layers_file, model_file, stats_file
from filterlake.lake.location import ROOT, ObjectLake
from filterlake.lake.object_commit import remove_model
from filterlake.lake.working_copy import WorkingCopy, model_of, table_of, working_copy
from tests.lake.s3_endpoint import s3_client

pytestmark = pytest.mark.s3
ORPHAN = "f" * 64  # a model id without a models row: what an interrupted write leaves


@pytest.fixture
def lake(s3_lake: ObjectLake, corpus: Path, tmp_path: Path, monkeypatch) -> ObjectLake:
    """The three MTCNN checkpoints ingested into a new bucket, plus the objects of an interrupted write."""
    from filterlake.ingest import ingest

    monkeypatch.setenv("FILTERLAKE_CACHE", str(tmp_path / "cache"))
    ingest([str(corpus / "mtcnn")], s3_lake)
    for relative in (filters_part(ROOT, ORPHAN), layers_file(ROOT, ORPHAN), stats_file(ROOT, ORPHAN)):
        objects.put(s3_lake, relative, b"orphan")
    return s3_lake


def keys(lake: ObjectLake) -> dict[str, bytes]:
    """Every object of the lake -> its bytes."""
    client = s3_client(os.environ["AWS_ENDPOINT_URL"])
    listed = client.list_objects_v2(Bucket=lake.bucket, Prefix=f"{lake.prefix}/").get("Contents", [])
    return {
        o["Key"].removeprefix(f"{lake.prefix}/"): client.get_object(Bucket=lake.bucket, Key=o["Key"])[
            "Body"
        ].read()
        for o in listed
    }


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_pull_copies_the_committed_models_byte_for_byte_and_no_orphan(lake):
    copy = working_copy(lake)
    pulled = copy.pull()
    remote = {k: v for k, v in keys(lake).items() if ORPHAN not in k}
    n_models = len([k for k in remote if k.startswith("models/")])
    assert n_models == 2  # mtcnn's P-Net and O-Net (R-Net is not in the corpus)
    assert files(copy.root) == remote and pulled.downloaded == len(remote) == 3 * n_models + 1  # + lake.json
    assert copy.pull().downloaded == 0  # every file current: nothing downloaded again
    without = WorkingCopy(lake, copy.root.parent / "without-filters").pull(filters=False)
    assert without.downloaded == len(remote) - n_models


def test_a_changed_object_is_pulled_again_and_a_removed_model_leaves_the_copy(lake):
    copy = working_copy(lake)
    copy.pull()
    (gone, kept) = sorted(p.stem for p in (copy.root / "models").glob("*.parquet"))
    layers = layers_file(ROOT, kept)
    same = (copy.root / layers).read_bytes()
    objects.put(lake, layers, same)  # the same bytes again (within the same second, most likely)
    assert copy.pull().downloaded == 0
    objects.put(lake, layers, same[:100] + bytes([same[100] ^ 1]) + same[101:])  # same size, other bytes
    assert remove_model(lake, gone)
    pulled = copy.pull()
    assert pulled.downloaded == 1 and pulled.removed == 3  # models row, layers and filters of `gone`
    assert not [p for p in copy.root.rglob("*") if gone in str(p)]
    assert files(copy.root) == {k: v for k, v in keys(lake).items() if ORPHAN not in k}


def test_a_push_writes_changed_derived_files_and_deletes_only_what_the_pull_saw(lake):
    copy = working_copy(lake)
    pulled = copy.pull()
    ids = sorted(p.stem for p in (copy.root / "models").glob("*.parquet"))
    for model_id in ids:  # derived files written by an analysis of the copy
        path = copy.root / stats_file(ROOT, model_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model_id.encode())
    (copy.root / stats_file(ROOT, ORPHAN)).write_bytes(b"a derived file of no committed model")
    uploaded, deleted = copy.push(pulled.seen)
    assert (uploaded, deleted) == (2, 0)
    remote = keys(lake)
    assert all(remote[str(stats_file(ROOT, m))] == m.encode() for m in ids)
    assert remote[str(stats_file(ROOT, ORPHAN))] == b"orphan"  # not pushed: its model is not committed
    assert copy.push(pulled.seen) == (0, 0)  # pushed files are current
    seen = copy.pull().seen
    objects.put(lake, "basis/after-the-pull.parquet", b"another analysis")
    (copy.root / stats_file(ROOT, ids[0])).unlink()  # e.g. pruned by the analysis
    assert copy.push(seen) == (0, 1)
    remote = keys(lake)
    assert str(stats_file(ROOT, ids[0])) not in remote and "basis/after-the-pull.parquet" in remote


def test_objects_are_named_by_table_and_model():
    model = "a" * 64
    assert table_of(str(model_file(ROOT, model))) == "models"
    assert table_of(str(filters_part(ROOT, model))) == "filters"
    assert table_of(f"histograms/basis=b/spec=s/{model}.parquet") == "histograms"
    assert table_of("shifts/b__medical__domain.parquet") == "shifts"
    assert table_of("analysis.json") is None and table_of("models/x/y.parquet") is None
    assert model_of(str(filters_part(ROOT, model)), "filters") == model
    assert model_of(f"extents/basis=b/{model}.parquet", "extents") == model
    assert model_of("basis/b.parquet", "basis") is None
