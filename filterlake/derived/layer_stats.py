"""`layer_stats/`: per-layer quality metrics and the sufficient statistics every basis is summed from.

One row per (model, layer), computed once per model in a single streaming pass and kept while the parameters
are unchanged, so ingesting a new model never recomputes the others.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.derived.store import (
    WORKERS,
    blas_threads,
    map_models,
    read_param,
    staging,
    write_atomic,
)
from filterlake.lake.files import read_table
from filterlake.lake.layout import committed_ids, layers_file
from filterlake.lake.scan import iter_layers
from filterlake.numeric.moments import FLAT_NAMES
from filterlake.numeric.params import DEFAULT_QUALITY, QualityParams
from filterlake.numeric.quality import layer_quality

MOMENT_SETS = {"raw": "moments_raw", "sc": "moments_scaled", "scn": "moments_scaled_nonsparse"}


def moment_columns(prefix: str) -> list[str]:
    """Column names of one stored moment set: n, s0..s8, o00..o88 (upper triangle) with a prefix."""
    return [f"{prefix}_{name}" for name in FLAT_NAMES]


def stats_file(lake: Path, model_id: str) -> Path:
    return lake / "layer_stats" / f"{model_id}.parquet"


def finite_channels(layer: np.ndarray) -> np.ndarray:
    """The output channels of a (C_out, C_in, 9) layer whose weights are all finite.

    NaN/Inf weights are kept in the lake and counted (`layers.n_nonfinite`); the analysis leaves out the
    output channels that hold them, so every metric and histogram stays defined.
    """
    finite = np.isfinite(layer).all(axis=(1, 2))
    return layer if finite.all() else layer[finite]


def model_layer_stats(lake: Path, model_id: str, params: QualityParams) -> pa.Table:
    """Stream one model's layers through `layer_quality` and return its layer_stats rows."""
    layers = read_table(layers_file(lake, model_id),
                           columns=["layer_idx", "n_filters", "out_channels", "in_channels"]).to_pylist()
    shapes = {row["layer_idx"]: (row["out_channels"], row["in_channels"]) for row in layers}
    tag = params.fingerprint
    rows = []
    for layer_idx, filters in iter_layers(lake, model_id, [(r["layer_idx"], r["n_filters"]) for r in layers]):
        quality = layer_quality(finite_channels(filters.reshape(*shapes[layer_idx], 9)), params)
        row: dict[str, Any] = {"model_id": model_id, "layer_idx": layer_idx, "params": tag}
        for prefix, key in MOMENT_SETS.items():
            row.update(zip(moment_columns(prefix), quality.pop(key).to_flat().tolist()))
        row.update(quality)
        rows.append(row)
    return pa.Table.from_pylist(rows)


def refresh_layer_stats(lake: Path, params: QualityParams = DEFAULT_QUALITY,
                        on_model: Callable[[str], None] | None = None, workers: int = WORKERS,
                        model_ids: Collection[str] | None = None) -> dict[str, int]:
    """Compute layer_stats for models (default: all committed) that lack them or used other parameters."""
    tag = params.fingerprint
    ids = committed_ids(lake) if model_ids is None else set(model_ids)
    computed = reused = 0
    with blas_threads(1), staging(lake) as stage:

        def one(model_id: str) -> bool:
            """Compute and store one model's rows; False when its stored rows are still valid."""
            target = stats_file(lake, model_id)
            if read_param(target) == tag or (target.exists() and _empty_with(target, tag)):
                return False
            table = model_layer_stats(lake, model_id, params)
            if not table.num_rows:  # a model without 3x3 layers: keep a marker so it is not rescanned
                table = pa.table({"model_id": pa.array([], pa.string()), "layer_idx": pa.array([], pa.int32()),
                                  "params": pa.array([], pa.string())}, metadata={"params": tag})
            write_atomic(table, target, lake, stage)
            return True

        order = sorted(ids)
        for model_id, done in zip(order, map_models(one, order, workers)):
            computed += done
            reused += not done
            if on_model:
                on_model(model_id)
    removed = 0
    present = committed_ids(lake)  # not the snapshot: models committed meanwhile keep their statistics
    for stale in (lake / "layer_stats").glob("*.parquet") if (lake / "layer_stats").is_dir() else ():
        if stale.stem not in present:
            stale.unlink()
            removed += 1
    return {"computed": computed, "reused": reused, "removed": removed}


def _empty_with(path: Path, tag: str) -> bool:
    """True for the zero-row marker file of a model without 3x3 layers computed with `tag`."""
    meta = pq.read_schema(path).metadata or {}
    return meta.get(b"params", b"").decode() == tag
