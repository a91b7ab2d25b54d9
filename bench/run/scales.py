"""One scale of the benchmark (its synthetic zoo, every stage and limit, the metrics) and the regroup zoo."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run.measure import run_stage
from bench.run.peers import notebook_fits

Log = Callable[[str], None]


def _rate(n: float, seconds: float) -> float:
    """n per second (infinite for a zero time)."""
    return n / seconds if seconds > 0 else float("inf")


def _remove(path: Path) -> None:
    """Delete a file or a folder tree if it exists."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _check_disk(work: Path, need: float) -> None:
    """Stop before a scale that would fill the disk (2 GB kept free)."""
    free = shutil.disk_usage(work).free
    if free < need + 2e9:
        raise SystemExit(
            f"not enough disk for this scale: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free"
        )


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """A synthetic zoo's manifest without its model list (as recorded in the results)."""
    return {k: v for k, v in manifest.items() if k != "models"}


def _metrics(manifest: dict[str, Any], stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rates, ratios and costs per million filters of one scale."""
    nf = manifest["n_filters"]
    ing, lim, ana, scan = (stages[k] for k in ("ingest", "limit_ingest", "analysis", "limit_scan"))
    return {
        "filters": nf,
        "models": manifest["n_models"],
        "checkpoint_mb": manifest["bytes"] / 1e6,
        "ingest_filters_per_s": _rate(nf, ing["seconds"]),
        "ingest_mb_per_s": _rate(manifest["bytes"] / 1e6, ing["seconds"]),
        "limit_filters_per_s": _rate(nf, lim["seconds"]),
        "limit_mb_per_s": _rate(lim["bytes"] / 1e6, lim["seconds"]),
        "ingest_ratio": lim["seconds"] / ing["seconds"],
        "analysis_filters_per_s": _rate(nf, ana["seconds"]),
        "scan_filters_per_s": _rate(nf, scan["seconds"]),
        "analysis_ratio": ana["seconds"] / scan["seconds"],
        "ingest_s_per_mfilter": ing["seconds"] / nf * 1e6,
        "analysis_s_per_mfilter": ana["seconds"] / nf * 1e6,
        "limit_ingest_s_per_mfilter": lim["seconds"] / nf * 1e6,
        "scan_s_per_mfilter": scan["seconds"] / nf * 1e6,
        "lake_bytes_per_filter": ing["lake_bytes"] / nf,
        **_peer_metrics(nf, stages),
    }


def _peer_metrics(nf: int, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """filterlake against the peers and the bare scan: the frozen-basis ratio, the notebook and tcq ratios."""
    ana, scan, frozen = stages["analysis"], stages["limit_scan"], stages["analysis_frozen"]
    out = {"frozen_ratio": frozen["seconds"] / scan["seconds"], "jit_s": ana["jit_s"]}
    nb = stages["peer_notebook"]
    out["notebook_ratio"] = None if nb.get("skipped") else ana["core_s"] / nb["seconds"]
    tcq = stages["peer_tcq"]
    stats_per_filter = ana["parts"]["layer statistics + basis fit"] / nf
    out["tcq_ratio"] = stats_per_filter / (tcq["seconds"] / tcq["filters"]) if tcq["filters"] else None
    return out


def measure_scale(scale: int, args: argparse.Namespace, work: Path, log: Log) -> dict[str, Any]:
    """Generate the zoo of one scale, run every stage and limit on it, and derive its metrics."""
    from bench.synthetic import default_max_model_filters, generate
    from filterlake.derived.basis import export_basis

    n = args.filters * scale
    zoo, lake, limit_file = work / f"zoo-x{scale}", work / f"lake-x{scale}", work / f"limit-x{scale}.parquet"
    for path in (zoo, lake, limit_file):
        _remove(path)
    _check_disk(work, n * 36 * 3.2)
    log(f"x{scale}: generating a zoo of {n:,} filters ...")
    max_model_filters = args.max_model_filters or default_max_model_filters(args.filters)
    manifest = generate(
        zoo, args.filters, seed=args.seed, parts=scale, jobs=args.jobs, max_model_filters=max_model_filters
    )
    log(
        f"x{scale}: {manifest['n_models']} models, {manifest['n_filters']:,} filters, "
        f"{manifest['bytes'] / 1e6:.1f} MB ({manifest['formats']}) in {manifest['seconds']:.1f} s; "
        "measuring ..."
    )
    result: dict[str, Any] = {"scale": scale, "requested_filters": n, "zoo": _summary(manifest)}
    stages = result["stages"] = {}
    stages["limit_ingest"] = run_stage("limit-ingest", zoo, limit_file)
    _remove(limit_file)
    stages["ingest"] = run_stage("ingest", zoo, lake, args.ingest_workers)
    log(
        f"x{scale}: ingest {stages['ingest']['seconds']:.2f} s, "
        f"limit {stages['limit_ingest']['seconds']:.2f} s"
    )
    if not args.keep:
        _remove(zoo)
    stages["limit_scan"] = run_stage("limit-scan", lake)
    stages["analysis"] = run_stage("analyse", lake)
    log(
        f"x{scale}: analysis {stages['analysis']['seconds']:.2f} s, "
        f"scan {stages['limit_scan']['seconds']:.2f} s"
    )
    stages["regroup_all"] = run_stage("regroup", lake, "name")
    _measure_peers(stages, lake, manifest["n_filters"], args, log, f"x{scale}")
    frozen = work / f"lake-x{scale}-frozen"
    _remove(frozen)
    basis_file = work / f"basis-x{scale}.json"
    export_basis(lake, basis_file)  # the basis the analysis fitted, frozen for a second lake
    _hardlink_base_tables(lake, frozen)
    stages["analysis_frozen"] = run_stage("analyse", frozen, basis_file)
    log(f"x{scale}: analysis with a frozen basis {stages['analysis_frozen']['seconds']:.2f} s (one read)")
    if not args.keep:
        _remove(lake)
        _remove(frozen)
    result["metrics"] = _metrics(manifest, stages)
    return result


def _hardlink_base_tables(lake: Path, copy: Path) -> None:
    """A second lake holding the same base tables (filters hard-linked, no bytes copied), no derived ones."""
    from filterlake.lake.layout import table_dir

    copy.mkdir(parents=True)
    shutil.copy2(lake / "lake.json", copy / "lake.json")
    for table in ("filters", "layers", "models"):
        shutil.copytree(table_dir(lake, table), table_dir(copy, table), copy_function=os.link)


def _measure_peers(
    stages: dict[str, Any], lake: Path, n_filters: int, args: argparse.Namespace, log: Log, at: str
) -> None:
    """The two peers on the same lake: the notebook path where it fits in memory, torchconvquality on the
    models up to --peer-filters filters (its cost per filter is what is compared)."""
    fit = notebook_fits(n_filters)
    if fit["fits"]:
        stages["peer_notebook"] = {**run_stage("peer-notebook", lake), "fit": fit}
        log(f"{at}: CNN Filter DB notebook path {stages['peer_notebook']['seconds']:.2f} s")
    else:
        stages["peer_notebook"] = {"skipped": "does not fit in memory", "fit": fit}
        log(
            f"{at}: notebook path skipped: needs ~{fit['need_gb']:.1f} GB, {fit['available_gb']:.1f} GB available"
        )
    stages["peer_tcq"] = run_stage("peer-tcq", lake, args.peer_filters)
    log(
        f"{at}: torchconvquality {stages['peer_tcq']['seconds']:.2f} s on {stages['peer_tcq']['filters']:,} filters"
    )


def measure_regroup(args: argparse.Namespace, work: Path, log: Log) -> dict[str, Any]:
    """Ingest and analyse a zoo of many small models, then time regrouping them without their filters."""
    from bench.synthetic import generate

    zoo, lake = work / "zoo-regroup", work / "lake-regroup"
    for path in (zoo, lake):
        _remove(path)
    log(f"regroup: generating {args.regroup_models:,} small models ({args.regroup_filters:,} filters) ...")
    manifest = generate(
        zoo,
        args.regroup_filters,
        seed=args.seed + 99_991,
        n_models=args.regroup_models,
        jobs=args.jobs,
        prefix="r",
    )
    out: dict[str, Any] = {"zoo": _summary(manifest)}
    out["ingest"] = run_stage("ingest", zoo, lake, args.ingest_workers)
    out["analysis"] = run_stage("analyse", lake)
    out["regroup"] = run_stage("regroup", lake, "name")
    out["report"] = run_stage("report", lake, work / "report-regroup")
    log(
        f"regroup: ingest {out['ingest']['seconds']:.1f} s, analysis {out['analysis']['seconds']:.1f} s, "
        f"regroup {out['regroup']['seconds']:.2f} s ({out['regroup']['groups']} groups), "
        f"report {out['report']['seconds']:.1f} s"
    )
    if not args.keep:
        for path in (zoo, lake, work / "report-regroup"):
            _remove(path)
    return out
