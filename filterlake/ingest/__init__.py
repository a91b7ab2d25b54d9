"""Ingest checkpoints into the lake: discover sources, then per source fetch -> identify -> load (pipeline.py).

Plain functions with no orchestration: the CLI calls `ingest`, the Prefect flow calls the stages as tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import nullcontext
from functools import partial
from pathlib import Path

from filterlake.ingest.cnn_filter_db import import_source
from filterlake.ingest.parallel import outcomes, worker_pool
from filterlake.ingest.pipeline import (
    Identified,
    Outcome,
    fetch,
    identify,
    ingest_file,
    ingest_source,
    load,
    prepare_lake,
)
from filterlake.lake.compact import maybe_compact
from filterlake.lake.location import Lake
from filterlake.sources.discover import Source, discover_all

__all__ = [
    "Identified",
    "Outcome",
    "fetch",
    "identify",
    "ingest",
    "ingest_file",
    "ingest_source",
    "load",
    "prepare_lake",
    "worker_pool",
]


def ingest(
    names: list[str],
    lake: Lake,
    catalogs: list[Path] = (),
    cache: Path | None = None,
    on_start: Callable[[list[Source]], None] | None = None,
    on_result: Callable[[Outcome], None] | None = None,
    update_metadata: bool = False,
    workers: int = 1,
    pool: Executor | None = None,
    on_note: Callable[[str], None] | None = None,
    force: bool = False,
) -> list[Outcome]:
    """Ingest every source named (files, folders, catalogs, URLs); one bad source never stops the others.

    With `workers` > 1, sources are ingested by that many worker processes (each holds one checkpoint at a time;
    commits are serialised by the lake lock). Outcomes come back in source order; `on_result` sees them as they
    finish. Workers start with a fresh interpreter (forkserver), so a script calling this with `workers` > 1
    needs the usual `if __name__ == "__main__":` guard, as any multiprocessing code. A `pool` from `worker_pool`
    is used instead when given (and left open), e.g. to start the workers once for several calls. `on_note`
    gets one line per group of files passed over in folders and per warning about metadata keys. `force`
    rewrites models already in the lake (a damaged partition) instead of keeping them. A catalog's
    `cnn_filter_db` entry imports every model of that dataset.h5 after the checkpoints, one outcome per model
    (ingest/cnn_filter_db.py).
    """
    prepare_lake(lake)
    found = discover_all(names, list(catalogs))
    sources = [s for s in found.sources if s.kind != "cnn_filter_db"]
    datasets = [s for s in found.sources if s.kind == "cnn_filter_db"]  # catalog entries of whole datasets
    if on_note:
        for line in [*found.lines(), *(note for source in sources for note in source.notes)]:
            on_note(line)
    if on_start:
        on_start(sources)
    parallel = pool is None and workers > 1 and len(sources) > 1
    results: list[Outcome | None] = [None] * len(sources)
    with worker_pool(min(workers, len(sources))) if parallel else nullcontext(pool) as executor:
        job = partial(ingest_source, lake=lake, cache=cache, update_metadata=update_metadata, force=force)
        for i, outcome in outcomes(sources, job, executor):
            results[i] = outcome
            if on_result:
                on_result(outcome)
    for source in datasets:  # one outcome per model of the dataset
        results += import_source(source, lake, on_result)
    maybe_compact(lake)  # past lake/compact.py's threshold of per-model files, into the compacted parts
    return results
