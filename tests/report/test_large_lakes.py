"""What the page shows of a lake with many models: tables cut to what a page can hold (the CSV keeps every row),
per-model figures of one size however many models there are."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from filterlake.report import figures, layer_figures
from filterlake.report.document import table_html
from filterlake.report.tables import PAGE_COLUMNS, PAGE_ROWS, Table


def _table(n_rows: int, n_columns: int = 2) -> Table:
    columns = ["model", *(f"c{j}" for j in range(n_columns - 1))]
    rows = [[f"m{i}", *(float(i * j) for j in range(n_columns - 1))] for i in range(n_rows)]
    return Table("big", "A big table", columns, rows, "Note.")


def test_a_long_table_shows_its_first_rows_and_says_where_all_are(tmp_path):
    table = _table(PAGE_ROWS + 7)
    page = table_html(table)
    assert page.count("<tr>") == 1 + PAGE_ROWS and f"<td>m{PAGE_ROWS - 1}</td>" in page
    assert f"<td>m{PAGE_ROWS}</td>" not in page
    said = f"The first {PAGE_ROWS:,} of {PAGE_ROWS + 7:,} rows are shown"
    assert said in page and said in table.to_markdown()
    assert len(table.to_markdown().splitlines()) == 2 + 2 + PAGE_ROWS + 2
    with open(table.write_csv(tmp_path)) as handle:
        assert [row[0] for row in csv.reader(handle)][1:] == [f"m{i}" for i in range(PAGE_ROWS + 7)]


def test_a_table_wider_than_the_page_is_named_and_left_to_its_csv(tmp_path):
    table = _table(3, PAGE_COLUMNS + 1)
    page = table_html(table)
    assert "<table" not in page and "tables/big.csv" in page
    assert f"{PAGE_COLUMNS + 1:,} columns and 3 rows" in page and "| model |" not in table.to_markdown()
    with open(table.write_csv(tmp_path)) as handle:
        assert len(list(csv.reader(handle))) == 4


def test_a_table_the_page_holds_is_shown_whole():
    table = _table(PAGE_ROWS, PAGE_COLUMNS)
    assert table.cut_note() == "" and table_html(table).count("<tr>") == 1 + PAGE_ROWS


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_per_model_figures_of_many_models_keep_one_size(tmp_path):
    """Past LABELLED_ROWS models the densities are image rows and pruning is a scatter: the same pixels for
    100 models as for 1,000 (a ridge per model made a figure 272 inches tall at 1,000 models)."""
    rng = np.random.default_rng(0)
    centres = np.linspace(-4, 4, 81)
    sizes = set()
    for n in (figures.LABELLED_ROWS + 1, 1000):
        density = rng.random((n, 9, len(centres)))
        density[0] = 0  # a model without counts draws a dark row, not a division by zero
        colours = ["#1f77b4"] * n
        rows = figures.density_rows(
            tmp_path / f"d{n}.png", colours, centres, density, np.full(9, 1 / 9), {"natural": "#1f77b4"}
        )
        kept = rng.integers(0, 100, n).astype(float)
        scatter = layer_figures.pruning_scatter(tmp_path / f"p{n}.png", kept, kept + rng.integers(0, 50, n))
        sizes.add((_size(rows), _size(scatter)))
    assert len(sizes) == 1


def test_the_model_heatmap_keeps_one_size_past_the_labelled_rows(tmp_path):
    """Past LABELLED_ROWS models the names are left off and the figure stops growing."""
    sizes = set()
    for n in (figures.LABELLED_ROWS + 1, 300):
        matrix = np.abs(np.subtract.outer(np.arange(n), np.arange(n))).astype(float)
        bars = {"domain": (["natural"] * n, {"natural": "#1f77b4"})}
        labels = [f"model-{i}" for i in range(n)]
        sizes.add(_size(figures.clustered_heatmap(tmp_path / f"h{n}.png", labels, matrix, bars, float(n))))
    assert len(sizes) == 1
