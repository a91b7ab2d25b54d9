"""Ingest many sources in worker processes: the pool and the loop that keeps outcomes in source order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from multiprocessing import get_context

from filterlake.ingest.pipeline import Outcome
from filterlake.sources.discover import Source


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for `ingest(pool=...)`: forkserver, so each starts clean, not as a fork of a process that
    may already run threads (DuckDB, torch, a progress bar)."""
    return ProcessPoolExecutor(workers, mp_context=get_context("forkserver"))


def outcomes(
    sources: list[Source], job: Callable[[Source], Outcome], executor: Executor | None
) -> Iterator[tuple[int, Outcome]]:
    """(index, `job(source)`) of every source: in order in this process, or as they finish on the executor
    (`job` must then be picklable, e.g. a functools.partial of a module-level function)."""
    if executor is None:
        for i, source in enumerate(sources):
            yield i, job(source)
        return
    futures = {executor.submit(job, source): i for i, source in enumerate(sources)}
    for future in as_completed(futures):
        yield futures[future], future.result()
