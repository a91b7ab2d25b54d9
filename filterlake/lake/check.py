"""Verify a lake (counts, orphans, schemas) and repair what interrupted writes left behind."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.lake.files import read_table
from filterlake.lake.layout import committed_ids, filters_dir, layers_file, model_file
from filterlake.lake.schema import arrow_schema
from filterlake.lake.writer import lake_lock, leftovers, repair


@dataclass
class CheckReport:
    """Findings of `check_lake`: problems that remain, and what was repaired."""

    models: int = 0
    filters: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"problem: {p}" for p in self.problems]
        out += [f"repaired: removed {n} {kind.replace('_', ' ')}" for kind, n in self.repaired.items() if n]
        out.append(f"{'ok' if self.ok else 'NOT OK'}: {self.models} models, {self.filters:,} filters"
                   + ("" if self.ok else f", {len(self.problems)} problems"))
        return out


def _schema_problem(path: Path, table: str) -> str | None:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        return f"{path}: unreadable Parquet ({exc})"
    expected = arrow_schema(table)
    missing = [f.name for f in expected if f.name not in schema.names]
    wrong = [f"{f.name} is {schema.field(f.name).type}, expected {f.type}"
             for f in expected if f.name in schema.names and not schema.field(f.name).type.equals(f.type)]
    if missing or wrong:
        return f"{path}: schema differs from schemas/lake_tables.json ({'; '.join(missing + wrong)})"
    return None


def _model_problems(lake: Path, model_id: str) -> tuple[list[str], int]:
    """Problems of one committed model, and its number of filters."""
    path = model_file(lake, model_id)
    problem = _schema_problem(path, "models")
    if problem:
        return [problem], 0
    row = read_table(path, columns=["model_id", "n_layers_3x3", "n_filters_3x3"]).to_pylist()
    if len(row) != 1 or row[0]["model_id"] != model_id:
        return [f"{path}: must hold exactly one row for model {model_id}"], 0
    n_layers, n_filters = row[0]["n_layers_3x3"], row[0]["n_filters_3x3"]
    problems = []
    lpath = layers_file(lake, model_id)
    if not lpath.exists():
        problems.append(f"model {model_id}: layers file missing")
    elif problem := _schema_problem(lpath, "layers"):
        problems.append(problem)
    elif (rows := pq.ParquetFile(lpath).metadata.num_rows) != n_layers:
        problems.append(f"model {model_id}: {rows} layer rows, models says {n_layers}")
    parts = sorted(filters_dir(lake, model_id).glob("*.parquet"))
    rows = 0
    for part in parts:
        if problem := _schema_problem(part, "filters"):
            problems.append(problem)
        else:
            rows += pq.ParquetFile(part).metadata.num_rows
    if rows != n_filters:
        problems.append(f"model {model_id}: filters partition holds {rows} rows, models says {n_filters}")
    return problems, n_filters


def check_lake(lake: Path, repair_leftovers: bool = True) -> CheckReport:
    """Check every committed model; remove leftovers of interrupted writes when `repair_leftovers`."""
    report = CheckReport()
    if not lake.is_dir():
        report.problems.append(f"{lake}: no such lake folder")
        return report
    if repair_leftovers:
        report.repaired = repair(lake)
    else:
        report.problems += [f"leftover {kind.replace('_', ' ')}: {p}" for kind, paths in leftovers(lake).items()
                            for p in paths]
    with lake_lock(lake):  # a stable view: no commit lands while we count
        for model_id in sorted(committed_ids(lake)):
            problems, n_filters = _model_problems(lake, model_id)
            report.problems += problems
            report.models += 1
            report.filters += n_filters
    return report
