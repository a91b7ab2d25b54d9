"""Keep a lake sound: find and remove what interrupted writes left, verify every table, base and derived.

Base tables (`models`, `layers`, `filters`) are the data: a problem there is reported, never deleted silently.
Derived tables are recomputable: a derived file that is unreadable, has the wrong schema, belongs to a model
no longer in the lake or does not match its model is removed by the repair, and the next `filterlake analyze`
computes it again. Files of bases other than the current analysis's are pruned when no analysis is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.lake.layout import (
    COMPACTED,
    PER_MODEL_DERIVED,
    committed_ids,
    compacted_part,
    compacted_parts,
    layers_file,
    model_file,
    staging_root,
    state_file,
    table_dir,
    table_files,
)
from filterlake.lake.location import ObjectLake
from filterlake.lake.rows import compacted_models, part_ids, rows_of
from filterlake.lake.schema import DERIVED_TABLES, added_columns, arrow_schema
from filterlake.lake.writer import flock, lake_lock

ANALYSIS_LOCK = ".analysis.lock"  # held shared by every running analysis, exclusive by a pruning repair


@contextlib.contextmanager
def analysis_running(lake: Path) -> Iterator[None]:
    """Mark an analysis in progress (a shared flock), so that no repair prunes the basis it is writing. On a
    read-only lake nothing can be pruned, and the analysis goes on unmarked."""
    path = lake / ANALYSIS_LOCK
    writable = os.access(lake, os.W_OK)
    with flock(path, fcntl.LOCK_SH, create=writable):
        yield


@contextlib.contextmanager
def no_analysis_running(lake: Path, wait: bool = False) -> Iterator[bool]:
    """True inside when no analysis runs now (and none starts until the block ends); False otherwise, or after
    waiting for the running ones to end when `wait`."""
    path = lake / ANALYSIS_LOCK
    if not path.exists() and not os.access(lake, os.W_OK):  # read-only: no analysis can write here either
        yield True
        return
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine has this pid (the owner of a staging folder)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers(lake: Path) -> dict[str, list[Path]]:
    """What interrupted writes left behind: stale staging folders, orphan filter partitions and layer files."""
    found: dict[str, list[Path]] = {"staging": [], "orphan_filters": [], "orphan_layers": []}
    root = staging_root(lake)
    if root.is_dir():
        for stage in root.iterdir():
            pid = stage.name.split("-", 1)[0]
            if not pid.isdigit() or not pid_alive(int(pid)):
                found["staging"].append(stage)
    ids = committed_ids(lake)
    if table_dir(lake, "filters").is_dir():
        found["orphan_filters"] = [
            d for d in table_dir(lake, "filters").iterdir() if d.name.removeprefix("model_id=") not in ids
        ]
    found["orphan_layers"] = [f for f in table_files(lake, "layers") if f.stem not in ids]
    return found


def remove_path(path: Path) -> None:
    """Remove a leftover file or folder (gone already is fine)."""
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def repair(lake: Path | ObjectLake) -> dict[str, int]:
    """Remove the leftovers of interrupted writes (under the lock, so no commit is in flight); a lake without
    any is not touched (nor locked), so a read-only lake can be read. An object lake: object_check.py."""
    if isinstance(lake, ObjectLake):
        from filterlake.lake import object_check

        return object_check.repair(lake)
    if not any(leftovers(lake).values()):
        return {kind: 0 for kind in leftovers(lake)}
    with lake_lock(lake):
        found = leftovers(lake)
        for paths in found.values():
            for path in paths:
                remove_path(path)
    return {kind: len(paths) for kind, paths in found.items()}


def schema_problem(path: Path, table: str, outdated_ok: bool = False) -> str | None:
    """Why a file is not a valid file of `table` (unreadable, missing or mistyped columns), or None; with
    `outdated_ok`, lacking only the columns that lake/migrate.py adds is fine."""
    try:
        with pa.OSFile(str(path)) as handle:
            schema = pq.read_schema(handle)
    except (OSError, pa.ArrowException) as exc:
        return f"{path}: unreadable Parquet ({str(exc).splitlines()[0][:160]})"
    return schema_mismatch(str(path), schema, table, outdated_ok)


def schema_mismatch(name: str, schema: pa.Schema, table: str, outdated_ok: bool = False) -> str | None:
    """Why the schema of the file `name` is not that of `table` (missing or mistyped columns), or None."""
    expected = arrow_schema(table)
    have = {f.name: f.type for f in schema}  # `schema.names` builds a new list at every access
    missing = [f.name for f in expected if f.name not in have]
    if outdated_ok:
        missing = [column for column in missing if column not in added_columns(table, 1)]
    wrong = [
        f"{f.name} is {have[f.name]}, expected {f.type}"
        for f in expected
        if f.name in have and not have[f.name].equals(f.type)
    ]
    if missing or wrong:
        shown = missing[:5] + (["..."] if len(missing) > 5 else [])
        return f"{name}: schema differs from schemas/lake_tables.json ({'; '.join(shown + wrong)})"
    return None


def readable_models(lake: Path, model_ids: Collection[str]) -> tuple[set[str], set[str]]:
    """(models whose `models` row reads with its schema, models whose row does not): one damaged file must
    not take the whole lake down. A model without its own file is read from the compacted part (checked once)."""
    own = {m for m in model_ids if model_file(lake, m).exists()}
    bad = {m for m in own if schema_problem(model_file(lake, m), "models") is not None}
    part = compacted_part(table_dir(lake, "models"))
    if set(model_ids) - own and part.exists() and schema_problem(part, "models") is not None:
        bad |= set(model_ids) - own
    return set(model_ids) - bad, bad


def _model_of(path: Path, table: str) -> str | None:
    """The model a per-model derived file belongs to (None for per-basis and per-grouping tables, and for the
    compacted parts, whose rows of removed models are unseen until the next compaction drops them)."""
    return path.stem if table in PER_MODEL_DERIVED and COMPACTED not in path.parts else None


def read_state(lake: Path | ObjectLake) -> dict | None:
    """What the last complete analysis used (its state file, `analysis.json`: basis, preset, spec, the models
    version it saw), or None when the lake was never analysed or the file cannot be read."""
    try:
        if isinstance(lake, ObjectLake):
            from filterlake.lake import objects
            from filterlake.lake.location import ROOT

            found = objects.get(lake, state_file(ROOT))
            state = json.loads(found[0]) if found is not None else None
        else:
            state = json.loads(state_file(lake).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def current_basis(lake: Path) -> str | None:
    """The basis of the last analysis (its state file), or None when the lake was never analysed."""
    basis = (read_state(lake) or {}).get("basis_id")
    return basis if isinstance(basis, str) else None


def _basis_of(path: Path, table: str) -> str | None:
    if table == "basis":
        return path.stem
    if table == "shifts":
        return path.stem.split("__", 1)[0]
    for part in path.parts:
        if part.startswith("basis="):
            return part.split("=", 1)[1]
    return None


@dataclass
class DerivedFindings:
    """Derived files to remove, by reason: broken (unreadable, wrong schema or rows), orphan, stale basis."""

    broken: dict[Path, str] = field(default_factory=dict)
    orphans: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)


def derived_findings(lake: Path, ids: set[str]) -> DerivedFindings:
    """Every derived file that no analysis can use: broken, of a model not in the lake, or of an old basis."""
    found = DerivedFindings()
    basis = current_basis(lake)
    for table in DERIVED_TABLES:
        parts = compacted_parts(lake, table) if table in PER_MODEL_DERIVED else []
        for path in [*table_files(lake, table), *parts]:
            model = _model_of(path, table)
            if model is not None and model not in ids:
                found.orphans.append(path)
            elif (
                (problem := schema_problem(path, table))
                or table == "layer_stats"
                and (problem := _layer_stats_problem(lake, path, ids))
            ):
                found.broken[path] = problem
            elif basis is not None and _basis_of(path, table) not in (None, basis):
                found.stale.append(path)
    return found


def stale_files(lake: Path) -> list[Path]:
    """Derived files of bases other than the last analysis's (none before any analysis), by path alone."""
    basis = current_basis(lake)
    if basis is None:
        return []
    return [
        path
        for table in DERIVED_TABLES
        for path in table_files(lake, table)
        if _basis_of(path, table) not in (None, basis)
    ]


def prune_old_bases(lake: Path) -> int:
    """Remove the files of old bases, unless an analysis is running or the lake is read-only; how many."""
    stale = stale_files(lake)
    if not stale or not os.access(lake, os.W_OK):
        return 0
    with no_analysis_running(lake) as idle:
        if not idle:
            return 0
        for path in stale:
            remove_path(path)
    return len(stale)


def _layer_stats_problem(lake: Path, path: Path, ids: set[str]) -> str | None:
    """A layer_stats file whose rows are not its model's 3x3 layers (e.g. written for other bytes); for the
    compacted part, the first such model among those whose compacted rows count."""
    if COMPACTED in path.parts:
        models = sorted(
            (part_ids(path) & compacted_models(lake) & ids)
            - {p.stem for p in path.parent.parent.glob("*.parquet")}
        )
        owner = path.parent.parent
    else:
        models, owner = [path.stem], path.parent
    for model_id in models:
        try:
            layers = rows_of(lake, layers_file(lake, model_id), ["layer_idx"])
        except (OSError, pa.ArrowException, KeyError):
            continue  # the model's own problem, reported by the check of the base tables
        rows = rows_of(lake, owner / f"{model_id}.parquet", ["layer_idx"])
        if layers is None or rows is None:
            continue
        want, have = layers.column("layer_idx").to_pylist(), rows.column("layer_idx").to_pylist()
        if have != want:
            return f"{path}: holds layers {have[:5]}{'...' if len(have) > 5 else ''} of model {model_id[:12]}, the model has {len(want)}"
    return None
