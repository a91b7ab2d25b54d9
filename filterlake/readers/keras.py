"""Keras checkpoints without TensorFlow or Keras: Keras 2 legacy HDF5 (.h5/.hdf5) and Keras 3 .keras zips.

Only JSON and HDF5 datasets are read; nothing from a file is executed (Lambda layers and custom objects are
names in the config, never code). Layer classes come from the config (keras_config.py); weights are found through
the file's own names (Keras 2 `weight_names`) or through Keras 3's saving rule, never guessed, and read through
keras_h5.py. Kernels are `[*kernel, in/groups, out]`, reported channel-last; `load()` returns canonical
(O, I/groups, *kernel) float32.
"""

from __future__ import annotations

import re
import zipfile
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


def _tensor(
    path: Path,
    member: str | None,
    name: str,
    where: str,
    dset: Any,
    how: str,
    kind: str,
    groups: int | None,
    dilation: tuple[int, ...] | None,
    level: int | None,
    trainable: bool | None = None,
) -> ConvTensor:
    """A ConvTensor over one checked dataset, its shape permuted to the channel-last layout of its rank."""
    stored = tuple(int(d) for d in dset.shape)
    rank = len(stored)
    if how == "depthwise":
        reported = (stored[-2] * stored[-1], *stored[:-2], 1)
    else:
        reported = (stored[-1], *stored[:-2], stored[-2])
    load = guarded(path, f"tensor {name}", lambda: _load(path, member, where, stored, how))
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
    h5: _H5, name: str, entry: dict[str, Any], level: int | None, weights: list[str], trainable: bool
) -> list[ConvTensor]:
    """ConvTensors of one conv-class layer from its weight paths (kernel first; separable: depthwise, pointwise)."""
    cls, config = entry["class_name"], entry.get("config") or {}
    if not weights:
        raise CheckpointError(h5.path, f"layer {name} ({cls}): weights missing")
    kernel = h5.dataset(weights[0])
    rank = len(kernel.shape)
    if rank not in CHANNEL_LAST or 0 in kernel.shape:
        raise CheckpointError(
            h5.path, f"layer {name} ({cls}): kernel shape {list(kernel.shape)} is not a conv kernel"
        )
    dilation = _ints(config.get("dilation_rate"), rank - 2)
    if cls in TRANSPOSED:
        return [
            _tensor(
                h5.path,
                h5.member,
                name,
                weights[0],
                kernel,
                "transposed",
                "transposed",
                1,
                dilation,
                level,
                trainable,
            )
        ]
    if cls in CONV:
        groups = config.get("groups", 1)
        groups = groups if isinstance(groups, int) and groups >= 1 else 1
        return [
            _tensor(
                h5.path,
                h5.member,
                name,
                weights[0],
                kernel,
                "conv",
                "conv",
                groups,
                dilation,
                level,
                trainable,
            )
        ]
    groups = int(kernel.shape[-2])
    out = [
        _tensor(
            h5.path,
            h5.member,
            name,
            weights[0],
            kernel,
            "depthwise",
            "conv",
            groups,
            dilation,
            level,
            trainable,
        )
    ]
    if cls in SEPARABLE:
        if len(weights) < 2:
            raise CheckpointError(h5.path, f"layer {name} ({cls}): pointwise kernel missing")
        point = h5.dataset(weights[1])
        if len(point.shape) != rank:
            raise CheckpointError(
                h5.path, f"layer {name} ({cls}): pointwise kernel shape {list(point.shape)}"
            )
        nxt = None if level is None else level + 1
        out.append(
            _tensor(
                h5.path,
                h5.member,
                f"{name}.pointwise",
                weights[1],
                point,
                "conv",
                "conv",
                1,
                None,
                nxt,
                trainable,
            )
        )
    return out


def _checkpoint(path: Path, fmt: str, method: str, tensors: list[ConvTensor], notes: list[str]) -> Checkpoint:
    graph = bool(tensors) and all(t.level is not None for t in tensors if len(t.shape) == 4)
    return Checkpoint(path, fmt, [path], method, tensors, "graph" if graph else "definition_order", notes)


def _scan(h5: _H5, skip: tuple[str, ...]) -> list[ConvTensor]:
    """Every 4-D float dataset of the file outside `skip` groups, by shape (kind unknown: no config)."""
    h5py = _h5py()
    found: list[str] = []

    def collect(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and len(obj.shape) == 4 and not name.split("/")[0] in skip:
            found.append(name)

    h5.file.visititems(collect)
    tensors = []
    for where in found:
        dset = h5.dataset(where)
        name = re.sub(r"(:\d+)$", "", where.removeprefix("model_weights/"))
        tensors.append(_tensor(h5.path, h5.member, name, where, dset, "conv", "unknown", None, None, None))
    return tensors


# ------------------------------------------------------------------------------------------ Keras 2 legacy h5


def _strings(path: Path, value: Any, what: str) -> list[str]:
    try:
        items = [value] if isinstance(value, (str, bytes)) else list(value)
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in items]
    except (TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"{what} is not a list of names") from exc


def _keras2_weights(h5: _H5, group: str, inner: str | None) -> list[str]:
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
    return [f"{group}/{n}" for n in names]


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
        if raw is None:
            tensors = _scan(h5, ("optimizer_weights", "optimizer"))
            note = "save_weights file without model_config: layer classes unknown, orientation unknown"
            return _checkpoint(path, "keras-h5", "h5py", tensors, [note])
        model = _parse_config(path, raw, "model_config")
        root = "model_weights" if "model_weights" in h5.file else ""
        tensors = []
        for entry, name, level, trainable, _stored in _model_layers(path, model):
            if not is_weighted_conv(entry["class_name"]):
                continue
            parts = name.split("/")
            group = "/".join([root, parts[0]]).strip("/")
            weights = _keras2_weights(h5, group, parts[-1] if len(parts) > 1 else None)
            tensors.extend(_layer_tensors(h5, name, entry, level, weights, trainable))
        return _checkpoint(path, "keras-h5", "h5py", tensors, [])


# ------------------------------------------------------------------------------------------------ Keras 3 zip

WEIGHTS_MEMBER = "model.weights.h5"


def _zip_config(path: Path) -> dict[str, Any]:
    check_zip_expansion(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if WEIGHTS_MEMBER not in names:
                sharded = sorted(n for n in names if n.endswith(".weights.json"))
                reason = (
                    f"sharded Keras weights ({sharded[0]}): not supported"
                    if sharded
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
    return _parse_config(path, raw, "config.json")


def _keras3_weights(h5: _H5, stored: list[str]) -> list[str]:
    """Paths `layers/<a>/layers/<b>/vars/N` of one layer in N order (the vars group must exist)."""
    h5py = _h5py()
    base = "/".join(f"layers/{s}" for s in stored)
    group = h5.file.get(f"{base}/vars")
    if not isinstance(group, h5py.Group):
        return []
    indices = sorted(int(k) for k in group if k.isdigit())
    return [f"{base}/vars/{i}" for i in indices]


def read_keras_zip(path: Path) -> Checkpoint:
    """Open a Keras 3 `.keras` zip (config.json + model.weights.h5); optimizer/vars are skipped."""
    path = Path(path)
    model = _zip_config(path)
    layers = _model_layers(path, model)
    with _H5(path, WEIGHTS_MEMBER) as h5:
        h5.refuse_external_links()
        tensors = []
        for entry, name, level, trainable, stored in layers:
            if is_weighted_conv(entry["class_name"]):
                weights = _keras3_weights(h5, stored)
                if not weights:
                    where = "/".join(f"layers/{s}" for s in stored)
                    raise CheckpointError(
                        path, f"layer {name} ({entry['class_name']}): weights missing at {where}/vars"
                    )
                tensors.extend(_layer_tensors(h5, name, entry, level, weights, trainable))
    return _checkpoint(path, "keras", "h5py", tensors, [])
