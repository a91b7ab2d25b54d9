"""Arrow schemas of every lake table, base and derived, built from `schemas/lake_tables.json` (the one definition
of the columns and of each table's file pattern)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pyarrow as pa

from filterlake.numeric.moments import FLAT_NAMES
from filterlake.resources import load_json

WEIGHT_COLUMNS = tuple(f"w{i}" for i in range(9))

_TYPES = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
    "list<float64>": pa.list_(pa.float64()),
}


@cache
def _spec() -> dict[str, Any]:
    return {name: spec for name, spec in load_json("lake_tables.json").items() if not name.startswith("$")}


LAKE_VERSION: int = load_json("lake_tables.json")["$version"]  # kept in LAKE/lake.json (lake/migrate.py)
TABLES: tuple[str, ...] = tuple(_spec())
BASE_TABLES: tuple[str, ...] = tuple(t for t in TABLES if not _spec()[t]["derived"])
DERIVED_TABLES: tuple[str, ...] = tuple(t for t in TABLES if _spec()[t]["derived"])


def moment_columns(prefix: str) -> list[str]:
    """Column names of one stored set of sufficient statistics: <prefix>_n, _s0.._s8, _o00.._o88."""
    return [f"{prefix}_{name}" for name in FLAT_NAMES]


def _fields(column: dict[str, Any]) -> list[pa.Field]:
    kind = _TYPES[column["type"]]
    nullable = column.get("nullable", False)
    if column.get("expand") == "moments":
        return [pa.field(name, kind, nullable=nullable) for name in moment_columns(column["name"])]
    return [pa.field(column["name"], kind, nullable=nullable)]


@cache
def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of one lake table."""
    return pa.schema([f for column in _spec()[table]["columns"] for f in _fields(column)])


def added_columns(table: str, after: int) -> list[str]:
    """Columns of `table` added in a lake version later than `after` (each nullable; see lake/migrate.py)."""
    return [c["name"] for c in _spec()[table]["columns"] if c.get("since", 1) > after]


def table_path(table: str) -> str:
    """The documented path pattern of a table's files, relative to the lake (e.g. models/<model_id>.parquet)."""
    return _spec()[table]["path"]


def table_glob(table: str) -> str:
    """The table's files relative to the lake folder as a glob: its documented path with <...> as *."""
    return re.sub(r"<[^>]+>", "*", table_path(table))
