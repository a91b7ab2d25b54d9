"""DuckDB connections over a lake with the views of `sql/` loaded (empty tables get empty typed views)."""
from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

import duckdb
import pyarrow as pa

from filterlake.lake.layout import GLOBS, model_file
from filterlake.lake.schema import BASE_TABLES, arrow_schema
from filterlake.resources import resource_dir

_DUCK_TYPES = {pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.float32(): "FLOAT",
               pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN", pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ"}


def statements(sql_file: str) -> list[str]:
    """The statements of one file of `sql/` (comments dropped, split on ';' at line ends)."""
    text = (resource_dir("sql") / sql_file).read_text()
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", text, flags=re.MULTILINE) if s.strip()]


def _empty_view(table: str) -> str:
    cols = ", ".join(f"NULL::{_DUCK_TYPES[f.type]} AS {f.name}" for f in arrow_schema(table))
    return f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM (SELECT {cols}) WHERE false"


def _snapshot_view(lake: Path, model_ids: Collection[str]) -> str:
    """The `models` view over exactly these committed models (a fixed snapshot of the lake)."""
    files = ", ".join("'" + str(model_file(lake, m)).replace("'", "''") + "'" for m in sorted(model_ids))
    return f"CREATE OR REPLACE VIEW models AS SELECT * FROM read_parquet([{files}])"


DERIVED_SQL = ("analysis.sql",)


def connect(lake: Path, model_ids: Collection[str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose views read the lake at `lake`.

    With `model_ids`, every view sees exactly those models (all other views filter on `models`), so a reader
    keeps one consistent snapshot while ingests commit new models.
    """
    con = duckdb.connect()
    con.execute("SET VARIABLE lake = ?", [str(lake)])
    macro, *views = statements("tables.sql")
    con.execute(macro)
    base = dict(zip(BASE_TABLES, views))
    for table in BASE_TABLES:
        if table == "models" and model_ids:
            con.execute(_snapshot_view(lake, model_ids))
            continue
        has_files = model_ids != set() and next(iter(lake.glob(GLOBS[table])), None) is not None
        con.execute(base[table] if has_files else _empty_view(table))
    for statement in statements("views.sql"):
        con.execute(statement)
    for sql_file in DERIVED_SQL:  # derived tables: a view whose files (or base views) do not exist yet is left out
        for statement in statements(sql_file):
            try:
                con.execute(statement)
            except (duckdb.IOException, duckdb.CatalogException) as exc:
                if "No files found" not in str(exc) and "does not exist" not in str(exc):
                    raise
    return con
