"""`filterlake check`: verify every committed model and every derived file of a lake (repairing what is
repairable), and say for each problem which model and source it is and how to repair it.

Base tables (`models`, `layers`, `filters`) are the data: a problem there is reported, never deleted silently;
derived files that do not match their model are removed (lake/maintenance.py) and recomputed by the next
`filterlake analyze`. An object lake (`s3://`) is checked by lake/object_check.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from filterlake.lake.layout import (
    committed_ids,
    compacted_part,
    filters_dir,
    layers_file,
    model_file,
    table_dir,
)
from filterlake.lake.location import ObjectLake
from filterlake.lake.maintenance import (
    derived_findings,
    leftovers,
    no_analysis_running,
    remove_path,
    repair,
    schema_problem,
)
from filterlake.lake.migrate import lake_version, migrate, pending
from filterlake.lake.rows import rows_of
from filterlake.lake.schema import LAKE_VERSION
from filterlake.lake.writer import lake_lock
from filterlake.vocab import is_meta_only


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
            remove_path(path)
        report.repaired["broken_derived_files"] = len(found.broken)
        report.repaired["orphan_derived_files"] = len(found.orphans)
        report.notes += [
            f"removed {reason}; `filterlake analyze` computes it again" for reason in found.broken.values()
        ]
        with no_analysis_running(lake) as idle:
            if idle:
                for path in found.stale:
                    remove_path(path)
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
