"""Ingest checkpoints into the lake: fetch -> hash -> skip known content -> read -> extract -> write -> commit.

Plain functions with no orchestration: the CLI calls `ingest`, the Prefect flow calls the steps as tasks.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

import filterlake
from filterlake.errors import CheckpointError, FilterlakeError
from filterlake.extract import SKIP_REASONS, iter_filters, model_shape
from filterlake.lake.files import read_table
from filterlake.lake.layout import model_file
from filterlake.lake.writer import ModelWriter, update_model_row
from filterlake.readers import open_checkpoint
from filterlake.readers.base import Checkpoint
from filterlake.sources import metadata as md
from filterlake.sources.discover import Source, discover, fetch
from filterlake.sources.url import file_sha256


@dataclass
class Outcome:
    """What happened to one source: ingested, present (same bytes already in the lake), updated (metadata
    only) or failed (with the reason)."""

    source: str
    status: str
    model_id: str | None = None
    name: str | None = None
    domain: str | None = None
    n_layers: int = 0
    n_filters: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    message: str | None = None
    seconds: float = 0.0

    def as_row(self) -> dict[str, Any]:
        return {"source": self.source, "status": self.status, "name": self.name, "domain": self.domain,
                "layers": self.n_layers, "filters": self.n_filters,
                "skipped": ", ".join(f"{v} {k}" for k, v in sorted(self.skipped.items())),
                "message": self.message or ""}


def content_hash(files: list[Path]) -> str:
    """The model id: sha256 over the bytes of all files of the model, in order."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def _default_name(path: Path) -> str:
    name = path.name
    for suffix in (".safetensors.index.json", ".pth.tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem or name


def _model_row(model_id: str, checkpoint: Checkpoint, meta: dict[str, Any], source_uri: str,
               shape, n_nonfinite: int) -> dict[str, Any]:
    row: dict[str, Any] = {key: meta.get(key) for key in md.FIELDS}
    row["name"] = row["name"] or _default_name(checkpoint.path)
    row.update(
        model_id=model_id, source_uri=source_uri, format=checkpoint.format, load_method=checkpoint.load_method,
        file_bytes=sum(p.stat().st_size for p in checkpoint.files), n_files=len(checkpoint.files),
        n_conv_layers=shape.n_conv_layers, n_layers_3x3=len(shape.layers), n_filters_3x3=shape.n_filters,
        kernel_shapes=shape.kernel_shapes_json(), n_nonfinite=n_nonfinite,
        orientation="known" if all(t.kind != "unknown" for t in checkpoint.tensors) else "unknown",
        depth_source=checkpoint.depth_source, message=shape.message(),
        extra=json.dumps(meta.get("extra") or {}, sort_keys=True, default=str),
        ingested_at=datetime.now(UTC), filterlake_version=filterlake.__version__,
    )
    row.update({f"skipped_{reason}": shape.skipped.get(reason, 0) for reason in SKIP_REASONS})
    return row


def _merge_metadata(lake: Path, model_id: str, meta: dict[str, Any], overwrite: bool) -> bool:
    """Apply metadata to a committed model's row; True when anything changed.

    By default only missing fields and extra keys are filled, so two catalogs naming the same bytes differently
    give a stable lake; `overwrite` (the `--update-metadata` correction) replaces what is given.
    """
    def merged(row: dict[str, Any]) -> dict[str, Any] | None:
        changed = {k: v for k, v in meta.items() if k in md.FIELDS and v is not None and row.get(k) != v
                   and (overwrite or row.get(k) is None)}
        extra = json.loads(row["extra"] or "{}")
        given = meta.get("extra") or {}
        new_extra = {**extra, **given} if overwrite else {**given, **extra}
        if not changed and new_extra == extra:
            return None
        return {**row, **changed, "extra": json.dumps(new_extra, sort_keys=True, default=str)}

    return update_model_row(lake, model_id, merged)


def ingest_file(path: Path, lake: Path, source_uri: str | None = None, meta: dict[str, Any] | None = None,
                expected_sha256: str | None = None, update_metadata: bool = False) -> Outcome:
    """Ingest one local checkpoint (idempotent). Raises FilterlakeError for a bad file; the lake is untouched then."""
    start = time.perf_counter()
    source_uri = source_uri or str(path.resolve())
    if not path.is_file():
        raise CheckpointError(path, "is a directory, not a checkpoint file" if path.is_dir() else "no such file")
    checkpoint = open_checkpoint(path)
    if expected_sha256 and file_sha256(path) != expected_sha256.lower():
        raise CheckpointError(path, f"sha256 differs from the catalog's {expected_sha256.lower()}")
    model_id = content_hash(checkpoint.files)
    shape = model_shape(checkpoint)
    outcome = Outcome(source=source_uri, status="present", model_id=model_id, n_layers=len(shape.layers),
                      n_filters=shape.n_filters, skipped=dict(shape.skipped))
    meta = meta or {}
    if model_file(lake, model_id).exists():
        if meta and _merge_metadata(lake, model_id, meta, update_metadata):
            outcome.status = "updated"
        return _finish(outcome, lake, start)
    writer = ModelWriter(lake, model_id)
    try:
        layer_rows, n_nonfinite = [], 0
        for layer, filters in iter_filters(shape):
            bad, max_abs = _finite_stats(filters)
            n_nonfinite += bad
            layer_rows.append({**layer.__dict__, "model_id": model_id, "n_nonfinite": bad, "max_abs": max_abs})
            writer.add_layer(layer.layer_idx, filters)
        row = _model_row(model_id, checkpoint, meta, source_uri, shape, n_nonfinite)
        if n_nonfinite:
            row["message"] = f"{n_nonfinite} NaN/Inf weight values kept and flagged"
        committed = writer.commit(layer_rows, row)
    except FilterlakeError:
        writer.discard()
        raise
    except (ValueError, OSError, MemoryError, RuntimeError) as exc:
        writer.discard()
        raise CheckpointError(path, f"cannot extract filters: {exc}") from exc
    if committed:
        outcome.status = "ingested"
        return _finish(outcome, lake, start, row)
    if meta and _merge_metadata(lake, model_id, meta, update_metadata):  # another writer committed it first
        outcome.status = "updated"
    return _finish(outcome, lake, start)


def _finite_stats(filters: np.ndarray) -> tuple[int, float]:
    """(number of NaN/Inf values, max |w| over the finite ones) of a layer, in one pass when all are finite."""
    if not filters.size:
        return 0, 0.0
    peak = float(np.abs(filters).max())  # NaN or Inf exactly when some value is not finite
    if np.isfinite(peak):
        return 0, peak
    finite = np.isfinite(filters)
    return int(filters.size - np.count_nonzero(finite)), float(np.abs(np.where(finite, filters, 0)).max())


def _finish(outcome: Outcome, lake: Path, start: float, row: dict[str, Any] | None = None) -> Outcome:
    """Fill in name and domain: from the row just committed, else from the lake's models row."""
    if row is None:
        row = read_table(model_file(lake, outcome.model_id), columns=["name", "domain"]).to_pylist()[0]
    outcome.name, outcome.domain = row["name"], row["domain"]
    outcome.seconds = time.perf_counter() - start
    return outcome


def ingest_source(source: Source, lake: Path, cache: Path | None = None, update_metadata: bool = False) -> Outcome:
    """Fetch and ingest one source; a failure becomes a 'failed' outcome naming the source and the reason."""
    start = time.perf_counter()
    try:
        path = fetch(source, cache)
        expected = source.spec.get("sha256") if source.kind == "path" else None
        return ingest_file(path, lake, source.uri, source.metadata, expected, update_metadata)
    except FilterlakeError as exc:
        return Outcome(source=source.uri, status="failed", message=str(exc), seconds=time.perf_counter() - start)


def ingest(names: list[str], lake: Path, catalogs: list[Path] = (), cache: Path | None = None,
           on_start: Callable[[list[Source]], None] | None = None,
           on_result: Callable[[Outcome], None] | None = None, update_metadata: bool = False,
           workers: int = 1, pool: Executor | None = None) -> list[Outcome]:
    """Ingest every source named (files, folders, catalogs, URLs); one bad source never stops the others.

    With `workers` > 1, sources are ingested by that many worker processes (each holds one checkpoint at a time;
    commits are serialised by the lake lock). Outcomes come back in source order; `on_result` sees them as they
    finish. Workers start with a fresh interpreter (forkserver), so a script calling this with `workers` > 1
    needs the usual `if __name__ == "__main__":` guard, as any multiprocessing code. A `pool` from `worker_pool`
    is used instead when given (and left open), e.g. to start the workers once for several calls.
    """
    sources = discover(names, list(catalogs))
    if on_start:
        on_start(sources)
    parallel = pool is None and workers > 1 and len(sources) > 1
    outcomes: list[Outcome | None] = [None] * len(sources)
    with worker_pool(min(workers, len(sources))) if parallel else nullcontext(pool) as executor:
        for i, outcome in _outcomes(sources, lake, cache, update_metadata, executor):
            outcomes[i] = outcome
            if on_result:
                on_result(outcome)
    return outcomes


def _outcomes(sources: list[Source], lake: Path, cache: Path | None, update_metadata: bool,
              executor: Executor | None) -> Iterator[tuple[int, Outcome]]:
    """(index, outcome) of every source: in order in this process, or as they finish on the executor."""
    if executor is None:
        for i, source in enumerate(sources):
            yield i, ingest_source(source, lake, cache, update_metadata)
        return
    futures = {executor.submit(ingest_source, source, lake, cache, update_metadata): i
               for i, source in enumerate(sources)}
    for future in as_completed(futures):
        yield futures[future], future.result()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for `ingest(pool=...)`: forkserver, so each starts clean, not as a fork of a process that
    may already run threads (DuckDB, torch, a progress bar)."""
    return ProcessPoolExecutor(workers, mp_context=get_context("forkserver"))
