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
    filters_dir,
    layers_file,
    model_file,
    staging_root,
    state_file,
    table_dir,
    table_files,
)
from filterlake.lake.location import ObjectLake
from filterlake.lake.migrate import lake_version, migrate, pending
from filterlake.lake.rows import compacted_models, part_ids, rows_of
from filterlake.lake.schema import DERIVED_TABLES, LAKE_VERSION, added_columns, arrow_schema
from filterlake.lake.writer import flock, lake_lock
from filterlake.vocab import is_meta_only

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


def _remove(path: Path) -> None:
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
                _remove(path)
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


def current_basis(lake: Path) -> str | None:
    """The basis of the last analysis (its state file), or None when the lake was never analysed."""
    try:
        return json.loads(state_file(lake).read_text())["basis_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
            _remove(path)
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


@dataclass
class CheckReport:
    """Findings of `check_lake`: problems that remain, and what was repaired."""

    models: int = 0
    filters: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"problem: {p}" for p in self.problems]
        out += [f"note: {n}" for n in self.notes]
        out += [f"repaired: removed {n} {kind.replace('_', ' ')}" for kind, n in self.repaired.items() if n]
        out.append(
            f"{'ok' if self.ok else 'NOT OK'}: {self.models} models, {self.filters:,} filters"
            + ("" if self.ok else f", {len(self.problems)} problems")
        )
        return out


def _model_problems(lake: Path, model_id: str, outdated_ok: bool = False) -> tuple[list[str], int]:
    """Problems of one committed model, each naming the model, its source and how to repair it; its filters.
    With `outdated_ok` (a lake not migrated yet), missing new columns are not a problem of the model. Its rows
    are read from its own files or from the compacted parts (whose schemas `check_lake` checks once)."""
    path = model_file(lake, model_id)
    fix = f"`filterlake remove {model_id[:12]}` drops it"
    if path.exists() and (problem := schema_problem(path, "models", outdated_ok)):
        return [f"model {model_id[:12]}: {problem}; {fix}, then ingest its source again"], 0
    table = rows_of(lake, path, ["model_id", "name", "source_uri", "n_layers_3x3", "n_filters_3x3", "extra"])
    row = table.to_pylist() if table is not None else []
    if len(row) != 1 or row[0]["model_id"] != model_id:
        return [f"{path}: must hold exactly one row for model {model_id}; {fix}"], 0
    n_layers, n_filters = row[0]["n_layers_3x3"], row[0]["n_filters_3x3"]
    if is_meta_only(row[0]["extra"]):  # imported with --meta-only: its layers rows, no filters (vocab.py)
        n_filters = 0
    problems = []
    lpath = layers_file(lake, model_id)
    if lpath.exists() and (problem := schema_problem(lpath, "layers", outdated_ok)):
        problems.append(problem)
    elif (layers := rows_of(lake, lpath, ["layer_idx"])) is None:
        problems.append("layers file missing")
    elif layers.num_rows != n_layers:
        problems.append(f"{layers.num_rows} layer rows, models says {n_layers}")
    rows = 0
    for part in sorted(filters_dir(lake, model_id).glob("*.parquet")):
        if problem := schema_problem(part, "filters"):
            problems.append(problem)
        else:
            rows += pq.ParquetFile(part).metadata.num_rows
    if rows != n_filters:
        problems.append(f"filters partition holds {rows} rows, models says {n_filters}")
    return named_problems(row[0], problems), n_filters


def named_problems(row: dict, problems: list[str]) -> list[str]:
    """Each problem of a committed model (its `models` row), naming the model, its source and the repair."""
    model_id = row["model_id"]
    who = f"model {model_id[:12]} '{row['name']}' from {row['source_uri']}"
    repair_hint = (
        f"`filterlake remove {model_id[:12]}` drops it; `filterlake ingest --force {row['source_uri']}` "
        "rewrites it"
    )
    return [f"{who}: {problem}; {repair_hint}" for problem in problems]


def _compacted_base_problems(lake: Path, outdated_ok: bool) -> list[str]:
    """Schema problems of the compacted `models` and `layers` parts (each holds the rows of many models)."""
    problems = []
    for table in ("models", "layers"):
        part = compacted_part(table_dir(lake, table))
        if part.exists() and (problem := schema_problem(part, table, outdated_ok)):
            problems.append(
                f"{problem}; restore the lake from a backup, or remove and ingest its models again"
            )
    return problems


def _check_derived(lake: Path, ids: set[str], report: CheckReport, repair_it: bool) -> None:
    """Verify the derived tables; with `repair_it`, remove what no analysis can use (recomputed on demand)."""
    found = derived_findings(lake, ids)
    if repair_it:
        for path in [*found.broken, *found.orphans]:
            _remove(path)
        report.repaired["broken_derived_files"] = len(found.broken)
        report.repaired["orphan_derived_files"] = len(found.orphans)
        report.notes += [
            f"removed {reason}; `filterlake analyze` computes it again" for reason in found.broken.values()
        ]
        with no_analysis_running(lake) as idle:
            if idle:
                for path in found.stale:
                    _remove(path)
                report.repaired["files_of_old_bases"] = len(found.stale)
            elif found.stale:
                report.notes.append(f"{len(found.stale)} files of old bases kept: an analysis is running")
        return
    report.problems += list(found.broken.values())
    report.problems += [f"orphan derived file (its model is not in the lake): {p}" for p in found.orphans]
    if found.stale:
        report.notes.append(
            f"{len(found.stale)} derived files belong to bases other than the current "
            f"analysis's; `filterlake check` (without --no-repair) removes them"
        )


def check_lake(lake: Path | ObjectLake, repair_leftovers: bool = True) -> CheckReport:
    """Check every committed model and every derived file; repair what is repairable when `repair_leftovers`.
    An object lake is checked by object_check.py."""
    if isinstance(lake, ObjectLake):
        from filterlake.lake import object_check

        return object_check.check_lake(lake, repair_leftovers)
    report = CheckReport()
    if not lake.is_dir():
        report.problems.append(f"{lake}: no such lake folder")
        return report
    if repair_leftovers:
        report.repaired = repair(lake)
        if migrated := migrate(lake):
            report.notes.append(
                f"migrated {migrated} models to lake version {LAKE_VERSION} (new columns added)"
            )
    else:
        report.problems += [
            f"leftover {kind.replace('_', ' ')}: {p}"
            for kind, paths in leftovers(lake).items()
            for p in paths
        ]
        if outdated := pending(lake):
            report.problems.append(
                f"{len(outdated)} models were written by an older filterlake (lake version {lake_version(lake)}) "
                f"and lack the columns of version {LAKE_VERSION}; `filterlake check` (without --no-repair) "
                f"migrates them"
            )
    with lake_lock(lake, shared=not repair_leftovers):  # a stable view: no commit lands while we count
        ids = committed_ids(lake)
        if base_problems := _compacted_base_problems(lake, outdated_ok=not repair_leftovers):
            report.problems += base_problems
            return report
        for model_id in sorted(ids):
            problems, n_filters = _model_problems(lake, model_id, outdated_ok=not repair_leftovers)
            report.problems += problems
            report.models += 1
            report.filters += n_filters
        _check_derived(lake, ids, report, repair_leftovers)
    return report
