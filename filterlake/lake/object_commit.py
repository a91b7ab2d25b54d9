"""The commit protocol of a lake on S3-compatible object storage, where there is no rename and no file lock.

A model is staged locally exactly as for a local lake (writer.ModelWriter: the same filters, layers and models
files, byte for byte), then installed with what object stores guarantee: a PUT is atomic per object (readers
see the old object or the new one, whole), listings are strongly consistent, and conditional PUTs
(`If-None-Match: *` creates only if absent, `If-Match: <etag>` replaces only an unchanged object).

1. Already present? A HEAD of `models/<id>.parquet`: when it exists, nothing is written ("present").
2. PUT `filters/model_id=<id>/part-0.parquet` and `layers/<id>.parquet` (plain PUTs). Readers do not see them
   yet: every view, `check` and `models` go through the models row.
3. The commit point: PUT `models/<id>.parquet` with `If-None-Match: *`. It succeeds for exactly one writer;
   for any other the store answers 412 Precondition Failed and that writer reports the model present.

Why it keeps the lake's guarantees:
- *A reader never sees part of a model*: the models row is written last and only after both other objects
  are complete (each PUT is atomic), and views join every table on it.
- *The same bytes are never ingested twice; two writers of the same model end with one copy*: the model id
  is the sha256 of the checkpoint's bytes and every key is derived from it, so there is one key per table;
  the create-only PUT lets one writer win. A loser's step-2 PUTs replace the winner's objects with identical
  bytes (the same bytes give the same rows, and pyarrow writes the same table to the same bytes), so the
  committed model never changes.
- *Metadata merges lose nothing*: read the row with its ETag, PUT the merged row with `If-Match: <etag>`; a
  412 means another merge landed in between, so read again and merge again (optimistic concurrency).
- *Removal*: the models row is deleted first (the model disappears at once), then its other objects.
- *Leftovers*: a writer killed between steps 2 and 3 leaves objects without a models row. There is no pid to
  test on an object store, so repair removes such an orphan only once it is older than a grace period
  (`location.orphan_grace_seconds()`, default an hour), and a writer refuses to commit (step 3) once half that
  period has passed since its first PUT: a removed orphan can never be one a live writer still commits. This
  assumes the store's clock (an object's LastModified) and the writers' agree to well within half the period.
- *An unreachable store*: each operation is retried with backoff (objects.py); when it still fails, the
  source fails by name and, as nothing commits without step 3, nothing of it is visible.

Local staging lives in the system's temporary folder, `filterlake-stage-<pid>-*` (a killed writer leaves it
there, not in the lake; the next repair on this machine removes those of dead processes).
Objects are written with single PUTs (up to 5 GB each, far above one model's filters at 36 bytes a filter).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.errors import LakeError
from filterlake.lake import objects
from filterlake.lake.layout import filters_dir, filters_part, layers_file, model_file, table_dir, version_file
from filterlake.lake.location import ROOT, ObjectLake, orphan_grace_seconds
from filterlake.lake.schema import LAKE_VERSION, arrow_schema
from filterlake.lake.writer import ModelWriter

STAGE_PREFIX = "filterlake-stage-"  # local staging folders of object-lake writers, in the temporary folder
MERGE_ATTEMPTS = 64  # conditional replacements of one models row before a merge gives up


class ObjectModelWriter(ModelWriter):
    """Stages one model like ModelWriter (in a local temporary folder) and commits it into an object lake."""

    def __init__(self, lake: ObjectLake, model_id: str):
        stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-"))
        super().__init__(lake, model_id, stage)  # type: ignore[arg-type]
        self.objects: ObjectLake = lake

    def _install(self) -> bool:
        """Steps 1-3 of the protocol above; False when the model is already present."""
        lake, model_id = self.objects, self.model_id
        try:
            if objects.exists(lake, model_file(ROOT, model_id)):
                return False
            if not objects.exists(lake, version_file(ROOT)):  # the first model of a new lake
                body = json.dumps({"lake_version": LAKE_VERSION}, indent=2).encode()
                objects.put(lake, version_file(ROOT), body, if_none_match=True)
            started = time.monotonic()
            if self._writer is not None:
                objects.put(lake, filters_part(ROOT, model_id), self._filters_file)  # streamed from disk
            objects.put(lake, layers_file(ROOT, model_id), self.stage / "layers.parquet")
            if time.monotonic() - started > orphan_grace_seconds() / 2:
                raise LakeError(
                    f"{lake.url(model_file(ROOT, model_id))}: not committed, its uploads took longer than half "
                    f"the orphan grace period ({orphan_grace_seconds():g} s); ingest it again"
                )
            return objects.put(
                lake, model_file(ROOT, model_id), self.stage / "model.parquet", if_none_match=True
            )
        finally:
            self.discard()


def read_parquet_bytes(body: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    """A whole Parquet object from its bytes."""
    return pq.ParquetFile(pa.BufferReader(body)).read(columns=list(columns) if columns is not None else None)


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of a lake file (zstd, as files.write_synced writes it)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def committed_ids(lake: ObjectLake) -> set[str]:
    """Model ids whose models row exists (one listing of `models/`)."""
    folder = table_dir(ROOT, "models")
    paths = map(Path, objects.listing(lake, folder))
    return {p.stem for p in paths if p.parent == folder and p.suffix == ".parquet"}


def is_committed(lake: ObjectLake, model_id: str) -> bool:
    """Whether the lake holds the model (its models row exists)."""
    return objects.exists(lake, model_file(ROOT, model_id))


def model_row(lake: ObjectLake, model_id: str, columns: Sequence[str] | None = None) -> dict | None:
    """A committed model's models row (some `columns`), or None when the lake does not hold it."""
    found = objects.get(lake, model_file(ROOT, model_id))
    if found is None:
        return None
    rows = read_parquet_bytes(found[0], columns).to_pylist()
    return rows[0] if rows else None


def update_model_row(lake: ObjectLake, model_id: str, update: Callable[[dict], dict | None]) -> bool:
    """Replace a committed model's row by `update(row)`, read-modify-write with `If-Match` (retried when
    another merge replaced it meanwhile); False when `update` returns None."""
    key = model_file(ROOT, model_id)
    for _ in range(MERGE_ATTEMPTS):
        found = objects.get(lake, key)
        if found is None:
            raise LakeError(f"{lake.url(key)}: the lake does not hold model {model_id}")
        row = update(read_parquet_bytes(found[0]).to_pylist()[0])
        if row is None:
            return False
        body = parquet_bytes(pa.Table.from_pylist([row], schema=arrow_schema("models")))
        if objects.put(lake, key, body, if_match=found[1]):
            return True
        time.sleep(random.uniform(0.01, 0.1))
    raise LakeError(f"{lake.url(key)}: {MERGE_ATTEMPTS} concurrent metadata merges in a row; try again")


def derived_folders(lake: ObjectLake) -> list[str]:
    """The folders of the per-model derived tables in the lake: `layer_stats`, and one per basis (and spec)
    of `histograms` and `extents` (delimited listings: no listing of a whole table)."""
    found = [str(table_dir(ROOT, "layer_stats"))]
    for basis in objects.folders(lake, table_dir(ROOT, "histograms")):
        found += objects.folders(lake, basis)
    return found + objects.folders(lake, table_dir(ROOT, "extents"))


def remove_model(lake: ObjectLake, model_id: str) -> bool:
    """Remove a committed model: its models row first (readers stop seeing it at once), then its layers,
    filters and per-model derived objects; False when the lake does not hold it."""
    if not is_committed(lake, model_id):
        return False
    objects.delete(lake, model_file(ROOT, model_id))
    derived = [f"{folder}/{model_id}.parquet" for folder in derived_folders(lake)]
    remove_objects(
        lake, [layers_file(ROOT, model_id), *objects.listing(lake, filters_dir(ROOT, model_id)), *derived]
    )
    return True


def remove_objects(lake: ObjectLake, relatives: Sequence[str | Path]) -> None:
    """Delete these objects of the lake."""
    for relative in relatives:
        objects.delete(lake, relative)
