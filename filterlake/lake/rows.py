"""A model's rows of a per-model table, wherever they are: its own file, or the compacted part of its folder.

Every per-model folder (`models/`, `layers/`, `layer_stats/`, `histograms/basis=B/spec=S/`, `extents/basis=B/`)
holds one file per model written since the last compaction and at most one compacted part
(`<folder>/compacted/part-0.parquet`, see lake/compact.py). The rules, the same as the views of `sql/`:

- a model's own file supersedes its compacted rows (a new commit, or a metadata correction of `models`);
- compacted rows of a table other than `models` count only for models in the compacted `models` part: a removed
  model leaves its rows there, unseen, until the next compaction drops them, and a model committed again after
  a removal is never joined with them.

Code outside lake/ names a model's rows by its per-model path (`layers_file(lake, m)`, `hist_file(...)`) and asks
here whether they exist and what they are. Compacted parts are read once per process and file version (keyed
on inode, size and mtime), so asking for thousands of models costs one read of each part.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from filterlake.errors import LakeError
from filterlake.lake.files import read_schema, read_table
from filterlake.lake.layout import compacted_part, table_dir
from filterlake.lake.location import ObjectLake

CACHED_PARTS = 16  # parts (and column sets) kept in memory
EMPTY_MODELS = b"empty_models"  # a part's metadata: the models it covers with zero rows (newline-separated)


class _Part:
    """One compacted part in memory (some columns), with each model's run of rows: compaction writes each model's
    rows together (from one source, in their order). The models it covers with zero rows (e.g. a model without
    3x3 layers) have an empty run."""

    def __init__(self, path: Path, table: pa.Table):
        self.table = table
        empty = (table.schema.metadata or {}).get(EMPTY_MODELS, b"").decode().split()
        ids = np.array(table.column("model_id").to_pylist(), dtype=object)  # (to_numpy would import pandas)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
        bounds = [*starts.tolist(), len(ids)]
        self.rows: dict[str, tuple[int, int]] = {m: (0, 0) for m in empty}
        self.rows.update({str(ids[a]): (a, b) for a, b in itertools.pairwise(bounds)})
        if len(self.rows) != len(empty) + len(starts):
            raise LakeError(f"{path}: the rows of a model are apart (`filterlake compact` rewrites it)")

    def take(self, model_id: str) -> pa.Table:
        start, stop = self.rows.get(model_id, (0, 0))
        return self.table.slice(start, stop - start)


_cache: dict[tuple[str, tuple[str, ...] | None], tuple[tuple[int, int, int], _Part]] = {}


def _part(path: Path, columns: Sequence[str] | None = None) -> _Part | None:
    """The compacted part at `path` (None when there is none), read once per version of the file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(path), tuple(columns) if columns is not None else None)
    version = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _cache.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    wanted = None if columns is None else list(dict.fromkeys(["model_id", *columns]))
    part = _Part(path, read_table(path, columns=wanted))
    if len(_cache) >= CACHED_PARTS:
        _cache.pop(next(iter(_cache)))
    _cache[key] = (version, part)
    return part


def part_ids(path: Path) -> frozenset[str]:
    """The models a compacted part holds rows of (empty when there is no part)."""
    part = _part(path, ["model_id"])
    return frozenset(part.rows) if part is not None else frozenset()


def compacted_models(lake: Path) -> frozenset[str]:
    """The models of the compacted `models` part: those whose compacted rows of every table count."""
    return part_ids(compacted_part(table_dir(lake, "models")))


def _compacted_holds(lake: Path, path: Path) -> bool:
    """Whether the compacted part of `path`'s folder holds rows that count for `path`'s model."""
    model_id = path.stem
    part = compacted_part(path.parent)
    if path.parent == table_dir(lake, "models"):
        return model_id in compacted_models(lake)
    return model_id in compacted_models(lake) and model_id in part_ids(part)


def has_rows(lake: Path, path: Path) -> bool:
    """Whether the model of the per-model path `path` has rows there: its own file, or compacted rows."""
    return path.exists() or _compacted_holds(lake, path)


def rows_of(lake: Path, path: Path, columns: Sequence[str] | None = None) -> pa.Table | None:
    """The rows of the per-model path `path`'s model (some `columns`), from its own file (read through one
    handle) or from the compacted part of its folder; None when it has neither."""
    if path.exists():
        try:
            return read_table(path, columns)
        except FileNotFoundError:  # folded into the compacted part meanwhile
            pass
    if not _compacted_holds(lake, path):
        return None
    part = _part(compacted_part(path.parent), columns)
    assert part is not None
    table = part.take(path.stem)
    return table.select(list(columns)) if columns is not None else table


def required_rows(lake: Path, path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """`rows_of`, with FileNotFoundError naming `path` when the model has no rows there."""
    table = rows_of(lake, path, columns)
    if table is None:
        raise FileNotFoundError(
            f"{path}: no such file, nor rows of model {path.stem} in {compacted_part(path.parent)}"
        )
    return table


def stored_schema(lake: Path, path: Path) -> pa.Schema | None:
    """The schema (with its key-value metadata) of the file holding `path`'s rows; None when there are none."""
    if path.exists():
        return read_schema(path)
    return read_schema(compacted_part(path.parent)) if _compacted_holds(lake, path) else None


def model_row(lake: Path | ObjectLake, model_id: str, columns: Sequence[str] | None = None) -> dict | None:
    """A committed model's `models` row as a dict (some `columns`), or None when the lake does not hold it."""
    from filterlake.lake.layout import model_file

    if isinstance(lake, ObjectLake):
        from filterlake.lake import object_commit

        return object_commit.model_row(lake, model_id, columns)
    table = rows_of(lake, model_file(lake, model_id), columns)
    return table.to_pylist()[0] if table is not None and table.num_rows else None


def model_rows(lake: Path, model_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict]:
    """The `models` rows (some `columns`) of many models, each from its own file or the compacted part."""
    from filterlake.lake.layout import model_file

    rows = {}
    for model_id in model_ids:
        table = rows_of(lake, model_file(lake, model_id), columns)
        if table is not None and table.num_rows:
            rows[model_id] = table.to_pylist()[0]
    return rows


def models_version(lake: Path | ObjectLake) -> str:
    """A digest of the lake's `models` rows as stored: their files' names and MD5s (an object's ETag). Any
    commit, removal or metadata merge changes it; a working copy has the version of its bucket (its models
    files are the objects, byte for byte). Compacting a local lake changes it too."""
    import hashlib

    from filterlake.lake.layout import table_dir

    if isinstance(lake, ObjectLake):
        from filterlake.lake import objects
        from filterlake.lake.location import ROOT

        folder = table_dir(ROOT, "models")
        listed = objects.inventory(lake, folder)
        entries = [f"{Path(k).name} {v.etag}" for k, v in listed.items() if Path(k).parent == folder]
    else:
        folder = table_dir(lake, "models")
        files = [*folder.glob("*.parquet"), compacted_part(folder)]
        entries = [
            f"{path.relative_to(folder)} {hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()}"
            for path in files
            if path.is_file()
        ]
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def folder_select(lake: Path, folder: Path) -> tuple[str | None, list]:
    """A DuckDB SELECT (and its parameters) of the rows of one per-model folder, by the rules above, with the
    files resolved now (its per-model files and the counted models of its compacted part); None when the
    folder holds no rows."""
    own = sorted(folder.glob("*.parquet"))
    part = compacted_part(folder)
    counted = sorted((part_ids(part) & compacted_models(lake)) - {p.stem for p in own})
    selects, params = [], []
    if own:
        selects.append("SELECT * FROM read_parquet(?)")
        params.append([str(p) for p in own])
    if counted:
        selects.append("SELECT * FROM read_parquet(?) WHERE model_id IN (SELECT unnest(?::VARCHAR[]))")
        params += [str(part), counted]
    return (" UNION ALL ".join(selects) if selects else None), params
