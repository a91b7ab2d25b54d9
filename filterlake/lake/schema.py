"""Arrow schemas of the lake tables, built from `schemas/lake_tables.json` (the one definition of the columns)."""
from __future__ import annotations

from functools import cache

import pyarrow as pa

from filterlake.resources import load_json

TABLES = ("models", "layers", "filters")
WEIGHT_COLUMNS = tuple(f"w{i}" for i in range(9))

_TYPES = {
    "string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
    "float64": pa.float64(), "bool": pa.bool_(), "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
}


@cache
def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of one lake table."""
    spec = load_json("lake_tables.json")[table]
    return pa.schema([
        pa.field(col["name"], _TYPES[col["type"]], nullable=col.get("nullable", False))
        for col in spec["columns"]
    ])
