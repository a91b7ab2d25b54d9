"""DuckDB connections over a lake with every view of `sql/init.sql` (empty tables are empty typed views)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from pathlib import Path

import duckdb

from filterlake.lake.init_sql import deferred_statements, empty_select
from filterlake.lake.layout import (
    COMPACTED_GLOBS,
    GLOBS,
    committed_ids,
    compacted_part,
    model_file,
    require_lake,
    table_dir,
)
from filterlake.lake.location import ROOT, ObjectLake, fsspec_filesystem
from filterlake.lake.maintenance import readable_models
from filterlake.lake.migrate import migrate
from filterlake.lake.rows import compacted_models

# sql/init.sql's test of whether a table has files (lake/init_sql.py), answered by pathlib in `connect`
HAS_FILES = re.compile(
    r"SET VARIABLE (filterlake_has_\w+) = \(SELECT count\(\*\) > 0 FROM glob\(lake_glob\('(\w+)'\)\)\)"
)


def _has_files(lake: Path, table: str) -> bool:
    glob = COMPACTED_GLOBS[table.removesuffix("_compacted")] if table.endswith("_compacted") else GLOBS[table]
    return next(lake.glob(glob), None) is not None


def _quoted(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _snapshot_view(con: duckdb.DuckDBPyConnection, lake: Path, model_ids: Collection[str]) -> None:
    """Make the `models` view exactly these committed models (a fixed snapshot of the lake): the rows of their
    own files (named one by one, so an unreadable file of another model is never opened) and, for the others,
    of the compacted part."""
    if not model_ids:
        con.execute(f"CREATE OR REPLACE VIEW models AS {empty_select('models')}")
        return
    own = sorted(m for m in model_ids if model_file(lake, m).exists())
    compacted = sorted(set(model_ids) & compacted_models(lake) - set(own))
    con.execute(
        "CREATE OR REPLACE TABLE filterlake_snapshot AS SELECT unnest(?::VARCHAR[]) AS model_id", [compacted]
    )
    parts = (
        [f"SELECT * FROM read_parquet([{', '.join(_quoted(model_file(lake, m)) for m in own)}])"]
        if own
        else []
    )
    if compacted:
        part = compacted_part(table_dir(lake, "models"))
        parts.append(
            f"SELECT * FROM read_parquet({_quoted(part)}) "
            "WHERE model_id IN (SELECT model_id FROM filterlake_snapshot)"
        )
    con.execute(f"CREATE OR REPLACE VIEW models AS {' UNION ALL '.join(parts)}")


def _with_views(lake: Path) -> duckdb.DuckDBPyConnection:
    """A connection with the views of sql/init.sql, bound when a query uses them (lake/init_sql.py)."""
    con = duckdb.connect()
    con.execute("SET VARIABLE lake = ?", [str(lake)])
    for statement in deferred_statements():
        if match := HAS_FILES.fullmatch(statement):  # the same test, without DuckDB's glob
            con.execute(f"SET VARIABLE {match[1]} = ?", [_has_files(lake, match[2])])
        else:
            con.execute(statement)
    return con


def _object_views(lake: ObjectLake, model_ids: Collection[str] | None) -> duckdb.DuckDBPyConnection:
    """A connection with the views of sql/init.sql over an object lake, read through the s3fs filesystem
    registered on it (DuckDB's httpfs is not needed): the same statements, `lake` set to its s3:// URI."""
    con = duckdb.connect()
    con.register_filesystem(fsspec_filesystem())
    con.execute("SET VARIABLE lake = ?", [lake.uri])
    for statement in deferred_statements():  # bound when used: binding lists and opens objects over HTTP
        con.execute(statement)
    if model_ids is not None:  # a fixed snapshot: exactly these models rows (object lakes are not compacted)
        urls = [lake.url(model_file(ROOT, m)) for m in sorted(model_ids)]
        select = (
            f"SELECT * FROM read_parquet([{', '.join(map(_quoted, urls))}])"
            if urls
            else empty_select("models")
        )
        con.execute(f"CREATE OR REPLACE VIEW models AS {select}")
    return con


def connect(
    lake: Path | ObjectLake,
    model_ids: Collection[str] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose views read the lake at `lake` (LakeError when it is no lake folder).

    With `model_ids`, every view sees exactly those models (all other views filter on `models`), so a reader
    keeps one consistent snapshot while ingests commit new models. Without, a `models` file that cannot be read
    is left out (and named to `on_note`) instead of failing every query. An object lake (`s3://`) is read
    through an fsspec filesystem registered on the connection.
    """
    if isinstance(lake, ObjectLake):
        return _object_views(require_lake(lake), model_ids)
    require_lake(lake)
    migrate(lake, on_note)
    con = _with_views(lake)
    if model_ids is None:
        try:
            con.execute("SELECT count(*) FROM models").fetchall()
        except duckdb.Error:
            model_ids, bad = readable_models(lake, committed_ids(lake))
            for model_id in sorted(bad):
                if on_note:
                    on_note(
                        f"{model_file(lake, model_id)}: unreadable models row, left out "
                        f"(`filterlake check` names it, `filterlake remove {model_id[:12]}` drops it)"
                    )
    if model_ids is not None:
        _snapshot_view(con, lake, model_ids)
    return con
