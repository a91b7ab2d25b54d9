"""Read CNN Filter DB's published `dataset.h5` (methods.md section 7): its model list, and its filters in blocks.

The file holds one filters dataset and one pandas frame:
- `filters` `(N, 3, 3)` float64 (v1.0.0 as published), or `/filter` `(N, 9)` float32 (as its README says): both
  are accepted; row i is filter id i;
- `meta`, written by `DataFrame.to_hdf(..., "meta")` (PyTables), one row per 3x3 conv layer, with the MultiIndex
  `[model_id, conv_depth, conv_depth_norm, layer_id]`, the per-layer columns `layer_depth`, `in_channels` (per
  group), `out_channels` and `filter_ids` (`"start:end"`, end **inclusive**), and per-model columns repeated on
  each of its rows (`model`, the curated `Name`, `Task`, `Visual Category` (`Datatype` in v0.1.0), ...).

`open_dataset` reads and checks `meta` (small: ~21k rows) and keeps the filters dataset open; nothing reads the
filters before `blocks(model)` streams one model's filter rows in index order, at most `CHUNK_FILTERS` at a
time, never a whole model. A file that cannot be read raises CheckpointError; a model whose ranges do not
match the filters (overlap, beyond N, count != out x in) carries its `problem` and fails alone.

pandas stores the object columns of `meta` as pickles (PyTables' ObjectAtom). They are unpickled by a
restricted unpickler that rebuilds numpy arrays of plain values and refuses every other global, so no code from
the file ever runs (`restricted_pickles`).
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

from filterlake.errors import CheckpointError

FILTER_KEYS = ("filters", "filter")  # v1.0.0 as published, the README's spelling
META_KEY = "meta"
INDEX_LEVELS = ("model_id", "conv_depth", "conv_depth_norm", "layer_id")
LAYER_COLUMNS = ("layer_depth", "in_channels", "out_channels", "filter_ids")
REQUIRED_COLUMNS = ("in_channels", "out_channels", "filter_ids")
DOMAIN_COLUMNS = ("Visual Category", "Datatype")  # v1.0.0, v0.1.0
VERSIONS = {"Visual Category": "v1.0.0", "Datatype": "v0.1.0"}
CHUNK_FILTERS = 1 << 20  # filter rows read at a time (72 MB of float64)
UNREADABLE = (
    OSError,
    KeyError,
    ValueError,
    TypeError,
    RuntimeError,  # PyTables' HDF5ExtError
    AttributeError,
    IndexError,
    EOFError,
    pickle.UnpicklingError,
)


@dataclass(frozen=True)
class DatasetLayer:
    """One 3x3 layer of a dataset model: its `meta` row, with the filter rows `[start, stop)` it names."""

    layer_id: int
    conv_depth: int
    conv_depth_norm: float
    layer_depth: int | None
    in_channels: int
    out_channels: int
    start: int
    stop: int

    @property
    def n_filters(self) -> int:
        return self.stop - self.start


@dataclass
class DatasetModel:
    """One model of the dataset: its id there, its per-model columns, its layers in filter order."""

    model_id: int
    name: str  # the `model` column (unique in the dataset), else `Name`
    columns: dict[str, Any]  # per-model columns, missing values dropped
    layers: list[DatasetLayer]
    problem: str | None = None  # why it cannot be imported (its ranges do not match the filters)

    @property
    def n_filters(self) -> int:
        return sum(layer.n_filters for layer in self.layers)


@dataclass
class Dataset:
    """An open dataset.h5: its version, filters dataset (key, N, dtype) and models; close() when done."""

    path: Path
    version: str
    key: str
    n: int
    dtype: np.dtype
    models: list[DatasetModel]
    _h5: h5py.File | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def blocks(
        self, model: DatasetModel, chunk: int = CHUNK_FILTERS
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """(layer position, first filter within the layer, (n, 9) filters as stored) of one model, in index
        order; adjacent layers are read together, at most `chunk` rows at a time. Raises CheckpointError when
        the file cannot be read there (truncated)."""
        filters = self._h5[self.key]
        layers, i = model.layers, 0
        while i < len(layers):
            j = i  # layers i..j are one contiguous run of filter rows
            while j + 1 < len(layers) and layers[j + 1].start == layers[j].stop:
                j += 1
            k = i
            for at in range(layers[i].start, layers[j].stop, chunk):
                end = min(at + chunk, layers[j].stop)
                try:
                    block = np.asarray(filters[at:end]).reshape(-1, 9)
                except UNREADABLE as exc:
                    raise CheckpointError(
                        self.path, f"cannot read filters {at}:{end}: {_first_line(exc)}"
                    ) from exc
                while k <= j and layers[k].start < end:
                    lo, hi = max(layers[k].start, at), min(layers[k].stop, end)
                    yield k, lo - layers[k].start, block[lo - at : hi - at]
                    if layers[k].stop > end:
                        break
                    k += 1
            i = j + 1


def _first_line(exc: BaseException) -> str:
    """The reason of an error in one line; of an HDF5 back trace, its innermost message (e.g. "truncated file:
    eof = 3000, ...")."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.startswith('File "')]
    if frames and frames[-1] + 1 < len(lines):
        return lines[frames[-1] + 1][:200]
    return (lines[0] if lines else type(exc).__name__)[:200]


def open_dataset(path: Path) -> Dataset:
    """Open a dataset.h5 and read its model list; CheckpointError naming the file when it cannot be read (not
    HDF5, truncated, no filters dataset or `meta`, missing index levels or columns)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "is a directory, not a dataset.h5" if path.is_dir() else "no such file")
    meta = _read_meta(path)
    try:
        h5 = h5py.File(path, "r")
    except UNREADABLE as exc:
        raise CheckpointError(path, f"not a readable HDF5 file ({_first_line(exc)})") from exc
    try:
        key = next((k for k in FILTER_KEYS if k in h5), None)
        if key is None:
            raise CheckpointError(path, f"no filters dataset ('{FILTER_KEYS[0]}' or '/{FILTER_KEYS[1]}')")
        filters = h5[key]
        if not isinstance(filters, h5py.Dataset) or filters.shape[1:] not in ((3, 3), (9,)):
            shape = getattr(filters, "shape", "a group")
            raise CheckpointError(path, f"'{key}' must be (N, 3, 3) or (N, 9) filters, not {shape}")
        if filters.dtype.kind != "f":
            raise CheckpointError(path, f"'{key}' holds {filters.dtype}, not floating-point filters")
        models = _models(path, meta, filters.shape[0])
        version = next((VERSIONS[c] for c in DOMAIN_COLUMNS if c in meta.columns), "unknown")
        version = str(h5.attrs.get("version", version))
        return Dataset(path, version, key, filters.shape[0], filters.dtype, models, h5)
    except BaseException:
        h5.close()
        raise


# The globals a pickled object column of plain values needs: numpy's array reconstruction, nothing else.
SAFE_GLOBALS = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | {("numpy", "ndarray"), ("numpy", "dtype")}
_PICKLE_LOCK = threading.Lock()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays of str / int / float / None; any other global is refused, never imported."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a pickled object column names {module}.{name}: refused")


def _restricted_loads(data: bytes) -> Any:
    return _RestrictedUnpickler(io.BytesIO(data)).load()


@contextlib.contextmanager
def restricted_pickles() -> Iterator[None]:
    """While reading `meta`: PyTables' ObjectAtom unpickles through the restricted unpickler (it calls the
    `pickle.loads` of its own module; a lock keeps two readers from swapping it at once)."""
    import tables.atom

    with _PICKLE_LOCK:
        original = tables.atom.pickle
        tables.atom.pickle = types.SimpleNamespace(
            loads=_restricted_loads, dumps=pickle.dumps, HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL
        )
        try:
            yield
        finally:
            tables.atom.pickle = original


def _read_meta(path: Path):
    """The `meta` frame, with its index levels and the per-layer columns checked."""
    import pandas as pd

    try:
        with restricted_pickles():
            meta = pd.read_hdf(path, META_KEY)
    except UNREADABLE as exc:
        if isinstance(exc, KeyError):
            raise CheckpointError(path, f"no '{META_KEY}' frame in the file") from exc
        raise CheckpointError(path, f"cannot read '{META_KEY}' ({_first_line(exc)})") from exc
    if not isinstance(meta, pd.DataFrame):
        raise CheckpointError(path, f"'{META_KEY}' is not a DataFrame")
    missing = [level for level in INDEX_LEVELS if level not in (meta.index.names or [])]
    if missing:
        raise CheckpointError(
            path, f"'{META_KEY}' index lacks {', '.join(missing)} (expected [{', '.join(INDEX_LEVELS)}])"
        )
    if absent := [c for c in REQUIRED_COLUMNS if c not in meta.columns]:
        raise CheckpointError(
            path, f"'{META_KEY}' lacks the column{'s' * (len(absent) > 1)} {', '.join(absent)}"
        )
    return meta.reset_index()


def _models(path: Path, meta, n: int) -> list[DatasetModel]:
    """The models of `meta` in filter order, each layer's range parsed and checked against N and the others."""
    per_model = [c for c in meta.columns if c not in (*INDEX_LEVELS, *LAYER_COLUMNS)]
    models = []
    for model_id, rows in meta.groupby("model_id", sort=True):
        records = rows.to_dict("records")
        columns = {k: v for k, v in ((k, _plain(records[0][k])) for k in per_model) if v is not None}
        name = str(columns.get("model") or columns.get("Name") or f"model {model_id}")
        model = DatasetModel(int(model_id), name, columns, [])
        try:
            model.layers = sorted((_layer(r, n) for r in records), key=lambda layer: layer.start)
        except ValueError as exc:
            model.problem = f"{path}: model {model_id} ({name}): {exc}"
        models.append(model)
    _check_overlaps(path, models)
    return sorted(models, key=lambda m: (m.layers[0].start if m.layers else math.inf, m.model_id))


def _layer(row: dict[str, Any], n: int) -> DatasetLayer:
    """A `meta` row as a DatasetLayer; ValueError saying what does not match the filters."""
    text = str(row["filter_ids"])
    try:
        first, last = (int(part) for part in text.split(":"))
        out_channels, in_channels = int(row["out_channels"]), int(row["in_channels"])
    except (ValueError, TypeError):
        raise ValueError(f"layer {row['layer_id']}: filter_ids {text!r} is not 'start:end'") from None
    where = f"layer {row['layer_id']}: filter_ids {text}"
    if first < 0 or last < first:
        raise ValueError(f"{where} is not a range (start:end, end inclusive)")
    if last >= n:
        raise ValueError(f"{where} reaches beyond the {n:,} filters of the file")
    if last - first + 1 != out_channels * in_channels:
        raise ValueError(
            f"{where} holds {last - first + 1} filters, out_channels x in_channels = "
            f"{out_channels} x {in_channels} = {out_channels * in_channels}"
        )
    depth = _plain(row.get("layer_depth"))
    return DatasetLayer(
        int(row["layer_id"]),
        int(row["conv_depth"]),
        float(row["conv_depth_norm"]),
        None if depth is None else int(depth),
        in_channels,
        out_channels,
        first,
        last + 1,
    )


def _check_overlaps(path: Path, models: list[DatasetModel]) -> None:
    """Mark the models whose filter ranges overlap another layer's (both sides fail: which one is right?)."""
    ranges = sorted((layer.start, layer.stop, m) for m in models if not m.problem for layer in m.layers)
    reach: tuple[int, DatasetModel] | None = None  # the furthest stop so far, and whose it is
    for start, stop, model in ranges:
        if reach is not None and start < reach[0]:
            pair = (model,) if reach[1] is model else (model, reach[1])
            for m in pair:
                o = pair[-1] if m is pair[0] else pair[0]
                what = "another of its layers" if o is m else f"those of model {o.model_id} ({o.name})"
                m.problem = (
                    m.problem
                    or f"{path}: model {m.model_id} ({m.name}): filter rows from {start} overlap {what}"
                )
        if reach is None or stop > reach[0]:
            reach = (stop, model)


def _plain(value: Any) -> Any:
    """A numpy scalar as a plain Python value; None for a missing one (NaN, None, pandas NA/NaT)."""
    import pandas as pd

    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT or isinstance(value, float) and math.isnan(value):
        return None
    return value
