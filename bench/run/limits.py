"""The machine's own limits, timed in a child like the stages: bare pyarrow read+write, bare DuckDB scan."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.run.measure import warm_up

LIMIT_ROWS = 1 << 20  # rows per written table, like the lake's row groups


def stage_limit_ingest(zoo: str | Path, target: str | Path) -> dict[str, Any]:
    """Read every checkpoint's bytes as float32; write as many values as the zoo has filters as 9 columns."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.synthetic import checkpoint_files, read_manifest

    zoo, target = Path(zoo), Path(target)
    manifest = read_manifest(zoo)
    files = checkpoint_files(zoo, manifest)
    need = manifest["n_filters"] * 9
    names = [f"w{i}" for i in range(9)]
    warm_up()
    start = time.perf_counter()
    pending: list[np.ndarray] = []
    have = nbytes = rows = 0
    writer = None

    def write(values: np.ndarray) -> None:
        """Write a block of values as one table of 9 columns (the writer opens on the first)."""
        nonlocal writer
        block = values.reshape(9, -1)  # 9 contiguous columns (the values are arbitrary checkpoint floats)
        table = pa.table({n: block[i] for i, n in enumerate(names)})
        if writer is None:
            writer = pq.ParquetWriter(target, table.schema, compression="zstd", use_dictionary=False)
        writer.write_table(table)

    for path in files:
        data = path.read_bytes()
        nbytes += len(data)
        values = np.frombuffer(data, np.float32, len(data) // 4)
        take = values[: max(need - rows * 9 - have, 0)]
        pending.append(take)
        have += len(take)
        while have >= LIMIT_ROWS * 9:
            joined = np.concatenate(pending)
            write(joined[: LIMIT_ROWS * 9])
            rows += LIMIT_ROWS
            rest = joined[LIMIT_ROWS * 9 :]
            pending, have = [rest], len(rest)
    if have:
        joined = np.concatenate(pending)
        joined = joined[: have - have % 9]
        write(joined)
        rows += len(joined) // 9
    if rows * 9 < need:  # checkpoints always hold more floats than their filters; never taken in practice
        raise SystemExit(f"the zoo's bytes hold only {rows} filters' worth of float32 values")
    writer.close()
    seconds = time.perf_counter() - start
    flush = time.perf_counter()  # not part of the limit: how long making the same bytes durable takes
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())
    return {
        "seconds": seconds,
        "rows": rows,
        "bytes": nbytes,
        "parquet_bytes": target.stat().st_size,
        "fsync_s": time.perf_counter() - flush,
    }


def stage_limit_scan(lake: str | Path) -> dict[str, Any]:
    """One DuckDB scan summing the 9 weight columns of every filters file of the lake (all cores)."""
    import duckdb

    from filterlake.lake.layout import GLOBS

    files = Path(lake) / GLOBS["filters"]
    sums = ", ".join(f"sum(w{i})" for i in range(9))
    con = duckdb.connect()
    start = time.perf_counter()
    row = con.execute(f"SELECT count(*), {sums} FROM read_parquet('{files}')").fetchone()
    seconds = time.perf_counter() - start
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    return {"seconds": seconds, "rows": row[0], "threads": threads}
