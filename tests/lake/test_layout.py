"""The lake's paths have one owner: every path function matches its table's glob, and the SQL views use them."""

from __future__ import annotations

from pathlib import Path

from filterlake.derived.baseline_shifts import TABLES as BASELINE_TABLES
from filterlake.derived.comparisons import TABLES as COMPARISON_TABLES
from filterlake.derived.phenomena import TABLES as PHENOMENA_TABLES
from filterlake.lake import init_sql, layout
from filterlake.lake.schema import DERIVED_TABLES, TABLES, arrow_schema
from tests.conftest import REPO

LAKE = Path("/lake")
MODEL = "ab" * 32


def test_every_path_function_matches_its_table_glob():
    paths = {
        "models": layout.model_file(LAKE, MODEL),
        "layers": layout.layers_file(LAKE, MODEL),
        "filters": layout.filters_part(LAKE, MODEL),
        "layer_stats": layout.stats_file(LAKE, MODEL),
        "basis": layout.basis_file(LAKE, "b1"),
        "histograms": layout.hist_file(LAKE, "b1", "-3_3_70_all", MODEL),
        "extents": layout.extents_file(LAKE, "b1", MODEL),
        "shifts": layout.shifts_file(LAKE, "b1", "medical", "domain"),
        **{
            table: layout.comparison_file(LAKE, table, "b1", "medical")
            for table in (*COMPARISON_TABLES, *PHENOMENA_TABLES, *BASELINE_TABLES)
        },
    }
    assert set(paths) == set(TABLES)
    for table, path in paths.items():
        assert path.relative_to(LAKE).match(layout.GLOBS[table]), (table, path)
        assert layout.table_dir(LAKE, table) in path.parents


def test_init_sql_is_generated_from_the_sources_and_the_layout():
    assert (REPO / "sql" / "init.sql").read_text() == init_sql.render(), (
        "run `python -m filterlake.lake.init_sql` to regenerate sql/init.sql"
    )
    assert layout.paths_sql().strip() in init_sql.render()
    for sql_file in init_sql.SOURCES:  # every path goes through lake_glob
        assert "getvariable('lake') ||" not in (REPO / "sql" / sql_file).read_text()


def test_derived_tables_have_schemas():
    assert {"layer_stats", "basis", "histograms", "extents", "shifts"} <= set(DERIVED_TABLES)
    assert len(arrow_schema("layer_stats")) == 3 + 3 * 55 + 15
