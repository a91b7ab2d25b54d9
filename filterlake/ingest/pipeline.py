"""The ingest stages as public functions, the shape of dlt's extract -> normalize -> load:

`fetch` a source to a local file, `identify` it (format, content hash, shapes; no arrays), `load` it (extract
the filters, write and commit; or merge metadata into the model already there). Each checkpoint's bytes are
hashed once and parsed once. The CLI and the Prefect flow both call these.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filterlake.errors import CheckpointError, FilterlakeError, LakeError, describe_os_error, is_lake_os_error
from filterlake.extract import ModelShape, iter_filters, model_shape
from filterlake.ingest.records import conflicts, layer_row, merged_row, model_row
from filterlake.lake.files import hash_files
from filterlake.lake.layout import is_committed, require_lake
from filterlake.lake.location import Lake, ObjectLake
from filterlake.lake.maintenance import repair
from filterlake.lake.migrate import migrate
from filterlake.lake.rows import model_row as stored_row
from filterlake.lake.writer import open_writer, remove_model, update_model_row
from filterlake.numeric.weights_digest import LayerDigest, weights_sha256
from filterlake.readers import open_checkpoint
from filterlake.readers.base import Checkpoint
from filterlake.sources.discover import Source, printable
from filterlake.sources.fetch import fetch
from filterlake.vocab import FAILED, INGESTED, PRESENT, UPDATED

__all__ = [
    "Identified",
    "Outcome",
    "fetch",
    "identify",
    "ingest_file",
    "ingest_source",
    "load",
    "prepare_lake",
]


def prepare_lake(lake: Lake) -> dict[str, int]:
    """Before writing: refuse a lake path that is a file (or a bucket that cannot be reached), remove what dead
    writers left in the lake (stale staging folders, orphan partitions), bring an older lake to the current
    schema."""
    if isinstance(lake, ObjectLake):
        return repair(require_lake(lake))
    if not require_lake(lake, must_exist=False).is_dir():
        return {}
    repaired = repair(lake)
    migrate(lake)
    return repaired


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
        return {
            "source": self.source,
            "status": self.status,
            "name": self.name,
            "domain": self.domain,
            "layers": self.n_layers,
            "filters": self.n_filters,
            "skipped": ", ".join(f"{v} {k}" for k, v in sorted(self.skipped.items())),
            "message": self.message or "",
        }


@dataclass
class Identified:
    """A checkpoint opened and hashed, not loaded: its model id, provenance and 3x3 layout (lazy weights)."""

    path: Path
    source_uri: str
    model_id: str
    checkpoint: Checkpoint = field(repr=False)
    shape: ModelShape = field(repr=False)

    @property
    def format(self) -> str:
        return self.checkpoint.format


def identify(path: Path, source_uri: str | None = None, expected_sha256: str | None = None) -> Identified:
    """Open a local checkpoint and hash its bytes once (all files of the model; the main file checked against
    `expected_sha256` when a catalog gives one). Raises CheckpointError for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            path, "is a directory, not a checkpoint file" if path.is_dir() else "no such file"
        )
    checkpoint = open_checkpoint(path)
    model_id, main_sha256 = hash_files(checkpoint.files)
    if expected_sha256 and main_sha256 != expected_sha256.lower():
        raise CheckpointError(path, f"sha256 differs from the catalog's {expected_sha256.lower()}")
    return Identified(path, source_uri or str(path.resolve()), model_id, checkpoint, model_shape(checkpoint))


def load(
    identified: Identified,
    lake: Lake,
    meta: dict[str, Any] | None = None,
    update_metadata: bool = False,
    force: bool = False,
) -> Outcome:
    """Extract, write and commit one identified checkpoint (idempotent): a model already in the lake only gets
    its metadata merged, unless `force` rewrites it whole (a damaged model). Raises FilterlakeError for a bad
    file; the lake is untouched then."""
    start = time.perf_counter()
    shape, model_id, meta = identified.shape, identified.model_id, meta or {}
    outcome = Outcome(
        source=printable(identified.source_uri),
        status=PRESENT,
        model_id=model_id,
        n_layers=len(shape.layers),
        n_filters=shape.n_filters,
        skipped=dict(shape.skipped),
    )
    if force:
        remove_model(lake, model_id)
    if is_committed(lake, model_id):
        return _finish(_merge(outcome, lake, meta, update_metadata), lake, start)
    writer = open_writer(lake, model_id)
    try:
        layer_rows, n_nonfinite, digests = [], 0, []
        for layer, filters in iter_filters(shape):
            row, bad = layer_row(model_id, layer, filters)
            layer_rows.append(row)
            n_nonfinite += bad
            digest = LayerDigest(layer.out_channels, layer.in_channels)
            digest.update(filters)
            digests.append(digest.hexdigest())
            writer.add_layer(layer.layer_idx, filters)
        row = model_row(
            model_id,
            identified.checkpoint,
            meta,
            identified.source_uri,
            shape,
            n_nonfinite,
            weights_sha256(digests),
        )
        committed = writer.commit(layer_rows, row)
    except (ValueError, MemoryError, RuntimeError, OSError) as exc:
        writer.discard()
        if isinstance(exc, OSError) and is_lake_os_error(exc):  # every source would fail the same way
            raise LakeError(f"{lake}: {describe_os_error(exc)}") from exc
        raise CheckpointError(identified.path, f"cannot extract filters: {exc}") from exc
    except BaseException:  # a bad file, Ctrl-C, SIGTERM: nothing staged is kept
        writer.discard()
        raise
    if committed:
        outcome.status = INGESTED
        return _finish(outcome, lake, start, row)
    return _finish(_merge(outcome, lake, meta, update_metadata), lake, start)  # another writer was first


def _merge(outcome: Outcome, lake: Lake, meta: dict[str, Any], overwrite: bool) -> Outcome:
    """Merge the source's metadata into the committed model's row (under the lake lock); say what was kept."""
    if not meta:
        return outcome
    kept: list[str] = []

    def update(row: dict[str, Any]) -> dict[str, Any] | None:
        kept[:] = [] if overwrite else conflicts(row, meta)
        return merged_row(row, meta, overwrite)

    if update_model_row(lake, outcome.model_id, update):
        outcome.status = UPDATED
    if kept:
        outcome.message = f"already in the lake; kept {', '.join(kept)}: --update-metadata replaces them"
    return outcome


def _finish(outcome: Outcome, lake: Lake, start: float, row: dict[str, Any] | None = None) -> Outcome:
    """Fill in name and domain: from the row just committed, else from the lake's models row."""
    if row is None:
        row = stored_row(lake, outcome.model_id, ["name", "domain"]) or {"name": None, "domain": None}
    outcome.name, outcome.domain = row["name"], row["domain"]
    outcome.seconds = time.perf_counter() - start
    return outcome


def ingest_file(
    path: Path,
    lake: Lake,
    source_uri: str | None = None,
    meta: dict[str, Any] | None = None,
    expected_sha256: str | None = None,
    update_metadata: bool = False,
    force: bool = False,
) -> Outcome:
    """Identify and load one local checkpoint. Raises FilterlakeError for a bad file; the lake is untouched."""
    return load(identify(path, source_uri, expected_sha256), lake, meta, update_metadata, force)


def ingest_source(
    source: Source, lake: Lake, cache: Path | None = None, update_metadata: bool = False, force: bool = False
) -> Outcome:
    """Fetch, identify and load one source; a failure becomes a 'failed' outcome naming the source and why."""
    start = time.perf_counter()
    if source.problem:
        return Outcome(source=printable(source.uri), status=FAILED, message=source.problem)
    try:
        path = fetch(source, cache)
        return ingest_file(
            path, lake, source.uri, source.metadata, source.expected_sha256, update_metadata, force
        )
    except FilterlakeError as exc:
        uri, message = printable(source.uri), printable(str(exc))
        return Outcome(
            source=uri,
            status=FAILED,
            message=message if uri in message else f"{uri}: {message}",
            seconds=time.perf_counter() - start,
        )
