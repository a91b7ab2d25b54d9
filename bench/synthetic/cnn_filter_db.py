"""A synthetic CNN Filter DB `dataset.h5` in exactly the published layout (methods.md section 7).

`filters` is written with h5py, `(N, 3, 3)` float64 as v1.0.0 publishes it (or `/filter`, `(N, 9)` float32, as
its README says), one model after the other; `meta` with `pandas.DataFrame.to_hdf(path, key="meta")`: one row
per 3x3 layer, the MultiIndex `[model_id, conv_depth, conv_depth_norm, layer_id]`, object columns, and
`filter_ids` as `"start:end"` with an inclusive end. The tests build their datasets with `write_dataset`; the
benchmark's import stage writes `random_models` with it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

CURATED = {  # per-model columns as the curated spreadsheet names them (a v1.0.0 file)
    "Name": None,
    "Paper": "https://example.org/paper",
    "Framework": "PyTorch",
    "Precision": "fp32",
    "Conv Weight Initializer": "kaiming",
    "Pretraining-Dataset": "ImageNet1k",
    "Optimizer": "SGD",
}


@dataclass
class Model:
    """One model of a synthetic dataset: its layers' weights `(out, in, 3, 3)` and its per-model columns."""

    name: str
    layers: list[np.ndarray]
    columns: dict[str, Any] = field(default_factory=dict)  # Task, Visual Category, Training-Dataset, ...
    conv_depth: list[int] | None = None  # default: 0, 1, 2, ...
    conv_depth_norm: list[float] | None = None  # default: conv_depth / max
    layer_depth: list[int] | None = None  # default: 2 * conv_depth + 1


def write_dataset(
    path: Path, models: Iterable[Model], key: str = "filters", chunk_rows: int = 1 << 16
) -> dict[str, int]:
    """Write `models` as a dataset.h5 (`key` "filters": (N, 3, 3) float64; "filter": (N, 9) float32); returns
    the number of models, layers and filters."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    n = 0
    with h5py.File(path, "w") as h5:
        shape, dtype = ((3, 3), np.float64) if key == "filters" else ((9,), np.float32)
        data = h5.create_dataset(
            key, (0, *shape), dtype, maxshape=(None, *shape), chunks=(chunk_rows, *shape)
        )
        for model_id, model in enumerate(models):
            rows.extend(_meta_rows(model_id, model, n))
            for weights in model.layers:
                flat = np.asarray(weights, dtype).reshape(-1, *shape)
                data.resize(n + len(flat), axis=0)
                data[n : n + len(flat)] = flat
                n += len(flat)
    _write_meta(path, rows)
    return {"models": len({r["model_id"] for r in rows}), "layers": len(rows), "filters": n}


def _meta_rows(model_id: int, model: Model, offset: int) -> Iterator[dict[str, Any]]:
    """The `meta` rows of one model whose filters start at row `offset`."""
    depth = model.conv_depth or list(range(len(model.layers)))
    top = max(depth, default=0) or 1
    norm = model.conv_depth_norm or [d / top for d in depth]
    layer_depth = model.layer_depth or [2 * d + 1 for d in depth]
    columns = {"model": model.name, **CURATED, "Name": model.name, **model.columns}
    for layer_id, weights in enumerate(model.layers):
        out_channels, in_channels = weights.shape[:2]
        n = out_channels * in_channels
        yield {
            "model_id": model_id,
            "conv_depth": depth[layer_id],
            "conv_depth_norm": norm[layer_id],
            "layer_id": layer_id,
            "layer_depth": layer_depth[layer_id],
            "in_channels": in_channels,
            "out_channels": out_channels,
            "filter_ids": f"{offset}:{offset + n - 1}",  # inclusive end, as published
            **columns,
        }
        offset += n


def _write_meta(path: Path, rows: list[dict[str, Any]]) -> None:
    """`meta` as pandas writes it: the MultiIndex and object columns, appended to the file."""
    import pandas as pd

    frame = pd.DataFrame(rows).set_index(["model_id", "conv_depth", "conv_depth_norm", "layer_id"])
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(object)
    with warnings.catch_warnings():  # "PyTables will pickle object types": as in the published file
        warnings.simplefilter("ignore")
        frame.to_hdf(path, key="meta", mode="a")


def random_models(n_filters: int, seed: int = 0, max_layer: int = 256) -> Iterator[Model]:
    """Models of ragged random layers until `n_filters` filters, float32-exact float64 values (the lake stores
    float32); domains and tasks cycle through a few labels."""
    rng = np.random.default_rng(seed)
    domains, tasks = ("natural", "medical mri", "faces"), ("Classification", "Semantic Segmentation")
    made, i = 0, 0
    while made < n_filters:
        layers = []
        in_channels = int(rng.choice([1, 3]))
        for _ in range(int(rng.integers(3, 12))):
            out_channels = int(rng.integers(8, max_layer + 1))
            weights = rng.standard_normal((out_channels, in_channels, 3, 3), np.float32)
            layers.append(weights.astype(np.float64))
            made += out_channels * in_channels
            in_channels = out_channels
            if made >= n_filters:
                break
        columns = {"Visual Category": domains[i % 3], "Task": tasks[i % 2], "Training-Dataset": "synthetic"}
        yield Model(f"synthetic_{i:04d}", layers, columns)
        i += 1
