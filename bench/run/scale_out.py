"""The scale-out stage: one small zoo ingested and analysed by the Prefect flows on a Dask cluster of 1 and of 2
worker processes (one thread each), in one run; the speed-up is the ratio of the two times."""

from __future__ import annotations

import argparse
import importlib
import os
import time
from pathlib import Path
from typing import Any

from bench.run.measure import run_stage

WORKERS = (1, 2)


def stage_scale_out(
    zoo: str | Path, lake: str | Path, workers: str | int, prefect_home: str | Path
) -> dict[str, Any]:
    """`flows.ingest` (no refresh) then `flows.analyze` of a synthetic zoo, their tasks on a LocalCluster of
    `workers` processes behind a temporary Prefect server (SQLite in `prefect_home`); each flow is timed once
    the workers are up and have imported the readers, and the lake is checked against the zoo's manifest."""
    os.environ["PREFECT_HOME"] = str(prefect_home)  # before Prefect is imported: it reads its settings then
    importlib.import_module("flows")  # first too: its quiet settings, a 60 s server start-up
    from distributed import LocalCluster
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bench.run.stages import _import_readers
    from bench.synthetic import read_manifest
    from flows.analyze import analyze_flow
    from flows.ingest import ingest_flow, run_summary

    zoo, lake, workers = Path(zoo), Path(lake), int(workers)
    manifest = read_manifest(zoo)
    server = SubprocessASGIServer()
    server.start()
    try:
        with (
            temporary_settings({PREFECT_API_URL: server.api_url}),
            LocalCluster(
                n_workers=workers,
                processes=True,
                threads_per_worker=1,
                dashboard_address=None,
                env={"PREFECT_API_URL": server.api_url},
            ) as cluster,
            cluster.get_client() as client,
        ):
            client.run(_import_readers, 0)  # imports are not throughput, as in the ingest stage
            address = cluster.scheduler_address
            start = time.perf_counter()
            state = ingest_flow(
                sources=[str(zoo)], lake=str(lake), refresh=False, dask=address, return_state=True
            )
            ingest_s = time.perf_counter() - start
            start = time.perf_counter()
            analysis = analyze_flow(lake=str(lake), dask=address)
            analyse_s = time.perf_counter() - start
    finally:
        server.stop()
    counts = run_summary(state)["counts"]
    if (
        counts["ingested"] != manifest["n_models"]
        or analysis["layer_stats"]["computed"] != manifest["n_models"]
    ):
        raise SystemExit(f"the flows did not ingest and analyse the zoo exactly: {counts}, {analysis}")
    return {
        "seconds": ingest_s + analyse_s,
        "ingest_s": ingest_s,
        "analyse_s": analyse_s,
        "workers": workers,
        "n_models": manifest["n_models"],
        "n_filters": manifest["n_filters"],
    }


def measure_scale_out(args: argparse.Namespace, work: Path, log) -> dict[str, Any]:
    """Generate a zoo of `--scale-out-filters` filters; time the flows on it with 1 and with 2 workers."""
    import shutil

    from bench.run.scales import _summary
    from bench.synthetic import generate

    zoo = work / "zoo-scale-out"
    shutil.rmtree(zoo, ignore_errors=True)
    log(f"scale-out: generating a zoo of {args.scale_out_filters:,} filters ...")
    manifest = generate(zoo, args.scale_out_filters, seed=args.seed + 7, jobs=args.jobs, prefix="s")
    out: dict[str, Any] = {"zoo": _summary(manifest), "runs": {}}
    for n in WORKERS:
        lake, home = work / f"lake-scale-out-{n}", work / f"prefect-home-scale-out-{n}"
        for path in (lake, home):
            shutil.rmtree(path, ignore_errors=True)
        out["runs"][str(n)] = run = run_stage("scale-out", zoo, lake, n, home)
        log(
            f"scale-out: {n} worker{'s' if n > 1 else ''}: ingest {run['ingest_s']:.1f} s, analysis {run['analyse_s']:.1f} s"
        )
        if not args.keep:
            for path in (lake, home):
                shutil.rmtree(path, ignore_errors=True)
    out["speed_up"] = out["runs"]["1"]["seconds"] / out["runs"]["2"]["seconds"]
    if not args.keep:
        shutil.rmtree(zoo, ignore_errors=True)
    return out


def scale_out_line(r: dict[str, Any]) -> str:
    """The scale-out stage in one line of the printed report."""
    one, two = r["runs"]["1"], r["runs"]["2"]
    return (
        f"scale-out (flows on Dask): {r['zoo']['n_models']} models, {r['zoo']['n_filters']:,} filters: "
        f"1 worker {one['seconds']:.1f} s (ingest {one['ingest_s']:.1f} s, analysis {one['analyse_s']:.1f} s), "
        f"2 workers {two['seconds']:.1f} s (ingest {two['ingest_s']:.1f} s, analysis {two['analyse_s']:.1f} s): "
        f"speed-up {r['speed_up']:.2f}x"
    )
