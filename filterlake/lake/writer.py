"""Write one model into the lake atomically: stage every file, then move them into place under a lock.

Commit order is filters partition, layers file, models row; the models row is the commit mark, so the
views of `sql/` (which join on `models`) never see a partly written model, and anything a crash leaves
behind without its models row is an orphan that `lake.maintenance.repair` removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.lake.files import mark_current, new_stage, read_table, write_synced
from filterlake.lake.layout import (
    compacted_part,
    filters_dir,
    filters_part,
    is_committed,
    layers_file,
    lock_file,
    model_file,
    per_model_derived_files,
    table_dir,
)
from filterlake.lake.location import ObjectLake
from filterlake.lake.schema import WEIGHT_COLUMNS, arrow_schema

ROW_GROUP_ROWS = 1 << 20  # ~40 MB of filters per row group: bounded memory, efficient scans
TRANSPOSE_BLOCK = 1 << 16  # rows transposed at a time into the column buffers (stays in cache)


@contextlib.contextmanager
def lake_lock(lake: Path, shared: bool = False) -> Iterator[None]:
    """A lock over commits and repairs of one lake (an advisory flock on `LAKE/.lock`): exclusive for writers,
    `shared` for readers that want a stable view (e.g. `check`), which also works on a read-only lake."""
    with flock(lock_file(lake), fcntl.LOCK_SH if shared else fcntl.LOCK_EX, create=not shared):
        yield


@contextlib.contextmanager
def flock(path: Path, mode: int, create: bool = True) -> Iterator[bool]:
    """Hold an flock on `path` (made when `create`); a reader that cannot open it (read-only lake, no lock file
    yet) goes on unlocked, as no writer can be committing there either. Yields whether the lock is held."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not os.access(path, os.R_OK):
        yield False
        return
    with open(path, "a+" if create else "r") as handle:
        fcntl.flock(handle, mode)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _repeated(value: str, n: int) -> pa.Array | pa.ChunkedArray:
    """`n` copies of `value` as a string array, built from its buffers (no list of n Python strings)."""
    raw = np.frombuffer(value.encode(), np.uint8)
    per_chunk = max((1 << 31) // max(len(raw), 1) - 1, 1)  # int32 offsets: chunk very large columns
    if n > per_chunk:
        return pa.chunked_array([_repeated(value, min(per_chunk, n - at)) for at in range(0, n, per_chunk)])
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(raw))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.tile(raw, n)))


def _filters_table(model_id: str, layers: list[tuple[int, np.ndarray, int]]) -> pa.Table:
    """The filters rows of layers or blocks of layers [(layer_idx, (n, 9) float32, first filter_idx), ...], in
    order, as one table.

    Built column-wise: the weights are transposed into nine contiguous columns in cache-sized blocks (no
    per-layer Arrow arrays, no per-row Python objects).
    """
    n = sum(len(f) for _, f, _ in layers)
    columns = np.empty((len(WEIGHT_COLUMNS), n), np.float32)
    layer_idx = np.empty(n, np.int32)
    filter_idx = np.empty(n, np.int32)
    at = 0
    for idx, filters, first in layers:
        filters = np.asarray(filters, np.float32).reshape(-1, 9)
        size = len(filters)
        for start in range(0, size, TRANSPOSE_BLOCK):
            block = filters[start : start + TRANSPOSE_BLOCK]
            columns[:, at + start : at + start + len(block)] = block.T
        layer_idx[at : at + size] = idx
        filter_idx[at : at + size] = np.arange(first, first + size, dtype=np.int32)
        at += size
    arrays = [
        _repeated(model_id, n),
        pa.array(layer_idx),
        pa.array(filter_idx),
        *(pa.array(columns[j]) for j in range(len(WEIGHT_COLUMNS))),
    ]
    return pa.Table.from_arrays(arrays, schema=arrow_schema("filters"))


class ModelWriter:
    """Stages one model's tables; `commit()` moves them into the lake, `discard()` drops them."""

    def __init__(self, lake: Path, model_id: str, stage: Path | None = None):
        self.lake = lake
        self.model_id = model_id
        self.stage = stage or new_stage(lake)
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[tuple[int, np.ndarray, int]] = []
        self._pending_rows = 0
        self.rows_written = 0

    @property
    def _filters_file(self) -> Path:
        return filters_part(self.stage, self.model_id)

    def add_layer(self, layer_idx: int, filters: np.ndarray, first_filter: int = 0) -> None:
        """Queue one layer's (n, 9) float32 filters, or the block of a streamed layer that starts at filter
        `first_filter` (blocks in order); rows are flushed in row groups of ~1M filters."""
        if not len(filters):
            return
        self._pending.append((layer_idx, filters, first_filter))
        self._pending_rows += len(filters)
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            self._filters_file.parent.mkdir(parents=True)
            self._writer = pq.ParquetWriter(
                self._filters_file,
                arrow_schema("filters"),
                compression="zstd",
                use_dictionary=["model_id"],
                write_statistics=["model_id", "layer_idx", "filter_idx"],
            )
        table = _filters_table(self.model_id, self._pending)
        self._pending, self._pending_rows = [], 0
        self._writer.write_table(table, row_group_size=max(len(table), 1))
        self.rows_written += len(table)

    def commit(self, layer_rows: list[dict], model_row: dict) -> bool:
        """Move the staged model into the lake; False when another writer committed the same model first."""
        self._seal(layer_rows, model_row)
        return self._install()

    def _seal(self, layer_rows: list[dict], model_row: dict) -> None:
        """Finish the staged files: the filters part closed and fsynced, `layers.parquet`, `model.parquet`."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            with open(self._filters_file, "rb+") as handle:
                os.fsync(handle.fileno())
        write_synced(
            pa.Table.from_pylist(layer_rows, schema=arrow_schema("layers")), self.stage / "layers.parquet"
        )
        write_synced(
            pa.Table.from_pylist([model_row], schema=arrow_schema("models")), self.stage / "model.parquet"
        )

    def _install(self) -> bool:
        """The local commit: renames under the lake lock, the models row last (False: already present)."""
        with lake_lock(self.lake):
            if is_committed(self.lake, self.model_id):
                self.discard()
                return False
            if not table_dir(self.lake, "models").exists():  # the first model of a new lake
                mark_current(self.lake)
            target = filters_dir(self.lake, self.model_id)
            if target.exists():  # an orphan partition of an interrupted earlier write
                shutil.rmtree(target)
            if self._writer is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(self._filters_file.parent, target)
            for src, dst in (
                (self.stage / "layers.parquet", layers_file(self.lake, self.model_id)),
                (self.stage / "model.parquet", model_file(self.lake, self.model_id)),
            ):
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
            fsync_dir(table_dir(self.lake, "models"))
        shutil.rmtree(self.stage, ignore_errors=True)
        return True

    def discard(self) -> None:
        """Drop everything staged (on error or when the model is already present)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        shutil.rmtree(self.stage, ignore_errors=True)


def open_writer(lake: Path | ObjectLake, model_id: str) -> ModelWriter:
    """The writer of one model: ModelWriter for a lake folder, object_commit's for an object lake."""
    if isinstance(lake, ObjectLake):
        from filterlake.lake.object_commit import ObjectModelWriter

        return ObjectModelWriter(lake, model_id)
    return ModelWriter(lake, model_id)


def fsync_dir(path: Path) -> None:
    """Make the entries of a folder (renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_compacted_row(lake: Path, model_id: str) -> None:
    """Rewrite the compacted `models` part without the model's row (atomic; nothing when it holds none)."""
    import pyarrow.compute as pc

    from filterlake.lake.rows import compacted_models

    if model_id not in compacted_models(lake):
        return
    part = compacted_part(table_dir(lake, "models"))
    table = read_table(part)
    kept = table.filter(pc.not_equal(table.column("model_id"), model_id))
    stage = new_stage(lake)
    try:
        write_synced(kept, stage / "part.parquet")
        os.replace(stage / "part.parquet", part)
        fsync_dir(part.parent)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def update_model_row(lake: Path | ObjectLake, model_id: str, update: Callable[[dict], dict | None]) -> bool:
    """Rewrite a committed model's metadata row as `update(row)` says; False when it returns None.

    Read, update and replace all happen under the lake lock, so two processes merging metadata into the same
    model never lose each other's change. The new row goes to the model's own `models` file: for a compacted
    model a one-row delta that supersedes its compacted row until the next compaction folds it in
    (lake/compact.py). Filters, layers and the compacted parts stay untouched.
    """
    from filterlake.lake.rows import model_row

    if isinstance(lake, ObjectLake):  # optimistic: If-Match on the row's ETag
        from filterlake.lake import object_commit

        return object_commit.update_model_row(lake, model_id, update)
    target = model_file(lake, model_id)
    stage = new_stage(lake)
    try:
        with lake_lock(lake):
            current = model_row(lake, model_id)
            if current is None:
                raise FileNotFoundError(f"{target}: the lake does not hold model {model_id}")
            row = update(current)
            if row is None:
                return False
            write_synced(pa.Table.from_pylist([row], schema=arrow_schema("models")), stage / "model.parquet")
            os.replace(stage / "model.parquet", target)
            return True
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def remove_model(lake: Path | ObjectLake, model_id: str) -> bool:
    """Remove a committed model and every row of it, base and derived (its models row first, so readers stop
    seeing it at once); False when the lake does not hold it.

    A compacted model leaves the compacted `models` part (rewritten without its row, after its delta file is
    removed: the model stays whole until it is gone); its rows in the other compacted parts stop counting at
    once (lake/rows.py) and the next compaction drops them."""
    if isinstance(lake, ObjectLake):
        from filterlake.lake import object_commit

        return object_commit.remove_model(lake, model_id)
    with lake_lock(lake):
        if not is_committed(lake, model_id):
            return False
        model_file(lake, model_id).unlink(missing_ok=True)
        _drop_compacted_row(lake, model_id)
        fsync_dir(table_dir(lake, "models"))
        shutil.rmtree(filters_dir(lake, model_id), ignore_errors=True)
        for path in [layers_file(lake, model_id), *per_model_derived_files(lake, model_id)]:
            path.unlink(missing_ok=True)
    return True
