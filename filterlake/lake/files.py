"""Read and write the lake's small Parquet files safely while other processes replace them."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def read_table(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a whole Parquet file through one open handle.

    `pq.read_table(path)` stats the file and then opens it again; when a concurrent `os.replace` lands in
    between, it reads the new file with the old size and fails ("Couldn't deserialize thrift"). One handle
    pins one inode, so the read sees either the old or the new file, whole. The handle is a native
    `pa.OSFile`: a Python file object makes pyarrow abort the interpreter at exit now and then.
    """
    with pa.OSFile(str(path)) as handle:
        return pq.read_table(handle, columns=list(columns) if columns is not None else None)


def write_synced(table: pa.Table, path: Path) -> None:
    """Write a small table and flush it to disk, ready to be renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        pq.write_table(table, out, compression="zstd")
        out.flush()
        os.fsync(out.fileno())
