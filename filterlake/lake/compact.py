"""Compaction: fold the per-model files of `models`, `layers` and the per-model derived tables into one compacted
part per folder, so that opening the views costs a few file opens however many models the lake holds.

Layout (lake version 3): each per-model folder (`models/`, `layers/`, `layer_stats/`,
`histograms/basis=B/spec=S/`, `extents/basis=B/`) holds `<model_id>.parquet` files written since the last
compaction and at most one compacted part, `<folder>/compacted/part-0.parquet`. Readers follow the rules of
lake/rows.py (and the views of sql/): a model's own file supersedes its compacted rows, and compacted rows count
only for models in the compacted `models` part. The `filters` table keeps its per-model hive partitions.

Protocol, under the lake lock (no commit, metadata merge, removal or repair meanwhile) and the exclusive
analysis lock (no analysis writing derived files meanwhile):

1. for every folder of every per-model table except `models`, write its new part in a staging folder (each
   committed model's rows: its own file if it has one, else its rows of the old part if they count; rows of
   removed models dropped), fsync it and rename it over the old part. The rows of models not yet in the
   compacted `models` part are unseen by the rules, so readers see nothing change;
2. the commit: the new `models` part, holding every committed model, renamed over the old one. From this
   moment the new parts' rows count, and each equals the per-model file still beside it (which wins);
3. remove the per-model files folded in (a model's own file and its compacted rows are the same rows, so
   each removal changes nothing a reader sees).

A kill at any moment leaves a lake that reads the same (a kill before step 2 leaves unseen rows, dropped by the
next compaction; after it, per-model files that duplicate compacted rows, folded again by the next one), and
`filterlake check` passes on it. A metadata correction of a compacted model writes a small per-model `models`
file (a delta) that supersedes its compacted row; a removal rewrites only the `models` part (lake/writer.py).
`layer_stats` files record the quality parameters they were computed with (`params` metadata); the part records
one set, the most common, and files of other parameters stay per-model.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filterlake.lake.files import Stage, conform, read_schema, read_table, staging
from filterlake.lake.layout import (
    GLOBS,
    PER_MODEL_TABLES,
    committed_ids,
    compacted_part,
    per_model_folders,
    table_dir,
)
from filterlake.lake.location import ObjectLake
from filterlake.lake.rows import EMPTY_MODELS, compacted_models, part_ids
from filterlake.lake.schema import arrow_schema
from filterlake.lake.writer import ROW_GROUP_ROWS, fsync_dir, lake_lock

THRESHOLD = (
    100  # per-model files of one table past which `ingest` and `analyze` compact (~0.1 s of view opening)
)
BUFFER_ROWS = 1 << 16  # rows gathered from small files before they are written as one batch


@dataclass
class Compaction:
    """What one compaction did: models in the `models` part, per-model files folded, parts written."""

    models: int = 0
    folded: int = 0
    parts: int = 0
    kept: list[str] = field(default_factory=list)  # notes: per-model files left as they are, and why

    def line(self) -> str:
        return (
            f"compacted: {self.models} models, {self.folded} per-model files folded into {self.parts} parts"
        )


def per_model_files(lake: Path) -> int:
    """The largest number of per-model files of one per-model table: what makes the views slow to open."""
    return max((sum(1 for _ in lake.glob(GLOBS[table])) for table in PER_MODEL_TABLES), default=0)


def _tag(schema: pa.Schema | None) -> bytes | None:
    return (schema.metadata or {}).get(b"params") if schema is not None else None


class _PartWriter:
    """Streams rows of one table into a staged part in large row groups, with the part's metadata."""

    def __init__(self, path: Path, table: str, metadata: dict[bytes, bytes] | None):
        self.schema = arrow_schema(table).with_metadata(metadata) if metadata else arrow_schema(table)
        self.table = table
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._writer = pq.ParquetWriter(self._handle, self.schema, compression="zstd")
        self._pending: list[pa.Table] = []
        self._rows = 0
        self.written = 0

    def add(self, rows: pa.Table) -> None:
        self._pending.append(conform(rows, self.table).replace_schema_metadata(self.schema.metadata))
        self._rows += rows.num_rows
        if self._rows >= BUFFER_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            batch = pa.concat_tables(self._pending)
            self._writer.write_table(batch, row_group_size=ROW_GROUP_ROWS)
            self.written += batch.num_rows
        self._pending, self._rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()


def _fold_folder(
    lake: Path, table: str, folder: Path, ids: set[str], counted: frozenset[str], stage: Stage
) -> tuple[Path | None, list[Path], list[str]]:
    """Stage the new part of one folder: (staged part or None when nothing changes, files folded, notes)."""
    from filterlake.lake.maintenance import schema_problem

    files = {p.stem: p for p in folder.glob("*.parquet") if p.stem in ids and not schema_problem(p, table)}
    old = compacted_part(folder)
    old_schema = read_schema(old)
    schemas = {m: read_schema(p) for m, p in files.items()} if table == "layer_stats" else {}
    tags = Counter(_tag(s) for s in schemas.values())
    if old_schema is not None:
        tags[_tag(old_schema)] += len(counted)
    tag = tags.most_common(1)[0][0] if tags else None
    notes = []
    if table == "layer_stats":
        other = [m for m, s in schemas.items() if _tag(s) != tag]
        files = {m: p for m, p in files.items() if m not in other}
        if other:
            notes.append(f"{len(other)} layer_stats files of other quality parameters stay per-model")
    old_ids = set(part_ids(old))
    keep_old = (old_ids & counted & ids) - set(files)
    old_keeps_tag = table != "layer_stats" or old_schema is None or _tag(old_schema) == tag
    if not files and keep_old == old_ids and old_keeps_tag:
        return None, [], notes  # the part is already what compaction would write
    if not old_keeps_tag:
        keep_old = set()
    rows_of = {m: pq.ParquetFile(p).metadata.num_rows for m, p in files.items()}
    empty = {m for m, n in rows_of.items() if n == 0} | (keep_old & set(_empty_models(old)))
    metadata = {EMPTY_MODELS: "\n".join(sorted(empty)).encode()}
    if tag is not None:
        metadata[b"params"] = tag
    writer = _PartWriter(stage.path / folder.relative_to(lake) / "part.parquet", table, metadata)
    try:
        if keep_old:
            with pa.OSFile(str(old)) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=BUFFER_ROWS):
                    rows = pa.Table.from_batches([batch])
                    mask = pc.is_in(rows.column("model_id"), value_set=pa.array(sorted(keep_old)))
                    writer.add(rows.filter(mask))
        for model_id in sorted(files):
            writer.add(read_table(files[model_id]))
    finally:
        writer.close()
    return writer.path, list(files.values()), notes


def _empty_models(part: Path) -> list[str]:
    """The models a compacted part covers with zero rows (its metadata)."""
    schema = read_schema(part)
    return ((schema.metadata or {}).get(EMPTY_MODELS, b"") if schema is not None else b"").decode().split()


def _install(staged: Path, folder: Path) -> None:
    """Rename a staged part over the folder's compacted part (atomic; the folder's entry made durable)."""
    target = compacted_part(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    fsync_dir(target.parent)


def compact(lake: Path, wait: bool = True) -> Compaction | None:
    """Fold every per-model file of the per-model tables into the compacted parts (the protocol above); None
    when an analysis is running and `wait` is False (the next command's compaction does it)."""
    from filterlake.lake.maintenance import no_analysis_running, repair
    from filterlake.lake.migrate import migrate

    repair(lake)
    migrate(lake)
    report = Compaction()
    with no_analysis_running(lake, wait) as idle:
        if not idle:
            return None
        with lake_lock(lake), staging(lake) as stage:
            ids = committed_ids(lake)
            counted = compacted_models(lake)
            folded: list[Path] = []
            for table in (*PER_MODEL_TABLES[1:], "models"):  # the models part last: the commit
                for folder in per_model_folders(lake, table):
                    staged, files, notes = _fold_folder(lake, table, folder, ids, counted, stage)
                    report.kept += notes
                    if staged is not None:
                        _install(staged, folder)
                        report.parts += 1
                        folded += files
            for path in folded:  # each file's rows are now the same rows of its part
                path.unlink(missing_ok=True)
            for folder in {p.parent for p in folded}:
                fsync_dir(folder)
            report.folded = len(folded)
            report.models = len(compacted_models(lake)) if table_dir(lake, "models").is_dir() else 0
    return report


def maybe_compact(lake: Path | ObjectLake, threshold: int = THRESHOLD) -> Compaction | None:
    """Compact when a per-model table has `threshold` per-model files or more and the lake is writable (run at
    the end of `ingest` and `analyze`); skipped while an analysis runs, and for an object lake (compaction
    there needs a protocol of its own, not written yet)."""
    if (
        isinstance(lake, ObjectLake)
        or not lake.is_dir()
        or not os.access(lake, os.W_OK)
        or per_model_files(lake) < threshold
    ):
        return None
    return compact(lake, wait=False)
