"""The load stage of CNN Filter DB's dataset.h5: one lake model per dataset model, committed one at a time.

`import_cnn_filter_db(path, lake)` reads the dataset's model list (sources/cnn_filter_db.py), then, in filter
order, streams each model's filters block by block into a `ModelWriter` as float32 (the lake's dtype; the
values the cast changed are counted), with each layer's `LayerDigest`, and commits the model. Nothing but the
`meta` frame and one block is ever in memory.

- **Ids.** `model_id` is the sha256 of `"cnn-filter-db <version> model_id=<id> model=<model>"` (the dataset's
  version, e.g. v1.0.0, its integer model id and its unique `model` name): there are no checkpoint bytes to
  hash, and the same dataset model always gets the same id. `source_uri` is `cnn-filter-db:<file name>#<model>`,
  `format` "cnn-filter-db", `load_method` "h5py"; `weights_sha256` is computed as for checkpoints, so a model
  imported here and the same weights ingested from a checkpoint agree.
- **Metadata.** `Visual Category` (`Datatype` in v0.1.0) -> `domain`, `Task` -> `task` (any Task containing
  "Segmentation" becomes "Segmentation", as the papers clean it; the published label stays in `extra` as
  "Task (published)"), `Training-Dataset` -> `training_dataset`; every other per-model column (Name, Paper,
  Framework, Precision, Conv Weight Initializer, Pretraining-Dataset, Optimizer, ONNX op counts, ...) goes to
  `extra`, with `cnn_filter_db_version` and `cnn_filter_db_model_id`; the `"(k, k) filters"` counts become
  `kernel_shapes`. Layers: `conv_depth`, `conv_depth_norm` from the index, `layer_depth` and channels from the
  columns, `layer_name` "layer_<layer_id>", layout OIHW, groups and dilation unrecorded.
- **Resumable and idempotent.** Commits are atomic per model, so a killed import resumes where it stopped: a
  model whose `models` row exists is skipped without reading its filters.
- **Meta-only.** With `meta_only`, each model gets its `models` and `layers` rows and no filters: `extra` holds
  `vocab.META_ONLY` = true and `models.message` says so (`n_filters_3x3` counts the dataset's filters). A later
  full import replaces such a model whole.
- **Bad models.** A model whose ranges do not match the filters, or whose filters cannot be read (a truncated
  file), fails alone with one line; the lake is unchanged for it and the other models go on.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import filterlake
from filterlake.errors import CheckpointError, LakeError, SourceError, describe_os_error, is_lake_os_error
from filterlake.ingest.pipeline import Outcome, prepare_lake
from filterlake.ingest.records import finite_stats
from filterlake.lake.layout import is_committed
from filterlake.lake.location import ObjectLake
from filterlake.lake.rows import model_row
from filterlake.lake.writer import open_writer, remove_model
from filterlake.numeric.weights_digest import LayerDigest, weights_sha256
from filterlake.sources.cnn_filter_db import DOMAIN_COLUMNS, Dataset, DatasetModel, open_dataset
from filterlake.sources.discover import Source, printable
from filterlake.sources.fetch import fetch
from filterlake.vocab import (
    CNN_FILTER_DB,
    DEPTH_GRAPH,
    FAILED,
    INGESTED,
    META_ONLY,
    META_ONLY_MESSAGE,
    ORIENTATION_KNOWN,
    PRESENT,
    SKIP_REASONS,
    STATUS_WORDS,
    is_meta_only,
)

KERNEL_COLUMN = re.compile(r"^\((\d+), ?(\d+)\) filters$")  # the dataset's filter count per kernel shape
MAPPED = {"Task": "task", "Training-Dataset": "training_dataset", "Network": "architecture"}
SEGMENTATION = "Segmentation"


@dataclass
class ImportResult:
    """What an import did: one Outcome per dataset model (in filter order) and the float32 cast's changes."""

    path: Path
    version: str
    n_filters: int  # rows of the dataset's filters
    meta_only: bool
    outcomes: list[Outcome] = field(default_factory=list)
    cast_changed: int = 0  # values v with float64(float32(v)) != v, over the filters read
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    def summary_line(self) -> str:
        """One line: models by status, what is new, the cast count, the time."""
        counts = {s: sum(o.status == s for o in self.outcomes) for s in (INGESTED, PRESENT, FAILED)}
        new = [o for o in self.outcomes if o.status == INGESTED]
        what = "filters listed (metadata only)" if self.meta_only else "filters"
        return (
            f"{self.path.name} ({self.version}, {self.n_filters:,} filters): {len(self.outcomes)} models: "
            + ", ".join(f"{n} {STATUS_WORDS[s]}" for s, n in counts.items())
            + f"; new: {sum(o.n_layers for o in new)} layers, {sum(o.n_filters for o in new):,} {what}; "
            f"{self.cast_changed:,} values changed by the float32 cast; {self.seconds:.1f} s"
        )


def lake_model_id(version: str, model: DatasetModel) -> str:
    """The lake's id of a dataset model: sha256 of its documented identity string (module docstring)."""
    return hashlib.sha256(
        f"{CNN_FILTER_DB} {version} model_id={model.model_id} model={model.name}".encode()
    ).hexdigest()


def import_cnn_filter_db(
    path: Path,
    lake: Path | ObjectLake,
    meta_only: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_filters: Callable[[int], None] | None = None,
    on_result: Callable[[Outcome], None] | None = None,
) -> ImportResult:
    """Import every model of a dataset.h5 into the lake (module docstring). `on_start(models, filters to read)`,
    `on_filters(n)` after each block and `on_result(outcome)` after each model report progress. Raises
    CheckpointError when the file itself cannot be read, LakeError when the lake cannot be written."""
    start = time.perf_counter()
    prepare_lake(lake)
    with open_dataset(path) as dataset:
        result = ImportResult(Path(path), dataset.version, dataset.n, meta_only)
        plan = [(model, lake_model_id(dataset.version, model)) for model in dataset.models]
        todo = [(m, i) for m, i in plan if not m.problem and _wanted(lake, i, meta_only)]
        if on_start:
            on_start(len(plan), 0 if meta_only else sum(m.n_filters for m, _ in todo))
        wanted = {i for _, i in todo}
        for model, model_id in plan:
            began, outcome = time.perf_counter(), _outcome(dataset, model, model_id)
            if model.problem:
                outcome.status, outcome.message = FAILED, model.problem
            elif model_id in wanted:
                try:
                    result.cast_changed += _load(dataset, model, model_id, lake, meta_only, on_filters)
                    outcome.status = INGESTED
                except CheckpointError as exc:
                    outcome.status, outcome.message = FAILED, f"{exc}: model {model.model_id} ({model.name})"
            outcome.seconds = time.perf_counter() - began
            result.outcomes.append(outcome)
            if on_result:
                on_result(outcome)
    result.seconds = time.perf_counter() - start
    return result


def _wanted(lake: Path | ObjectLake, model_id: str, meta_only: bool) -> bool:
    """Whether to write the model: not in the lake yet, or there as metadata only and now imported whole."""
    row = model_row(lake, model_id, ["extra"])
    if row is None:
        return True
    return not meta_only and is_meta_only(row["extra"])


def _outcome(dataset: Dataset, model: DatasetModel, model_id: str) -> Outcome:
    return Outcome(
        source=_source_uri(dataset, model),
        status=PRESENT,
        model_id=model_id,
        name=model.name,
        domain=_domain(model),
        n_layers=len(model.layers),
        n_filters=model.n_filters,
    )


def _source_uri(dataset: Dataset, model: DatasetModel) -> str:
    return f"{CNN_FILTER_DB}:{dataset.path.name}#{model.name}"


def _domain(model: DatasetModel) -> str | None:
    return next((str(model.columns[c]) for c in DOMAIN_COLUMNS if c in model.columns), None)


class _Layer:
    """What one layer's row needs from its filters, gathered block by block."""

    def __init__(self, out_channels: int, in_channels: int):
        self.digest = LayerDigest(out_channels, in_channels)
        self.n_nonfinite = 0
        self.max_abs = 0.0

    def update(self, filters: np.ndarray) -> None:
        bad, peak = finite_stats(filters)
        self.n_nonfinite += bad
        self.max_abs = max(self.max_abs, peak)
        self.digest.update(filters)


def _load(
    dataset: Dataset,
    model: DatasetModel,
    model_id: str,
    lake: Path | ObjectLake,
    meta_only: bool,
    on_filters: Callable[[int], None] | None,
) -> int:
    """Stream, write and commit one model (replacing a meta-only one); the values the cast changed."""
    writer = open_writer(lake, model_id)
    layers = [_Layer(layer.out_channels, layer.in_channels) for layer in model.layers]
    changed = 0
    try:
        if not meta_only:
            for k, first, block in dataset.blocks(model):
                filters = block.astype(np.float32)
                layers[k].update(filters)
                if block.dtype != np.float32:
                    changed += int(np.count_nonzero(filters != block))
                    changed -= int(np.count_nonzero(np.isnan(block))) if layers[k].n_nonfinite else 0
                writer.add_layer(k, filters, first)
                if on_filters:
                    on_filters(len(block))
        layer_rows = _layer_rows(dataset, model, model_id, layers, meta_only)
        row = _model_row(dataset, model, model_id, layers, meta_only, changed)
        if not meta_only and is_committed(lake, model_id):
            remove_model(lake, model_id)  # its meta-only row (a full one is never planned): replaced whole
        writer.commit(layer_rows, row)
    except OSError as exc:
        writer.discard()
        if is_lake_os_error(exc):
            raise LakeError(f"{lake}: {describe_os_error(exc)}") from exc
        raise CheckpointError(dataset.path, describe_os_error(exc)) from exc
    except BaseException:  # a bad block, Ctrl-C, SIGTERM: nothing staged is kept
        writer.discard()
        raise
    return changed


def _layer_rows(
    dataset: Dataset, model: DatasetModel, model_id: str, layers: list[_Layer], meta_only: bool
) -> list[dict[str, Any]]:
    """The `layers` rows of a model (max_abs NaN when its filters were not imported)."""
    rows, offset = [], 0
    for idx, (layer, seen) in enumerate(zip(model.layers, layers)):
        rows.append({
            "model_id": model_id,
            "layer_idx": idx,
            "layer_name": f"layer_{layer.layer_id}",
            "in_channels": layer.in_channels,
            "out_channels": layer.out_channels,
            "groups": None,
            "dilation": None,
            "n_filters": layer.n_filters,
            "filter_offset": offset,
            "conv_depth": layer.conv_depth,
            "conv_depth_norm": layer.conv_depth_norm,
            "layer_depth": layer.layer_depth,
            "dtype": str(dataset.dtype),
            "layout": "OIHW",
            "orientation": "conv",
            "n_nonfinite": seen.n_nonfinite,
            "max_abs": float("nan") if meta_only else seen.max_abs,
            "trainable": None,
        })  # fmt: skip
        offset += layer.n_filters
    return rows


def _metadata(
    dataset: Dataset, model: DatasetModel, meta_only: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(lake fields, extra) of a model's per-model columns; the kernel-shape counts are left out of both."""
    fields: dict[str, Any] = {"domain": _domain(model)}
    extra: dict[str, Any] = {
        "cnn_filter_db_version": dataset.version,
        "cnn_filter_db_model_id": model.model_id,
    }
    for column, value in model.columns.items():
        if column in MAPPED:
            fields[MAPPED[column]] = str(value)
        elif column not in DOMAIN_COLUMNS and not KERNEL_COLUMN.match(column):
            extra[column] = value
    task = fields.get("task")
    if task and SEGMENTATION in task and task != SEGMENTATION:
        extra["Task (published)"], fields["task"] = task, SEGMENTATION
    if meta_only:
        extra[META_ONLY] = True
    return fields, extra


def _model_row(
    dataset: Dataset, model: DatasetModel, model_id: str, layers: list[_Layer], meta_only: bool, changed: int
) -> dict[str, Any]:
    """The `models` row of a dataset model (weights_sha256 None without its filters)."""
    fields, extra = _metadata(dataset, model, meta_only)
    kernels = {
        f"{m[1]}x{m[2]}": int(v) for c, v in model.columns.items() if (m := KERNEL_COLUMN.match(c))
    } or {"3x3": model.n_filters}
    n_nonfinite = sum(layer.n_nonfinite for layer in layers)
    notes = [META_ONLY_MESSAGE] if meta_only else []
    if n_nonfinite:
        notes.append(f"{n_nonfinite} NaN/Inf weight values kept and flagged")
    if changed:
        notes.append(f"{changed} values changed by the float32 cast")
    ops = {
        op: int(model.columns[op])
        for op in ("Conv", "ConvTranspose")
        if isinstance(model.columns.get(op), int | float)
    }
    return {
        "model_id": model_id,
        "name": model.name,
        "architecture": fields.get("architecture"),
        "task": fields.get("task"),
        "domain": fields.get("domain"),
        "modality": None,
        "training_dataset": fields.get("training_dataset"),
        "license": None,
        "source_uri": _source_uri(dataset, model),
        "format": CNN_FILTER_DB,
        "load_method": "h5py",
        "file_bytes": model.n_filters * 9 * dataset.dtype.itemsize,  # its filters' bytes in the dataset
        "n_files": 1,
        "n_conv_layers": sum(ops.values()) or len(model.layers),
        "n_layers_3x3": len(model.layers),
        "n_filters_3x3": model.n_filters,
        **{f"skipped_{reason}": 0 for reason in SKIP_REASONS},
        "skipped_transposed": ops.get("ConvTranspose", 0),
        "kernel_shapes": json.dumps(dict(sorted(kernels.items())), sort_keys=True),
        "n_nonfinite": n_nonfinite,
        "orientation": ORIENTATION_KNOWN,
        "depth_source": DEPTH_GRAPH,
        "message": "; ".join(notes) or None,
        "extra": json.dumps(extra, sort_keys=True, default=str),
        "ingested_at": datetime.now(UTC),
        "filterlake_version": filterlake.__version__,
        "weights_sha256": None if meta_only else weights_sha256(layer.digest.hexdigest() for layer in layers),
    }


def import_source(
    source: Source, lake: Path | ObjectLake, on_result: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """A catalog's `cnn_filter_db` entry (with its `meta_only`): the outcome of each model of the dataset, or
    one failed outcome naming the file when it cannot be read (or the entry is invalid)."""
    try:
        if source.problem:
            raise SourceError(source.problem)
        meta_only = bool(source.spec.get("meta_only"))
        return import_cnn_filter_db(fetch(source), lake, meta_only, on_result=on_result).outcomes
    except (CheckpointError, SourceError) as exc:
        outcome = Outcome(source=printable(source.uri), status=FAILED, message=printable(str(exc)))
        if on_result:
            on_result(outcome)
        return [outcome]
