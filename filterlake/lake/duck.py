"""DuckDB connections over a lake with every view of `sql/init.sql` (empty tables are empty typed views)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import duckdb

from filterlake.lake.init_sql import empty_select, init_statements
from filterlake.lake.layout import committed_ids, model_file, require_lake
from filterlake.lake.maintenance import readable_models
from filterlake.lake.migrate import migrate


def _snapshot_view(lake: Path, model_ids: Collection[str]) -> str:
    """The `models` view over exactly these committed models (a fixed snapshot of the lake)."""
    if not model_ids:
        return f"CREATE OR REPLACE VIEW models AS {empty_select('models')}"
    files = ", ".join("'" + str(model_file(lake, m)).replace("'", "''") + "'" for m in sorted(model_ids))
    return f"CREATE OR REPLACE VIEW models AS SELECT * FROM read_parquet([{files}])"


def connect(
    lake: Path, model_ids: Collection[str] | None = None, on_note: Callable[[str], None] | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose views read the lake at `lake` (LakeError when it is no lake folder).

    With `model_ids`, every view sees exactly those models (all other views filter on `models`), so a reader
    keeps one consistent snapshot while ingests commit new models. Without, a `models` file that cannot be read
    is left out (and named to `on_note`) instead of failing every query.
    """
    require_lake(lake)
    migrate(lake, on_note)
    con = duckdb.connect()
    con.execute("SET VARIABLE lake = ?", [str(lake)])
    for statement in init_statements():
        con.execute(statement)
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
        con.execute(_snapshot_view(lake, model_ids))
    return con
