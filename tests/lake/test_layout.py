"""The lake's paths have one owner: every path function matches its table's glob, and the SQL views use them."""
from __future__ import annotations

from pathlib import Path

from filterlake.lake import layout
from filterlake.lake.schema import DERIVED_TABLES, TABLES, arrow_schema
from tests.conftest import REPO

LAKE = Path("/lake")
MODEL = "ab" * 32


def test_every_path_function_matches_its_table_glob():
    paths = {
        "models": layout.model_file(LAKE, MODEL), "layers": layout.layers_file(LAKE, MODEL),
        "filters": layout.filters_part(LAKE, MODEL), "layer_stats": layout.stats_file(LAKE, MODEL),
        "basis": layout.basis_file(LAKE, "b1"), "histograms": layout.hist_file(LAKE, "b1", "-3_3_70_all", MODEL),
        "extents": layout.extents_file(LAKE, "b1", MODEL), "shifts": layout.shifts_file(LAKE, "b1", "medical", "domain"),
    }
    assert set(paths) == set(TABLES)
    for table, path in paths.items():
        assert path.relative_to(LAKE).match(layout.GLOBS[table]), (table, path)
        assert layout.table_dir(LAKE, table) in path.parents


def test_the_sql_macro_is_generated_from_the_layout():
    text = (REPO / "sql" / "tables.sql").read_text()
    assert layout.paths_sql() in text, "run `python -m filterlake.lake.layout` to regenerate sql/tables.sql"
    for sql_file in ("tables.sql", "analysis.sql"):
        body = (REPO / "sql" / sql_file).read_text().split(layout.PATHS_END)[-1]
        assert "getvariable('lake') ||" not in body  # every other path goes through lake_glob


def test_derived_tables_have_schemas():
    assert {"layer_stats", "basis", "histograms", "extents", "shifts"} <= set(DERIVED_TABLES)
    assert len(arrow_schema("layer_stats")) == 3 + 3 * 55 + 15
