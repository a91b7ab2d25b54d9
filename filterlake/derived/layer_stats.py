"""`layer_stats/`: per-layer quality metrics and the sufficient statistics every basis is summed from.

One row per (model, layer), computed once per model in a single streaming pass and kept while the parameters
are unchanged, so ingesting a new model never recomputes the others.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from filterlake.derived.per_model import ModelMap, map_models, refresh_models, stored_fingerprint
from filterlake.lake.files import staging, write_table_atomic
from filterlake.lake.layout import committed_ids, layers_file, stats_file, table_files
from filterlake.lake.rows import required_rows
from filterlake.lake.scan import iter_layers
from filterlake.lake.schema import arrow_schema
from filterlake.numeric.kernels import ROW_COLUMNS, layer_row
from filterlake.numeric.params import DEFAULT_QUALITY, QualityParams


def finite_channels(layer: np.ndarray) -> np.ndarray:
    """The output channels of a (C_out, C_in, 9) layer whose weights are all finite.

    NaN/Inf weights are kept in the lake and counted (`layers.n_nonfinite`); the analysis leaves out the
    output channels that hold them, so every metric and histogram stays defined.
    """
    finite = np.isfinite(layer).all(axis=(1, 2))
    return layer if finite.all() else layer[finite]


def layer_shapes(lake: Path, model_id: str) -> list[dict[str, Any]]:
    """(layer_idx, n_filters, out_channels, in_channels) of each 3x3 layer of a model, in layer order."""
    return required_rows(
        lake, layers_file(lake, model_id), ["layer_idx", "n_filters", "out_channels", "in_channels"]
    ).to_pylist()


def iter_layer_columns(lake: Path, model_id: str) -> Iterator[tuple[int, int, np.ndarray]]:
    """(layer_idx, out_channels, (9, n) float32 columns) of each layer, as the compiled kernels take them
    (they leave out the output channels holding NaN/Inf themselves)."""
    layers = layer_shapes(lake, model_id)
    c_out = {row["layer_idx"]: row["out_channels"] for row in layers}
    for layer_idx, columns in iter_layers(lake, model_id, [(r["layer_idx"], r["n_filters"]) for r in layers]):
        yield layer_idx, c_out[layer_idx], columns


def iter_model_layers(lake: Path, model_id: str) -> Iterator[tuple[int, np.ndarray]]:
    """(layer_idx, (C_out, C_in, 9) float32 filters with non-finite channels left out) of each layer, the
    input of the numpy reference `quality.layer_quality` (copies: they stay valid)."""
    for layer_idx, c_out, columns in iter_layer_columns(lake, model_id):
        layer = np.ascontiguousarray(columns.T).reshape(c_out, columns.shape[1] // max(c_out, 1), 9)
        yield layer_idx, finite_channels(layer)


def stats_table(model_id: str, layer_idx: list[int], rows: np.ndarray, params: QualityParams) -> pa.Table:
    """A model's layer_stats table from its layers' `kernels.layer_row` values (one row each), built
    column by column by Arrow."""
    schema = arrow_schema("layer_stats")
    n = len(layer_idx)
    values = rows.reshape(n, len(ROW_COLUMNS))
    columns = {
        "model_id": pa.repeat(pa.scalar(model_id, pa.string()), n),
        "layer_idx": pa.array(layer_idx, pa.int32()),
        "params": pa.repeat(pa.scalar(params.fingerprint, pa.string()), n),
    }
    for i, name in enumerate(ROW_COLUMNS):
        kind = schema.field(name).type
        column = values[:, i]
        columns[name] = pa.array(column != 0 if kind == pa.bool_() else column.astype(kind.to_pandas_dtype()))
    return pa.table(columns, schema=schema)


def model_layer_stats(lake: Path, model_id: str, params: QualityParams) -> pa.Table:
    """Stream one model's layers through the compiled `kernels.layer_row` and return its layer_stats rows."""
    index, rows = [], []
    for layer_idx, c_out, columns in iter_layer_columns(lake, model_id):
        index.append(layer_idx)
        rows.append(layer_row(columns, c_out, params))
    return stats_table(model_id, index, np.array(rows), params)


def refresh_layer_stats(
    lake: Path,
    params: QualityParams = DEFAULT_QUALITY,
    on_model: Callable[[str], None] | None = None,
    model_map: ModelMap = map_models,
    model_ids: Collection[str] | None = None,
) -> dict[str, int]:
    """Compute layer_stats for models (default: all committed) that lack them or used other parameters.

    Each file carries the parameters' fingerprint in its metadata (a model without 3x3 layers gets a zero-row
    file, so it is not rescanned); files of models no longer in the lake are removed. Each model is staged by
    the process that computes it (`model_map` may run it in another one).
    """
    tag = params.fingerprint

    def compute(model_id: str) -> bool:
        target = stats_file(lake, model_id)
        if stored_fingerprint(lake, target, "layer_stats") == tag:
            return False
        with staging(lake) as stage:
            write_table_atomic(
                model_layer_stats(lake, model_id, params), target, "layer_stats", stage, {"params": tag}
            )
        return True

    counts = refresh_models(
        committed_ids(lake) if model_ids is None else model_ids, compute, on_model, model_map
    )
    present = committed_ids(lake)  # not the snapshot: models committed meanwhile keep their statistics
    stale = [path for path in table_files(lake, "layer_stats") if path.stem not in present]
    for path in stale:
        path.unlink(missing_ok=True)
    return {**counts, "removed": len(stale)}
