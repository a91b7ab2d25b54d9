"""Small helpers shared by the derived tables: atomic Parquet writes and parameter fingerprints."""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.lake.layout import STAGING


def write_atomic(table: pa.Table, target: Path, lake: Path) -> None:
    """Write `table` to a staging file, then rename it over `target` (readers see old or new, never half)."""
    stage = lake / STAGING / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    stage.mkdir(parents=True, exist_ok=True)
    tmp = stage / target.name
    pq.write_table(table, tmp, compression="zstd")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    stage.rmdir()


def fingerprint(params: dict[str, Any]) -> str:
    """A short stable id of a parameter set (stored with results; a change triggers recomputation)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_param(path: Path, column: str = "params") -> str | None:
    """The parameter fingerprint stored in a derived file, or None when the file is missing or unreadable."""
    try:
        table = pq.read_table(path, columns=[column])
    except (OSError, pa.ArrowException):
        return None
    values = table.column(column).unique().to_pylist()
    return values[0] if len(values) == 1 else None
