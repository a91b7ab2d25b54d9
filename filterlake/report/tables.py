"""Report tables: one object rendered three ways (HTML, Markdown, CSV) so the three outputs always agree."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The most rows and columns a table shows on the page (HTML and Markdown); its CSV always holds every row. A
# 1,000-model lake has tables of a million pairs: on the page they would be unreadable and hundreds of MB.
PAGE_ROWS = 500
PAGE_COLUMNS = 62  # a model-by-model matrix of up to 60 models, plus its label column


@dataclass
class Table:
    """A titled table. ``name`` is the CSV file stem (tables/<name>.csv); ``formats`` maps a column to a
    format spec for display (CSV keeps full precision); ``collapsed`` folds it away in the HTML page."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    formats: dict[str, str] = field(default_factory=dict)
    collapsed: bool = False

    def cell(self, value: Any, column: str) -> str:
        """The display text of one value."""
        return format_value(value, self.formats.get(column))

    def display_rows(self) -> list[list[str]]:
        """The rows the page shows (`page_rows`) as display text."""
        return [[self.cell(v, c) for v, c in zip(row, self.columns)] for row in self.page_rows()]

    @property
    def too_wide(self) -> bool:
        """More columns than the page shows: the table is then only in its CSV."""
        return len(self.columns) > PAGE_COLUMNS

    def page_rows(self) -> list[list[Any]]:
        """The rows shown on the page: the first PAGE_ROWS (none for a table too wide for it)."""
        return [] if self.too_wide else self.rows[:PAGE_ROWS]

    def cut_note(self) -> str:
        """What the page leaves out of this table and where it is (empty when it shows the whole table)."""
        if self.too_wide:
            return (
                f"This table has {len(self.columns):,} columns and {len(self.rows):,} rows, more than the page "
                f"shows ({PAGE_COLUMNS} columns): it is in tables/{self.name}.csv only."
            )
        if len(self.rows) > PAGE_ROWS:
            return (
                f"The first {PAGE_ROWS:,} of {len(self.rows):,} rows are shown (sorting sorts these); all are "
                f"in tables/{self.name}.csv."
            )
        return ""

    def write_csv(self, folder: Path) -> Path:
        """Write tables/<name>.csv with full-precision values; returns the path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.columns)
            for row in self.rows:
                writer.writerow([csv_value(v) for v in row])
        return path

    def to_markdown(self) -> str:
        """A GitHub pipe table with the title above it and the note below."""

        def esc(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        lines = [f"**{esc(self.title)}** (`tables/{self.name}.csv`)", ""]
        if self.too_wide:
            return "\n".join([*lines, f"*{esc(self.cut_note())}*"])
        lines.append("| " + " | ".join(esc(c) for c in self.columns) + " |")
        align = ["---:" if self._numeric(i) else "---" for i in range(len(self.columns))]
        lines.append("| " + " | ".join(align) + " |")
        for row in self.display_rows():
            lines.append("| " + " | ".join(esc(v) for v in row) + " |")
        if not self.rows:
            lines.append("| " + " | ".join("" for _ in self.columns) + " |")
        note = " ".join(text for text in (self.note, self.cut_note()) if text)
        if note:
            lines += ["", f"*{esc(note)}*"]
        return "\n".join(lines)

    def _numeric(self, index: int) -> bool:
        values = [row[index] for row in self.page_rows() if row[index] is not None]
        return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)

    def numeric_columns(self) -> list[bool]:
        """Which columns hold only numbers (right-aligned, sorted numerically)."""
        return [self._numeric(i) for i in range(len(self.columns))]


def format_value(value: Any, spec: str | None = None) -> str:
    """Display text: thousands separators for integers, 4 significant digits for floats unless ``spec``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if spec:
        return format(value, spec)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def csv_value(value: Any) -> Any:
    """A value as the CSV writes it: full precision, NaN and None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def matrix_table(
    name: str,
    title: str,
    labels: list[str],
    matrix,
    note: str = "",
    spec: str = ".4f",
    collapsed: bool = True,
) -> Table:
    """A square matrix as a table: first column the row label, then one column per label."""
    rows = [[label, *(float(v) for v in matrix[i])] for i, label in enumerate(labels)]
    return Table(name, title, ["group", *labels], rows, note, {label: spec for label in labels}, collapsed)
