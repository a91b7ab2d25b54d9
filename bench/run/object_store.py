"""The object-store stage: one zoo ingested and analysed into a lake on local disk and into a lake on a real S3
endpoint (a `moto_server` on this machine), in one run; the ratios S3 / local of the two times (informational).

The endpoint holds its objects in memory on the loopback interface, so the ratios measure filterlake's own cost
of an object lake (the commit protocol's requests, the analysis's working copy: pulling every model's files and
pushing the derived ones), not a network's bandwidth or latency."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.run.measure import disk_usage, run_stage

BUCKET = "filterlake-bench"
S3_LAKE = f"s3://{BUCKET}/lake"
RUNS = ("local", "s3")
# never inherited by the stage's children: another endpoint, profile or lake would be used instead of the given
UNSET = ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "FILTERLAKE_LAKE")


def _lake_size(lake) -> tuple[int, int]:
    """(files or objects, bytes) of a lake folder or of an object lake's prefix."""
    from filterlake.lake.location import ObjectLake
    from filterlake.lake.objects import inventory

    if isinstance(lake, ObjectLake):
        found = inventory(lake, "")
        return len(found), sum(info.size for info in found.values())
    return sum(len(files) for _root, _dirs, files in os.walk(lake)), disk_usage(lake)


def stage_object_store(zoo: str | Path, lake: str, workers: str | int = 1) -> dict[str, Any]:
    """`filterlake.ingest.ingest([zoo], lake)` in `workers` processes, then
    `filterlake.derived.analyze.analyze(lake, "medical", ("domain",))`, each timed, for a lake folder or an
    `s3://BUCKET/PREFIX` (endpoint and credentials from the AWS environment, the working copy below
    `$FILTERLAKE_CACHE`); checked exact: every model of the zoo's manifest ingested, with all its filters, and
    given its layer statistics."""
    import duckdb  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import scipy.integrate  # noqa: F401

    from bench.run.measure import warm_up
    from bench.run.stages import _import_readers
    from bench.synthetic import read_manifest
    from filterlake.derived.analyze import analyze
    from filterlake.ingest import ingest, worker_pool
    from filterlake.lake.location import parse_lake
    from filterlake.numeric import kernels
    from filterlake.resources import cache_dir

    _import_readers(0)  # imports first: not part of the throughput (as the ingest stage)
    zoo, location, workers = Path(zoo), parse_lake(lake), int(workers)
    manifest = read_manifest(zoo)
    warm_up()
    jit_s = kernels.warm_up()  # the kernels' first call, before either clock starts
    with worker_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        if pool is not None:  # worker start-up is not throughput either
            list(pool.map(_import_readers, range(workers)))
        start = time.perf_counter()
        outcomes = ingest([str(zoo)], location, pool=pool)
        ingest_s = time.perf_counter() - start
    ingested = [o for o in outcomes if o.status == "ingested"]
    n_filters = sum(o.n_filters for o in ingested)
    if len(ingested) != manifest["n_models"] or n_filters != manifest["n_filters"]:
        failed = [f"{o.source}: {o.message}" for o in outcomes if o.status != "ingested"]
        raise SystemExit(
            f"{lake}: ingest did not ingest the zoo exactly: {len(ingested)} models of "
            f"{manifest['n_models']}, {n_filters} filters of {manifest['n_filters']}; {failed[:3]}"
        )
    start = time.perf_counter()
    analysis = analyze(location, "medical", ("domain",))
    analyse_s = time.perf_counter() - start
    if analysis.stats.get("computed") != manifest["n_models"]:
        raise SystemExit(
            f"{lake}: the analysis did not compute layer statistics for every model: {analysis.stats}, "
            f"{manifest['n_models']} models"
        )
    n_objects, lake_bytes = _lake_size(location)
    copy = cache_dir() / "objects"
    return {
        "seconds": ingest_s + analyse_s,
        "ingest_s": ingest_s,
        "analyse_s": analyse_s,
        "jit_s": jit_s,
        "lake": lake,
        "workers": workers,
        "n_models": len(ingested),
        "n_filters": n_filters,
        "stats": analysis.stats,
        "histograms": analysis.histograms,
        "lake_files": n_objects,
        "lake_bytes": lake_bytes,
        "working_copy_bytes": disk_usage(copy) if copy.is_dir() else 0,
    }


def _ratio(s3: float, local: float) -> float:
    return s3 / local if local > 0 else float("inf")


def measure_object_store(args: argparse.Namespace, work: Path, log) -> dict[str, Any]:
    """Generate a zoo of `--object-store-filters` filters; run the object-store stage on it into a lake folder
    and into `s3://filterlake-bench/lake` on a `moto_server` started for the stage; the ratios S3 / local."""
    from bench.run.scales import _summary
    from bench.synthetic import generate
    from tests.lake.s3_endpoint import CREDENTIALS, moto_server, s3_client

    zoo, local, cache = (work / f"{name}-object-store" for name in ("zoo", "lake", "cache"))
    for path in (zoo, local, cache):
        shutil.rmtree(path, ignore_errors=True)
    log(f"object-store: generating a zoo of {args.object_store_filters:,} filters ...")
    manifest = generate(zoo, args.object_store_filters, seed=args.seed + 11, jobs=args.jobs, prefix="o")
    out: dict[str, Any] = {"zoo": _summary(manifest), "endpoint": "moto_server (127.0.0.1)", "runs": {}}
    try:
        with moto_server() as endpoint:
            s3_client(endpoint).create_bucket(Bucket=BUCKET)
            env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "FILTERLAKE_CACHE": str(cache)}
            for name, lake in zip(RUNS, (local, S3_LAKE), strict=True):
                out["runs"][name] = run = run_stage(
                    "object-store", zoo, lake, args.ingest_workers, env=env, unset=UNSET
                )
                log(
                    f"object-store: {name}: ingest {run['ingest_s']:.1f} s, analysis {run['analyse_s']:.1f} s"
                )
    finally:
        if not args.keep:
            for path in (zoo, local, cache):
                shutil.rmtree(path, ignore_errors=True)
    s3, loc = out["runs"]["s3"], out["runs"]["local"]
    out["ratios"] = {
        "ingest": _ratio(s3["ingest_s"], loc["ingest_s"]),
        "analysis": _ratio(s3["analyse_s"], loc["analyse_s"]),
        "total": _ratio(s3["seconds"], loc["seconds"]),
    }
    return out


def object_store_line(r: dict[str, Any]) -> str:
    """The object-store stage in one line of the printed report."""
    loc, s3, ratio = r["runs"]["local"], r["runs"]["s3"], r["ratios"]
    return (
        f"object store (local disk vs S3 endpoint, {r['endpoint']}): {r['zoo']['n_models']} models, "
        f"{r['zoo']['n_filters']:,} filters: local ingest {loc['ingest_s']:.1f} s, analysis "
        f"{loc['analyse_s']:.1f} s; S3 ingest {s3['ingest_s']:.1f} s, analysis {s3['analyse_s']:.1f} s: "
        f"S3/local ingest {ratio['ingest']:.2f}x, analysis {ratio['analysis']:.2f}x"
    )
