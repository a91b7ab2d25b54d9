"""The analysis flow: `filterlake analyze` with its per-model work as Prefect tasks on a task runner.

Layer statistics and histograms are computed per model, one `derive_model` task each, on the run's task runner
(a Dask cluster with `--dask`, flows/runners.py), and each task writes its model's files itself: a local lake
must be a folder every worker sees at the same path; an `s3://` lake is derived in each machine's working copy
and pushed to the bucket (derived/object_lake.py). The basis (one reduction over the stored sufficient statistics)
and the shifts (from the stored histograms) are computed in the flow's own process, so the derived tables are
the ones `filterlake analyze` writes, number for number.

Run once: `python -m flows.analyze [--lake DIR|s3://BUCKET/PREFIX] [--dask ADDRESS|local:N] [--preset NAME] [--group-by COL...]`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner

from filterlake.derived.analyze import analyze
from filterlake.derived.per_model import WORKERS, ModelMap, blas_threads
from filterlake.errors import FilterlakeError
from filterlake.lake.location import parse_lake
from filterlake.numeric.presets import PRESETS
from flows.ingest import positive_int, refresh_line
from flows.refresh import analysis_summary
from flows.runners import DASK_HELP, dask_address, refuse_unusable, task_runner
from flows.tasks import add_lake_argument, reported_by_the_flow

T = TypeVar("T")


@task(cache_policy=NO_CACHE, task_run_name="derive {model_id}")
def derive_model(compute: Callable[[str], T], model_id: str) -> T:
    """One model's derived rows, computed and written by the process that runs the task (a Dask worker), with
    BLAS on one thread as in `filterlake analyze` (per_model.blas_threads: the same bits on any worker)."""
    with blas_threads(1):
        return compute(model_id)


def submitting(runner: TaskRunner) -> ModelMap:
    """A ModelMap that submits a `derive_model` task per model to `runner` and yields their results in order
    (a failed task raises its error; the runner's exit releases the tasks not run yet)."""

    def model_map(compute: Callable[[str], T], model_ids: list[str]) -> Iterator[T]:
        futures = [runner.submit(derive_model, {"compute": compute, "model_id": m}) for m in model_ids]
        for future in futures:
            yield future.result()

    return model_map


@flow(name="filterlake-analyze")
def analyze_flow(
    lake: str | None = None,
    preset: str = "medical",
    group_by: list[str] | None = None,
    dask: str | None = None,
    concurrency: int = WORKERS,
) -> dict[str, Any]:
    """Bring every derived table up to date with the per-model work on the task runner (`dask`, else
    `concurrency` threads); returns what was refreshed (flows/refresh.py's summary)."""
    with reported_by_the_flow(), task_runner(dask, concurrency) as runner:  # main prints the one line
        try:
            found = parse_lake(lake)
            analysis = analyze(
                found.resolve() if isinstance(found, Path) else found,
                preset,
                tuple(group_by or ["domain"]),
                model_map=submitting(runner),
            )
        except FilterlakeError as exc:  # its message says why; its frames would keep DuckDB objects alive
            raise exc.with_traceback(None) from None
    return analysis_summary(analysis)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m flows.analyze`: help for every argument, one usage line on errors."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.analyze",
        description="Run the Prefect analysis flow once: what `filterlake analyze` computes, with the layer "
        "statistics and histograms of each model as a task on the task runner. Prints what was refreshed; "
        "exit 1 when the analysis failed. Without PREFECT_API_URL a temporary local Prefect server is started.",
    )
    add_lake_argument(parser)
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="medical", help="the analysis preset (default: medical)"
    )
    parser.add_argument(
        "--group-by", nargs="+", metavar="COL", help="models columns to compute shifts by (default: domain)"
    )
    parser.add_argument("--dask", type=dask_address, metavar="ADDRESS|local:N", help=DASK_HELP)
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=WORKERS,
        metavar="N",
        help=f"models analysed at once without --dask (default {WORKERS})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m flows.analyze`: 0 when the analysis is up to date, 1 when it failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_unusable(parser, args.dask)
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")  # as flows.ingest
    try:
        state = analyze_flow(
            lake=args.lake,
            preset=args.preset,
            group_by=args.group_by,
            dask=args.dask,
            concurrency=args.concurrency,
            return_state=True,
        )
    except KeyboardInterrupt:
        print("flows.analyze: interrupted; derived files are written whole or not at all", file=sys.stderr)
        return 130
    result = state.result(raise_on_failure=False)
    if not state.is_completed():
        reason = str(result) if isinstance(result, FilterlakeError) else state.message
        print(f"flows.analyze: {reason}", file=sys.stderr)
        return 1
    print(refresh_line(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
