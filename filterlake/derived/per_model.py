"""The one per-model refresh loop of the derived tables: which models to (re)compute, threads (or another
`ModelMap`), BLAS threads."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from filterlake.lake.rows import stored_schema
from filterlake.lake.schema import arrow_schema

T = TypeVar("T")


def stored_fingerprint(lake: Path, path: Path, table: str) -> str | None:
    """The parameter fingerprint a model's derived rows of `table` (per-model path `path`: its own file or the
    compacted part, lake/rows.py) were computed with (the `params` metadata); None when there are none, or
    unreadable or of another schema (e.g. written by an older filterlake)."""
    schema = stored_schema(lake, path)
    if schema is None or not schema.remove_metadata().equals(arrow_schema(table)):
        return None
    value = (schema.metadata or {}).get(b"params")
    return value.decode() if value is not None else None


WORKERS = min(os.cpu_count() or 1, 4)  # models analysed at once (threads: numpy and pyarrow release the GIL)


def map_models(fn: Callable[[str], T], model_ids: list[str], workers: int = WORKERS) -> Iterator[T]:
    """`fn(model_id)` for each model, results in order; with `workers` > 1 several models run in threads.

    Per-model work is Parquet I/O, BLAS and the compiled kernels (numeric/kernels.py, ``nogil``), which run
    without the GIL, and every model writes its own files, so models are independent. This is how the analysis
    uses every core, rather than numba's ``prange`` inside a layer: a layer's sums then run in one fixed
    order whatever the number of cores (the same lake gives the same bits on any machine), one model's read
    overlaps another's arithmetic, and small layers cost no thread start-up. Memory grows to `workers` models
    in flight at once.
    """
    if workers <= 1 or len(model_ids) <= 1:
        yield from map(fn, model_ids)
        return
    with ThreadPoolExecutor(min(workers, len(model_ids)), thread_name_prefix="filterlake-derive") as pool:
        futures = [pool.submit(fn, model_id) for model_id in model_ids]
        try:
            for future in futures:
                yield future.result()
        finally:  # on an error (or an abandoned generator) do not start the models not begun yet
            for future in futures:
                future.cancel()


ModelMap = Callable[[Callable[[str], T], list[str]], Iterator[T]]
"""How the per-model work runs: `model_map(fn, model_ids)` yields `fn(model_id)` of each model, in order.
`map_models` runs them in threads here; flows/analyze.py submits a Prefect task per model to its task runner (a
Dask cluster), so `fn` must survive cloudpickle and write the model's files itself, returning a small value."""


def run_models(
    model_ids: Collection[str],
    compute: Callable[[str], T],
    on_model: Callable[[str], None] | None = None,
    model_map: ModelMap = map_models,
) -> dict[str, T]:
    """`compute(model_id)` of every model (sorted) through `model_map`, with BLAS on one thread each; returns
    {model_id: result}. `on_model` sees each model as it finishes."""
    order = sorted(model_ids)
    results: dict[str, T] = {}
    with blas_threads(1):
        for model_id, result in zip(order, model_map(compute, order)):
            results[model_id] = result
            if on_model:
                on_model(model_id)
    return results


def refresh_models(
    model_ids: Collection[str],
    compute: Callable[[str], bool],
    on_model: Callable[[str], None] | None = None,
    model_map: ModelMap = map_models,
) -> dict[str, int]:
    """Run `compute(model_id)` for every model, several at once (`run_models`).

    `compute` stores the model's rows and returns False when its stored rows were still valid; the counts of
    both come back as {"computed": ..., "reused": ...}.
    """
    done = run_models(model_ids, compute, on_model, model_map)
    computed = sum(done.values())
    return {"computed": computed, "reused": len(done) - computed}


@contextlib.contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Run the block with the OpenBLAS libraries loaded in this process limited to `n` threads (then restored).

    The per-layer work multiplies skinny (filters x 9) matrices, where OpenBLAS threads cost more than they
    save (about 4x slower for (n, 9) @ (9, 9) on 2 cores, worse when the cores are busy). Results are the same:
    OpenBLAS splits a product by output blocks, not along the summed dimension. A no-op without OpenBLAS.
    """
    libs = _openblas()
    before = [get() for get, _set in libs]
    for _get, set_threads in libs:
        set_threads(n)
    try:
        yield
    finally:
        for (_get, set_threads), count in zip(libs, before):
            set_threads(count)


_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)


def _openblas() -> list[tuple[Callable[[], int], Callable[[int], None]]]:
    """(get, set) thread-count functions of every OpenBLAS mapped into this process."""
    try:
        with open("/proc/self/maps") as maps:
            paths = dict.fromkeys(m.group(1) for m in re.finditer(r"(/\S*openblas\S*\.so\S*)", maps.read()))
    except OSError:
        return []
    return [found for path in paths if (found := _thread_functions(path)) is not None]


@functools.cache
def _thread_functions(path: str) -> tuple[Callable[[], int], Callable[[int], None]] | None:
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for getter in _GETTERS:
        setter = getter.replace("_get_", "_set_")
        if hasattr(lib, getter) and hasattr(lib, setter):
            get, put = getattr(lib, getter), getattr(lib, setter)
            get.restype, put.restype, put.argtypes = ctypes.c_int, None, [ctypes.c_int]
            return get, put
    return None
