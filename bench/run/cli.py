"""The command line: the whole benchmark run and its written results, or one stage in a child process."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench.run
from bench.paths import OUT
from bench.run.import_stage import import_line, measure_import
from bench.run.judge import TARGETS, extrapolate, judge
from bench.run.machine import machine
from bench.run.object_store import measure_object_store, object_store_line
from bench.run.scale_out import measure_scale_out, scale_out_line
from bench.run.scales import measure_regroup, measure_scale
from bench.run.stages import STAGES
from bench.run.tables import table


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Every scale, the regroup zoo, the targets and the extrapolation; printed, and written to `--out`."""
    name = args.name or (args.out.stem if args.out else f"bench-{args.filters}")
    work = args.work or OUT / f"run-{name}"
    work.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def log(message: str) -> None:
        """Progress on stderr with the seconds since the start (stdout holds only the table)."""
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "name": name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "args": {
            "filters": args.filters,
            "scales": args.scales,
            "regroup_models": args.regroup_models,
            "regroup_filters": args.regroup_filters,
            "max_model_filters": args.max_model_filters,
            "seed": args.seed,
            "jobs": args.jobs,
            "import_filters": args.import_filters,
            "peer_filters": args.peer_filters,
            "scale_out_filters": args.scale_out_filters,
            "object_store_filters": args.object_store_filters,
        },
        "targets_definition": TARGETS,
        "scales": [],
    }
    for scale in args.scales:
        results["scales"].append(measure_scale(scale, args, work, log))
    if args.regroup_models:
        results["regroup"] = measure_regroup(args, work, log)
    if args.import_filters:
        results["import"] = measure_import(args, work, log)
    if args.scale_out_filters:
        results["scale_out"] = measure_scale_out(args, work, log)
    if args.object_store_filters:
        results["object_store"] = measure_object_store(args, work, log)
    results["targets"] = judge(results)
    results["extrapolation"] = extrapolate(results)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    text = table(results) + (f"\n\n{import_line(results['import'])}" if results.get("import") else "")
    text += f"\n\n{scale_out_line(results['scale_out'])}" if results.get("scale_out") else ""
    text += f"\n\n{object_store_line(results['object_store'])}" if results.get("object_store") else ""
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        args.out.with_suffix(".txt").write_text(text + "\n")
        log(f"wrote {args.out} and {args.out.with_suffix('.txt')}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _stage(argv: list[str]) -> int:
    """`python -m bench.run stage NAME ARGS... --result FILE`: run one stage, write its result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.run stage")
    parser.add_argument("name", choices=list(STAGES))
    parser.add_argument("args", nargs="+", help="the stage function's arguments (paths, then options)")
    parser.add_argument("--result", type=Path, required=True)
    a = parser.parse_args(argv)
    result = STAGES[a.name](*a.args)
    a.result.write_text(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the benchmark's flags (or a child's `stage ...`) and run it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stage"]:
        return _stage(argv[1:])
    description = (bench.run.__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=description)
    parser.add_argument("--filters", type=int, required=True, help="base zoo size in 3x3 filters")
    parser.add_argument("--scales", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100])
    parser.add_argument(
        "--regroup-models", type=int, default=1000, help="models of the regrouping zoo (0: skip)"
    )
    parser.add_argument(
        "--regroup-filters", type=int, help="filters of the regrouping zoo (default: --filters)"
    )
    parser.add_argument(
        "--max-model-filters", type=int, default=0, help="largest model (default: bench.synthetic's)"
    )
    parser.add_argument(
        "--out", type=Path, help="write the results JSON here (and the table beside it as .txt)"
    )
    parser.add_argument("--name")
    parser.add_argument("--work", type=Path, help=f"where zoos and lakes are made (default {OUT}/run-NAME)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="processes generating the zoo (not measured)")
    parser.add_argument("--keep", action="store_true", help="keep zoos and lakes")
    parser.add_argument(
        "--ingest-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes of the ingest stage, as `filterlake ingest --workers` (default: one "
        "per core; the limit is one bare process, as the target defines it)",
    )
    parser.add_argument(
        "--peer-filters",
        type=int,
        default=20_000_000,
        help="torchconvquality runs on the models up to this many filters (its cost per filter is compared)",
    )
    parser.add_argument(
        "--import-filters",
        type=int,
        default=2_000_000,
        help="filters of the synthetic CNN Filter DB dataset.h5 of the import stage (0: skip)",
    )
    parser.add_argument(
        "--scale-out-filters",
        type=int,
        default=0,
        help="filters of the zoo the Prefect flows ingest and analyse on a Dask cluster of 1 and of 2 worker "
        "processes, for their speed-up (default 0: skip)",
    )
    parser.add_argument(
        "--object-store-filters",
        type=int,
        help="filters of the zoo ingested and analysed into a lake folder and into an s3:// lake on a local "
        "moto_server, for the ratios S3 / local of both times (default: --scale-out-filters; 0: skip)",
    )
    args = parser.parse_args(argv)
    args.regroup_filters = args.regroup_filters or args.filters
    if args.object_store_filters is None:
        args.object_store_filters = args.scale_out_filters
    benchmark(args)
    return 0
