"""The `models` and `layers` rows of one checkpoint, and the metadata merge of a model already in the lake."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import filterlake
from filterlake.extract import LayerRecord, ModelShape
from filterlake.readers.base import Checkpoint
from filterlake.sources.discover import printable
from filterlake.vocab import KIND_UNKNOWN, MODEL_FIELDS, ORIENTATION_KNOWN, ORIENTATION_UNKNOWN, SKIP_REASONS

UNSCALED_NOTE = "unscaled"  # a reader's note: quantised weights kept in quantisation steps (no scale found)


def default_name(path: Path) -> str:
    """A model's name when its metadata gives none: the file name without its checkpoint suffix."""
    name = path.name
    for suffix in (".safetensors.index.json", ".weights.json", ".weights.h5", ".pth.tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem or name


def finite_stats(filters: np.ndarray) -> tuple[int, float]:
    """(number of NaN/Inf values, max |w| over the finite ones) of a layer, in one pass when all are finite."""
    if not filters.size:
        return 0, 0.0
    peak = float(np.abs(filters).max())  # NaN or Inf exactly when some value is not finite
    if np.isfinite(peak):
        return 0, peak
    finite = np.isfinite(filters)
    return int(filters.size - np.count_nonzero(finite)), float(np.abs(np.where(finite, filters, 0)).max())


def layer_row(model_id: str, layer: LayerRecord, filters: np.ndarray) -> tuple[dict[str, Any], int]:
    """A layer's `layers` row and its number of non-finite values."""
    bad, max_abs = finite_stats(filters)
    return {**layer.__dict__, "model_id": model_id, "n_nonfinite": bad, "max_abs": max_abs}, bad


def model_row(
    model_id: str,
    checkpoint: Checkpoint,
    meta: dict[str, Any],
    source_uri: str,
    shape: ModelShape,
    n_nonfinite: int,
    weights_sha256: str | None,
) -> dict[str, Any]:
    """The `models` row of a checkpoint: its metadata, provenance, counts, skipped layers by reason and the
    digest of its filters."""
    row: dict[str, Any] = {key: meta.get(key) for key in MODEL_FIELDS}
    row["name"] = row["name"] or printable(default_name(checkpoint.path))
    extra = dict(meta.get("extra") or {})
    if printable(source_uri) != source_uri:  # a file name that is not UTF-8: stored readable, bytes kept
        extra["source_uri_bytes_hex"] = os.fsencode(source_uri).hex()
        source_uri = printable(source_uri)
    known = all(t.kind != KIND_UNKNOWN for t in checkpoint.tensors)
    notes = [shape.message(), *(n for n in checkpoint.notes if n.startswith(UNSCALED_NOTE))]
    if n_nonfinite:
        notes.append(f"{n_nonfinite} NaN/Inf weight values kept and flagged")
    row.update(
        model_id=model_id,
        source_uri=source_uri,
        format=checkpoint.format,
        load_method=checkpoint.load_method,
        file_bytes=sum(p.stat().st_size for p in checkpoint.files),
        n_files=len(checkpoint.files),
        n_conv_layers=shape.n_conv_layers,
        n_layers_3x3=len(shape.layers),
        n_filters_3x3=shape.n_filters,
        kernel_shapes=shape.kernel_shapes_json(),
        n_nonfinite=n_nonfinite,
        orientation=ORIENTATION_KNOWN if known else ORIENTATION_UNKNOWN,
        depth_source=shape.depth_source,
        message="; ".join(n for n in notes if n) or None,
        extra=json.dumps(extra, sort_keys=True, default=str),
        ingested_at=datetime.now(UTC),
        filterlake_version=filterlake.__version__,
        weights_sha256=weights_sha256,
    )
    row.update({f"skipped_{reason}": shape.skipped.get(reason, 0) for reason in SKIP_REASONS})
    return row


def merged_row(row: dict[str, Any], meta: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """A committed model's row with `meta` applied, or None when nothing changes.

    By default only missing fields and extra keys are filled, so two catalogs naming the same bytes differently
    give a stable lake; `overwrite` (the `--update-metadata` correction) replaces what is given.
    """
    changed = {
        k: v
        for k, v in meta.items()
        if k in MODEL_FIELDS and v is not None and row.get(k) != v and (overwrite or row.get(k) is None)
    }
    extra = json.loads(row["extra"] or "{}")
    given = meta.get("extra") or {}
    new_extra = {**extra, **given} if overwrite else {**given, **extra}
    if not changed and new_extra == extra:
        return None
    return {**row, **changed, "extra": json.dumps(new_extra, sort_keys=True, default=str)}


def conflicts(row: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The fields a source gives differently from the committed row (kept unless --update-metadata), as text."""
    return [
        f"{k}={row[k]!r} (this source says {v!r})"
        for k, v in meta.items()
        if k in MODEL_FIELDS and v is not None and row.get(k) is not None and row[k] != v
    ]
