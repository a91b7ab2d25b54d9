"""The CNN Filter DB import stage and its limit, each timed in a child process like the other stages.

* **import**: `filterlake.ingest.cnn_filter_db.import_cnn_filter_db(dataset.h5, lake)` of a synthetic dataset in
  the published layout (`bench.synthetic.cnn_filter_db`: `filters` (N, 3, 3) float64 and a pandas `meta`).
* **limit-import**: the bare work it cannot avoid: read the same `filters` with h5py in the importer's chunks
  (`CHUNK_FILTERS` rows of float64), cast them to float32 while transposing them into 9 columns (in cache-sized
  blocks, the fastest way numpy has) and write them with a pyarrow
  `ParquetWriter(compression="zstd", use_dictionary=False)`, one table per chunk.

The ratio limit / import is judged against 50%. The dataset is generated once per run (not measured) and is
fresh in the page cache for both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.run.measure import disk_usage, run_stage, warm_up

IMPORT_TARGET = 0.5


def stage_import(dataset: str | Path, lake: str | Path) -> dict[str, Any]:
    """Import the synthetic dataset.h5 into a fresh lake, checked model by model."""
    import h5py  # noqa: F401
    import pandas  # noqa: F401
    import tables  # noqa: F401

    from filterlake.ingest.cnn_filter_db import import_cnn_filter_db

    warm_up()
    start = time.perf_counter()
    result = import_cnn_filter_db(Path(dataset), Path(lake))
    seconds = time.perf_counter() - start
    bad = [o for o in result.outcomes if o.status != "ingested"]
    if bad or result.cast_changed:
        raise SystemExit(
            f"the import did not import the dataset exactly: {bad[:3]}, {result.cast_changed} cast"
        )
    return {
        "seconds": seconds,
        "n_filters": sum(o.n_filters for o in result.outcomes),
        "n_models": len(result.outcomes),
        "lake_bytes": disk_usage(Path(lake)),
    }


def stage_limit_import(dataset: str | Path, target: str | Path) -> dict[str, Any]:
    """Read the float64 filters in the importer's chunks, write them as float32 zstd Parquet (bare pyarrow)."""
    import h5py
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from filterlake.lake.writer import TRANSPOSE_BLOCK
    from filterlake.sources.cnn_filter_db import CHUNK_FILTERS

    names = [f"w{i}" for i in range(9)]
    schema = pa.schema([(n, pa.float32()) for n in names])
    warm_up()
    start = time.perf_counter()
    with (
        h5py.File(dataset, "r") as h5,
        pq.ParquetWriter(target, schema, compression="zstd", use_dictionary=False) as out,
    ):
        filters = h5["filters"]
        for at in range(0, filters.shape[0], CHUNK_FILTERS):
            block = filters[at : at + CHUNK_FILTERS].reshape(-1, 9)
            columns = np.empty((9, len(block)), np.float32)
            for i in range(0, len(block), TRANSPOSE_BLOCK):  # cache-sized: 10x a whole-block transpose
                columns[:, i : i + TRANSPOSE_BLOCK] = block[i : i + TRANSPOSE_BLOCK].T
            out.write_table(pa.table(dict(zip(names, columns)), schema=schema))
        rows = filters.shape[0]
    return {
        "seconds": time.perf_counter() - start,
        "rows": rows,
        "parquet_bytes": Path(target).stat().st_size,
    }


def measure_import(args: argparse.Namespace, work: Path, log) -> dict[str, Any]:
    """Write a synthetic dataset.h5 of `--import-filters` filters, time the limit and the import on it."""
    import shutil

    from bench.synthetic.cnn_filter_db import random_models, write_dataset

    dataset, lake, limit_file = work / "cnn-filter-db.h5", work / "lake-import", work / "limit-import.parquet"
    shutil.rmtree(lake, ignore_errors=True)
    log(f"import: writing a synthetic dataset.h5 of {args.import_filters:,} filters ...")
    counts = write_dataset(dataset, random_models(args.import_filters, seed=args.seed))
    out: dict[str, Any] = {"dataset": {**counts, "bytes": dataset.stat().st_size}}
    out["limit"] = run_stage("limit-import", dataset, limit_file)
    out["import"] = run_stage("import", dataset, lake)
    n = counts["filters"]
    out["filters_per_s"] = n / out["import"]["seconds"]
    out["limit_filters_per_s"] = n / out["limit"]["seconds"]
    out["ratio"] = out["limit"]["seconds"] / out["import"]["seconds"]
    out["lake_bytes_per_filter"] = out["import"]["lake_bytes"] / n
    log(
        f"import: {out['import']['seconds']:.2f} s, limit {out['limit']['seconds']:.2f} s ({out['ratio']:.0%})"
    )
    if not args.keep:
        for path in (dataset, limit_file):
            path.unlink(missing_ok=True)
        shutil.rmtree(lake, ignore_errors=True)
    return out


def import_line(r: dict[str, Any]) -> str:
    """The import stage in one line of the printed report."""
    d = r["dataset"]
    return (
        f"import cnn-filter-db: {d['models']} models, {d['filters']:,} filters ({d['bytes'] / 1e6:.0f} MB "
        f"float64): {r['import']['seconds']:.2f} s, {r['filters_per_s'] / 1e6:.2f}M filters/s vs limit "
        f"{r['limit']['seconds']:.2f} s, {r['limit_filters_per_s'] / 1e6:.2f}M filters/s = {r['ratio']:.0%} "
        f"of the limit (target >= {IMPORT_TARGET:.0%}: {'PASS' if r['ratio'] >= IMPORT_TARGET else 'NOT MET'}); "
        f"peak RSS {r['import']['peak_rss_mb']:.0f} MB; lake {r['lake_bytes_per_filter']:.1f} bytes/filter"
    )
