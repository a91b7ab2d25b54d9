"""The lake's file mechanics, in one place: safe reads of files others replace, staging folders, atomic
schema-checked writes, atomic JSON state, and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.lake.layout import staging_root, version_file
from filterlake.lake.schema import LAKE_VERSION, arrow_schema

HASH_CHUNK = 1 << 22


def read_table(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a whole Parquet file through one open handle.

    `pq.read_table(path)` stats the file and then opens it again; when a concurrent `os.replace` lands in
    between, it reads the new file with the old size and fails ("Couldn't deserialize thrift"). One handle
    pins one inode, so the read sees either the old or the new file, whole. The handle is a native
    `pa.OSFile`: a Python file object makes pyarrow abort the interpreter at exit now and then. Read as a
    `ParquetFile` (not `pq.read_table`, which imports pyarrow.dataset and with it pandas: 0.3 s of start-up).
    """
    with pa.OSFile(str(path)) as handle:
        return pq.ParquetFile(handle).read(columns=list(columns) if columns is not None else None)


def read_schema(path: Path) -> pa.Schema | None:
    """A Parquet file's schema (with its key-value metadata), or None when it is missing or unreadable."""
    try:
        with pa.OSFile(str(path)) as handle:
            return pq.read_schema(handle)
    except (OSError, pa.ArrowException):
        return None


def new_stage(lake: Path) -> Path:
    """A fresh staging folder of this process (`_staging/<pid>-<random>`; a dead pid marks a leftover)."""
    stage = staging_root(lake) / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    stage.mkdir(parents=True)
    return stage


class Stage:
    """A staging folder made on first use, so that a command with nothing to write never touches the lake.

    Threads share one (derived/per_model.py): the first use is made under a lock, or two threads racing on it
    would each make a folder and one of them would outlive the command as a leftover."""

    def __init__(self, lake: Path):
        self.lake = lake
        self._path: Path | None = None
        self._made = threading.Lock()

    @property
    def path(self) -> Path:
        with self._made:
            if self._path is None:
                self._path = new_stage(self.lake)
            return self._path

    def remove(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)


@contextlib.contextmanager
def staging(lake: Path) -> Iterator[Stage]:
    """One staging folder for many atomic writes, removed at the end (a killed process leaves it to the next
    writing command's repair, like any staging folder of a dead process)."""
    stage = Stage(lake)
    try:
        yield stage
    finally:
        stage.remove()


def conform(table: pa.Table, name: str) -> pa.Table:
    """`table` with exactly the columns of lake table `name`, in schema order and type; ValueError otherwise."""
    schema = arrow_schema(name)
    if table.schema.remove_metadata().equals(schema):
        return table
    have, want = table.column_names, schema.names  # each a new list per access: read once
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing or extra:
        raise ValueError(
            f"{name}: columns differ from schemas/lake_tables.json (missing {missing}, extra {extra})"
        )
    return table.select(want).cast(schema)


WIDE_COLUMNS = 64  # past this many columns a small file is written without zstd, dictionaries and statistics


def _parquet_options(table: pa.Table) -> dict[str, Any]:
    """How a lake file is encoded. zstd with dictionaries, as DuckDB and pyarrow write by default, except for
    wide tables (layer_stats: 183 columns): their per-column codec setup dominated a per-model file (11 ms of
    write for 83 rows), and snappy without dictionaries or statistics writes them 3.6x faster and 20% smaller.
    Statistics would prune nothing there: every per-model file holds one model."""
    if table.num_columns > WIDE_COLUMNS:
        return {"compression": "snappy", "use_dictionary": False, "write_statistics": False}
    return {"compression": "zstd"}


def write_synced(table: pa.Table, path: Path) -> None:
    """Write a table and flush it to disk, ready to be renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        pq.write_table(table, out, **_parquet_options(table))
        out.flush()
        os.fsync(out.fileno())


def write_table_atomic(
    table: pa.Table, target: Path, name: str, stage: Stage, metadata: Mapping[str, str] | None = None
) -> bool:
    """Write `table` as a file of lake table `name` at `target`: schema-checked, fsynced in `stage`, then renamed
    over `target`, so a reader sees the old file or the new one, never half of one. A target that already holds
    exactly this table is left alone (False), so a read-only lake serves commands that change nothing."""
    table = conform(table, name)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    if _holds(target, table):
        return False
    tmp = stage.path / f"{uuid.uuid4().hex[:8]}-{target.name}"
    write_synced(table, tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return True


def _holds(target: Path, table: pa.Table) -> bool:
    """True when `target` is a readable file with exactly `table`'s rows, schema and key-value metadata."""
    schema = read_schema(target)
    if schema is None or schema.metadata != table.schema.metadata:
        return False
    try:
        return read_table(target).equals(table)
    except (OSError, pa.ArrowException):
        return False


def write_json_atomic(value: Any, target: Path) -> None:
    """Write a JSON state file through a temporary sibling and a rename (never a half-written file); a file that
    already holds this value is left alone."""
    try:
        if json.loads(target.read_text()) == json.loads(json.dumps(value)):
            return
    except (OSError, ValueError):
        pass
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(value, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)


def hash_files(paths: Sequence[Path]) -> tuple[str, str]:
    """(sha256 over the bytes of all files in order, sha256 of the first file), in one read of the bytes.

    The first is a model's id (main file, then external data or shards); the second is what a catalog's
    `sha256` of the main file is checked against.
    """
    everything, first = hashlib.sha256(), hashlib.sha256()
    for i, path in enumerate(paths):
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                everything.update(chunk)
                if i == 0:
                    first.update(chunk)
    return everything.hexdigest(), first.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of one file."""
    return hash_files([path])[0]


def lake_version(lake: Path) -> int:
    """The schema version a lake records (1 for a lake from before versions were recorded)."""
    try:
        return int(json.loads(version_file(lake).read_text())["lake_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def mark_current(lake: Path) -> None:
    """Record that every file of the lake has the current schema (the first commit into a new lake, and
    lake/migrate.py after bringing an older one up)."""
    write_json_atomic({"lake_version": LAKE_VERSION}, version_file(lake))
