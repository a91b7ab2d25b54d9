"""Bring a lake written by an older filterlake to the current schema version, in place and atomically.

`LAKE/lake.json` records the lake's version. Version 3 adds the compacted parts of lake/compact.py: a version-2
lake has none and reads as it is, so it is only marked current; a lake of a newer version than this filterlake
reads is refused (its layout may hold rows this code cannot see). A lake without it (or older) may hold `models` / `layers` files
without the columns added since (`"since"` in schemas/lake_tables.json): they are rewritten with the new
columns, each file through the atomic writer, under the lake lock. New columns are null, except
`models.weights_sha256`, which is computed from the model's stored filters (streamed, one row group at a time),
so an old lake gains duplicate detection too. The views of sql/ read every file with one fixed schema, which is
why the migration rewrites instead of letting the views guess.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.errors import LakeError
from filterlake.lake.files import (
    lake_version,
    mark_current,
    read_schema,
    read_table,
    staging,
    write_table_atomic,
)
from filterlake.lake.layout import committed_ids, filters_dir, layers_file, model_file
from filterlake.lake.location import ObjectLake
from filterlake.lake.schema import LAKE_VERSION, WEIGHT_COLUMNS, added_columns, arrow_schema
from filterlake.lake.writer import lake_lock
from filterlake.numeric.weights_digest import LayerDigest, weights_sha256

MIGRATED_TABLES = ("models", "layers")  # the per-model base tables whose columns have grown


def _outdated(path: Path, table: str) -> list[str]:
    """The columns added since version 1 that a file lacks (empty for a current or unreadable file: an
    unreadable one is `filterlake check`'s to report)."""
    schema = read_schema(path)
    if schema is None:
        return []
    return [name for name in added_columns(table, 1) if name not in schema.names]


def pending(lake: Path) -> dict[str, list[str]]:
    """Model id -> the tables whose files lack new columns."""
    found: dict[str, list[str]] = {}
    for model_id in sorted(committed_ids(lake)):
        paths = {"models": model_file(lake, model_id), "layers": layers_file(lake, model_id)}
        stale = [table for table, path in paths.items() if path.exists() and _outdated(path, table)]
        if stale:
            found[model_id] = stale
    return found


def stored_weights_sha256(lake: Path, model_id: str) -> str | None:
    """The `weights_sha256` of a committed model, computed from its filters partition (stored in layer_idx,
    filter_idx order) and its layers' shapes, one row group in memory at a time."""
    shapes = {
        r["layer_idx"]: (r["out_channels"], r["in_channels"])
        for r in read_table(
            layers_file(lake, model_id), columns=["layer_idx", "out_channels", "in_channels"]
        ).to_pylist()
    }
    digests: dict[int, LayerDigest] = {}
    for part in sorted(filters_dir(lake, model_id).glob("*.parquet")):
        with pa.OSFile(str(part)) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(columns=["layer_idx", *WEIGHT_COLUMNS]):
                layer_idx = batch.column(0).to_numpy()
                block = np.column_stack([batch.column(j + 1).to_numpy() for j in range(len(WEIGHT_COLUMNS))])
                bounds = [0, *(np.flatnonzero(np.diff(layer_idx)) + 1).tolist(), len(layer_idx)]
                for at, end in itertools.pairwise(bounds):
                    idx = int(layer_idx[at])
                    if idx not in digests:
                        digests[idx] = LayerDigest(*shapes[idx])
                    digests[idx].update(block[at:end])
    return weights_sha256(d.hexdigest() for d in digests.values())


def _migrated(lake: Path, model_id: str, table: str) -> pa.Table:
    """A model's file of `table` with the new columns added (null, or computed for weights_sha256)."""
    old = read_table(model_file(lake, model_id) if table == "models" else layers_file(lake, model_id))
    for field in arrow_schema(table):
        if field.name not in old.column_names:
            value = stored_weights_sha256(lake, model_id) if field.name == "weights_sha256" else None
            old = old.append_column(field, pa.array([value] * old.num_rows, field.type))
    return old


def migrate(lake: Path | ObjectLake, on_note: Callable[[str], None] | None = None) -> int:
    """Bring the lake to the current schema version; returns how many models were rewritten.

    A current lake costs one small file read. A lake that needs rewriting but cannot be written (read-only) is
    a LakeError naming the way out; an old lake with nothing to rewrite is just marked current where possible.
    An object lake has been written at the current version (object lakes begin with it): nothing to do.
    """
    if isinstance(lake, ObjectLake):
        return 0
    if lake.is_dir() and lake_version(lake) > LAKE_VERSION:
        raise LakeError(
            f"{lake}: written by a newer filterlake (lake version {lake_version(lake)}, this one reads "
            f"{LAKE_VERSION} and older); upgrade filterlake to use it"
        )
    if not lake.is_dir() or lake_version(lake) >= LAKE_VERSION:
        return 0
    if not pending(lake):
        if os.access(lake, os.W_OK):
            mark_current(lake)
        return 0
    if not os.access(lake, os.W_OK):
        raise LakeError(
            f"{lake}: written by an older filterlake (lake version {lake_version(lake)}, this one reads "
            f"{LAKE_VERSION}) and read-only here; run any filterlake command on a writable copy to migrate it"
        )
    with lake_lock(lake), staging(lake) as stage:
        todo = pending(lake)  # again under the lock: another process may have migrated meanwhile
        if todo and on_note:
            on_note(
                f"{lake}: migrating {len(todo)} models to lake version {LAKE_VERSION} (new columns added)"
            )
        for model_id, tables in todo.items():
            for table in sorted(tables, key=MIGRATED_TABLES.index, reverse=True):  # the models row last
                path = model_file(lake, model_id) if table == "models" else layers_file(lake, model_id)
                write_table_atomic(_migrated(lake, model_id, table), path, table, stage)
        mark_current(lake)
    return len(todo)
