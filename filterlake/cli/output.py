"""Print query results as an aligned table, CSV or JSON (the `--format` option of every listing command)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "csv", "json")


def render(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table", max_width: int | None = None
) -> str:
    """Text of a result in one of FORMATS; in a table, text longer than `max_width` is shortened with '…'."""
    if fmt == "json":
        return json.dumps([dict(zip(columns, row)) for row in rows], indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    cells = [[_shorten(_cell(v), max_width) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and rows
        for i in range(len(columns))
    ]
    line = lambda values: "  ".join(
        v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)
    ).rstrip()
    out = [line(list(columns)), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _shorten(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def emit(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table", max_width: int | None = None
) -> None:
    """Print a result to stdout in one of FORMATS."""
    sys.stdout.write(render(columns, rows, fmt, max_width) + "\n")
