"""Keras checkpoints without TensorFlow or Keras: Keras 2 legacy HDF5 (.h5/.hdf5), Keras 3 .keras zips and
save_weights files (model.weights.h5, or a sharded *.weights.json manifest with its shards, keras_shards.py).

Only JSON and HDF5 datasets are read; nothing from a file is executed (Lambda layers and custom objects are
names in the config, never code). Layer classes come from the config (keras_config.py); weights are found through
the file's own names (Keras 2 `weight_names`) or through Keras 3's saving rule, never guessed, and read through
keras_h5.py. Kernels are `[*kernel, in/groups, out]`, reported channel-last; `load()` returns canonical
(O, I/groups, *kernel) float32.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from filterlake.errors import CheckpointError
from filterlake.readers.base import CHANNEL_LAST, Checkpoint, ConvTensor
from filterlake.readers.detect import check_zip_expansion, describe, guarded
from filterlake.readers.keras_config import (
    CONV,
    MAX_CONFIG_BYTES,
    SEPARABLE,
    TRANSPOSED,
    _model_layers,
    _parse_config,
    is_weighted_conv,
)
from filterlake.readers.keras_h5 import _H5, _h5py, _load
from filterlake.readers.keras_shards import (
    Weight,
    keras3_vars,
    open_folder_shards,
    open_zip_shards,
    vars_base,
)
from filterlake.readers.safetensors import _natural


def _tensor(
    weight: Weight,
    dset: Any,
    name: str,
    how: str,
    kind: str,
    groups: int | None,
    dilation: tuple[int, ...] | None,
    level: int | None,
    trainable: bool | None = None,
) -> ConvTensor:
    """A ConvTensor over one checked dataset, its shape permuted to the channel-last layout of its rank."""
    h5, where = weight
    stored = tuple(int(d) for d in dset.shape)
    rank = len(stored)
    if how == "depthwise":
        reported = (stored[-2] * stored[-1], *stored[:-2], 1)
    else:
        reported = (stored[-1], *stored[:-2], stored[-2])
    load = guarded(h5.path, f"tensor {name}", lambda: _load(h5.path, h5.member, where, stored, how))
    return ConvTensor(
        name,
        reported,
        dset.dtype.name,
        CHANNEL_LAST[rank],
        load,
        kind,
        groups,
        dilation,
        level,  # type: ignore[arg-type]
        trainable,
    )


def _ints(value: Any, rank: int) -> tuple[int, ...] | None:
    if isinstance(value, int):
        return (value,) * rank
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None


def _layer_tensors(
    path: Path, name: str, entry: dict[str, Any], level: int | None, weights: list[Weight], trainable: bool
) -> list[ConvTensor]:
    """ConvTensors of one conv-class layer from its weights (kernel first; separable: depthwise, pointwise)."""
    cls, config = entry["class_name"], entry.get("config") or {}
    if not weights:
        raise CheckpointError(path, f"layer {name} ({cls}): weights missing")
    h5 = weights[0][0]
    kernel = h5.dataset(weights[0][1])
    rank = len(kernel.shape)
    if rank not in CHANNEL_LAST or 0 in kernel.shape:
        raise CheckpointError(
            h5.path, f"layer {name} ({cls}): kernel shape {list(kernel.shape)} is not a conv kernel"
        )
    dilation = _ints(config.get("dilation_rate"), rank - 2)
    if cls in TRANSPOSED:
        return [_tensor(weights[0], kernel, name, "transposed", "transposed", 1, dilation, level, trainable)]
    if cls in CONV:
        groups = config.get("groups", 1)
        groups = groups if isinstance(groups, int) and groups >= 1 else 1
        return [_tensor(weights[0], kernel, name, "conv", "conv", groups, dilation, level, trainable)]
    groups = int(kernel.shape[-2])
    out = [_tensor(weights[0], kernel, name, "depthwise", "conv", groups, dilation, level, trainable)]
    if cls in SEPARABLE:
        if len(weights) < 2:
            raise CheckpointError(h5.path, f"layer {name} ({cls}): pointwise kernel missing")
        point_h5, point_where = weights[1]
        point = point_h5.dataset(point_where)
        if len(point.shape) != rank:
            raise CheckpointError(
                point_h5.path, f"layer {name} ({cls}): pointwise kernel shape {list(point.shape)}"
            )
        nxt = None if level is None else level + 1
        out.append(_tensor(weights[1], point, f"{name}.pointwise", "conv", "conv", 1, None, nxt, trainable))
    return out


def _checkpoint(
    path: Path, fmt: str, tensors: list[ConvTensor], notes: list[str], files: list[Path] | None = None
) -> Checkpoint:
    graph = bool(tensors) and all(t.level is not None for t in tensors if len(t.shape) == 4)
    depth = "graph" if graph else "definition_order"
    return Checkpoint(path, fmt, files or [path], "h5py", tensors, depth, notes)


NO_CONFIG = "save_weights file without model_config: layer classes unknown, orientation unknown"


def _scan(h5: _H5, root: str, skip: tuple[str, ...] = ()) -> list[ConvTensor]:
    """Every 4-D dataset below the group `root` outside top-level `skip` groups, by shape (kind unknown: no
    config), in natural name order (h5py lists names alphabetically: conv2d_10 before conv2d_2)."""
    h5py = _h5py()
    node = h5.file.get(root)
    if not isinstance(node, h5py.Group):
        return []
    found: list[str] = []

    def collect(name: str, obj: Any) -> None:
        where = f"{node.name.rstrip('/')}/{name}".lstrip("/")
        if isinstance(obj, h5py.Dataset) and len(obj.shape) == 4 and where.split("/")[0] not in skip:
            found.append(where)

    node.visititems(collect)
    tensors = []
    for where in sorted(found, key=_natural):
        name = re.sub(r"(:\d+)$", "", where.removeprefix("model_weights/"))
        tensors.append(_tensor((h5, where), h5.dataset(where), name, "conv", "unknown", None, None, None))
    return tensors


# ------------------------------------------------------------------------------------------ Keras 2 legacy h5


def _strings(path: Path, value: Any, what: str) -> list[str]:
    try:
        items = [value] if isinstance(value, (str, bytes)) else list(value)
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in items]
    except (TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"{what} is not a list of names") from exc


def _keras2_weights(h5: _H5, group: str, inner: str | None) -> list[Weight]:
    """Weight paths of a top-level layer group (`inner` None) or of one layer inside a nested-model group."""
    h5py = _h5py()
    node = h5.file.get(group)
    if not isinstance(node, h5py.Group):
        return []
    names = _strings(h5.path, node.attrs.get("weight_names", []), f"{group} weight_names")
    if inner is not None:
        pattern = re.compile(rf"^{re.escape(inner)}(_\d+)?$")
        exact = [n for n in names if inner in n.split("/")[:-1]]
        names = exact or [n for n in names if any(pattern.match(p) for p in n.split("/")[:-1])]
    return [(h5, f"{group}/{n}") for n in names]


def _keras_version(h5: _H5) -> str:
    value = h5.file.attrs.get("keras_version", b"")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_keras_h5(path: Path) -> Checkpoint:
    """Open a Keras 2 legacy HDF5 file (full model or save_weights output); optimizer_weights are skipped."""
    path = Path(path)
    with _H5(path) as h5:
        h5.refuse_external_links()
        version = _keras_version(h5)
        if version.startswith("1."):
            raise CheckpointError(
                path, f"Keras {version} file: kernels may be channel-first (Theano); not supported"
            )
        raw = h5.file.attrs.get("model_config")
        if raw is None:  # Keras 2 save_weights, or Keras 3's (model.weights.h5: layers/, vars/, optimizer/)
            tensors = _scan(h5, "/", ("optimizer_weights", "optimizer"))
            return _checkpoint(path, "keras-h5", tensors, [NO_CONFIG])
        model = _parse_config(path, raw, "model_config")
        root = "model_weights" if "model_weights" in h5.file else ""
        tensors = []
        for entry, name, level, trainable, _stored in _model_layers(path, model):
            if not is_weighted_conv(entry["class_name"]):
                continue
            parts = name.split("/")
            group = "/".join([root, parts[0]]).strip("/")
            weights = _keras2_weights(h5, group, parts[-1] if len(parts) > 1 else None)
            tensors.extend(_layer_tensors(path, name, entry, level, weights, trainable))
        return _checkpoint(path, "keras-h5", tensors, [])


# ------------------------------------------------------------------------------------------------ Keras 3 zip

WEIGHTS_MEMBER = "model.weights.h5"


def _zip_config(path: Path) -> tuple[dict[str, Any], str | None]:
    """The archive's model config and its sharded-weights manifest member (None: weights in WEIGHTS_MEMBER)."""
    check_zip_expansion(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            manifests = sorted(n for n in names if n.endswith(".weights.json") and "/" not in n)
            if WEIGHTS_MEMBER not in names and len(manifests) != 1:
                reason = (
                    f"several sharded-weights manifests ({', '.join(manifests)[:120]}): ambiguous"
                    if manifests
                    else f"Keras archive without {WEIGHTS_MEMBER} (members: {', '.join(sorted(names))[:120]})"
                )
                raise CheckpointError(path, reason)
            if "config.json" not in names:
                raise CheckpointError(path, "Keras archive without config.json")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise CheckpointError(path, f"config.json of {info.file_size:,} bytes: refused as absurd")
            raw = archive.read("config.json")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(path, f"truncated or corrupt zip archive ({describe(exc)})") from exc
    return _parse_config(path, raw, "config.json"), None if WEIGHTS_MEMBER in names else manifests[0]


def read_keras_zip(path: Path) -> Checkpoint:
    """Open a Keras 3 `.keras` zip: config.json and model.weights.h5, or a weights manifest and its shards (as
    Keras, model.weights.h5 first). Weights are found by replaying the config's layers; optimizer/vars skipped."""
    path = Path(path)
    model, manifest = _zip_config(path)
    layers = _model_layers(path, model)
    with ExitStack() as stack:
        if manifest is None:
            h5 = stack.enter_context(_H5(path, WEIGHTS_MEMBER))
            h5.refuse_external_links()
            lookup: Callable[[list[str]], list[Weight]] = lambda stored: keras3_vars([h5], vars_base(stored))
        else:
            lookup = open_zip_shards(stack, path, manifest).weights
        tensors = []
        for entry, name, level, trainable, stored in layers:
            if is_weighted_conv(entry["class_name"]):
                weights = lookup(stored)
                if not weights:
                    raise CheckpointError(
                        path,
                        f"layer {name} ({entry['class_name']}): weights missing at {vars_base(stored)}/vars",
                    )
                tensors.extend(_layer_tensors(path, name, entry, level, weights, trainable))
    return _checkpoint(path, "keras", tensors, [])


def read_keras_sharded(path: Path) -> Checkpoint:
    """Open a standalone sharded `*.weights.json` (Keras 3 save_weights with max_shard_size) and its shards.

    Without a config, as any save_weights file: every 4-D weight of the manifest's vars groups by shape, in the
    manifest's (saving) order, orientation unknown, optimizer skipped. `files` is the manifest, then each shard
    in order of first mention, so the model's id covers every byte."""
    path = Path(path)
    with ExitStack() as stack:
        shards = open_folder_shards(stack, path)
        tensors: dict[str, ConvTensor] = {}
        for h5, group in shards.groups():
            for tensor in _scan(h5, group, ("optimizer",)):
                tensors.setdefault(tensor.name, tensor)  # in two shards: the first listed, as Keras reads
        files = [path, *(h5.path for h5 in shards.files.values())]
    return _checkpoint(path, "keras-h5", list(tensors.values()), [NO_CONFIG], files)
