"""Keras checkpoints without TensorFlow or Keras: Keras 2 legacy HDF5 (.h5/.hdf5) and Keras 3 .keras zips.

Only JSON and HDF5 datasets are read; nothing from a file is executed (Lambda layers and custom objects are
names in the config, never code). Layer classes come from the config; weights are found through the file's own
names (Keras 2 `weight_names` attributes) or through Keras 3's saving rule (class-derived counters in config
order), never guessed. Kernels are `[*kernel, in/groups, out]` and are reported channel-last (OHWI, OWI,
ODHWI, shape permuted accordingly); `load()` reads the dataset when called and returns canonical
(O, I/groups, *kernel) float32.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from filterlake.errors import CheckpointError
from filterlake.readers.base import CHANNEL_LAST, Checkpoint, ConvTensor
from filterlake.readers.detect import check_zip_expansion, describe, guarded

CONV = {"Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D"}
DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
SEPARABLE = {"SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D"}
TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Deconvolution2D", "Deconvolution3D"}
CONTAINERS = {"Functional", "Sequential", "Model"}
FLOAT_DTYPES = {"float16", "float32", "float64"}
MAX_ELEMENTS = 1 << 30  # one weight of more than 2**30 values (4 GiB as float32) is refused as absurd
MAX_CONFIG_BYTES = 256 << 20
MAX_IN_MEMORY_MEMBER = 256 << 20  # a compressed model.weights.h5 up to this size is inflated into memory
MAX_NESTING = 64


# ----------------------------------------------------------------------------------------------- config model


@dataclass(frozen=True)
class _Layer:
    """One weight-bearing layer of the config: its qualified name, class, config and graph level."""

    name: str  # config name; nested layers as "outer/inner"
    class_name: str
    config: dict[str, Any]
    trainable: bool  # effective: False when the layer or any enclosing model is frozen
    level: int | None
    weights: tuple[str, ...]  # HDF5 paths of its weights in order (kernel first), resolved by the reader


def to_snake_case(name: str) -> str:
    """Keras 3's `naming.to_snake_case` (the saving rule for weight paths): Conv2D -> conv2d."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def _parse_config(path: Path, raw: Any, what: str) -> dict[str, Any]:
    """Decode a JSON model config (bytes or str) to a dict with class_name and config."""
    if isinstance(raw, np.ndarray) and raw.shape == ():
        raw = raw.item()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(path, f"{what} is not UTF-8 text ({exc.reason})") from exc
    if not isinstance(raw, str):
        raise CheckpointError(path, f"{what} is not a JSON string (found {type(raw).__name__})")
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(path, f"{what} is not valid JSON ({detail})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise CheckpointError(path, f"{what} is not a Keras model config (no class_name)")
    return config


def _layers_of(path: Path, entry: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The layer entries of a container config (Functional, Sequential, Model), None for other layers."""
    config = entry.get("config")
    layers = (
        config if isinstance(config, list) else config.get("layers") if isinstance(config, dict) else None
    )
    if layers is None:
        return None
    if not isinstance(layers, list) or not all(
        isinstance(layer, dict) and isinstance(layer.get("class_name"), str) for layer in layers
    ):
        raise CheckpointError(path, f"model config of {entry.get('class_name')}: malformed layers list")
    return layers


def _name(entry: dict[str, Any]) -> str:
    config = entry.get("config")
    name = entry.get("name") or (config.get("name") if isinstance(config, dict) else None)
    return str(name) if name is not None else ""


def _history(node: Any) -> Iterator[str]:
    """Names of the layers feeding one inbound node (Keras 2 lists or Keras 3 keras_history dicts)."""
    if isinstance(node, dict):
        history = (
            node.get("config", {}).get("keras_history") if isinstance(node.get("config"), dict) else None
        )
        if isinstance(history, list) and history and isinstance(history[0], str):
            yield history[0]
        for key, value in node.items():
            if key != "config" or history is None:
                yield from _history(value)
    elif isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
            yield node[0]  # Keras 2: [layer_name, node_index, tensor_index, kwargs]
        else:
            for item in node:
                yield from _history(item)


def _levels(path: Path, entries: list[dict[str, Any]], base: int, sequential: bool) -> dict[str, int]:
    """Graph level (longest path from an input) of the output of each layer of one container."""
    parents: dict[str, set[str]] = {}
    for entry in entries:
        nodes = entry.get("inbound_nodes") or []
        parents[_name(entry)] = set(_history(nodes))
    by_name = {_name(entry): entry for entry in entries}
    level: dict[str, int] = {}
    if sequential or not any(parents.values()):
        at = base
        for entry in entries:
            at += _cost(path, entry, at)
            level[_name(entry)] = at
        return level
    visiting: set[str] = set()

    def visit(name: str, depth: int) -> int:
        if name in level:
            return level[name]
        if name in visiting or depth > len(entries) + 1:
            raise CheckpointError(path, f"model config: the layer graph has a cycle through {name!r}")
        visiting.add(name)
        known = [visit(p, depth + 1) for p in parents.get(name, ()) if p in by_name]
        start = max(known) if known else base
        level[name] = start + _cost(path, by_name[name], start) if name in by_name else start
        visiting.discard(name)
        return level[name]

    for name in by_name:
        visit(name, 0)
    return level


def _cost(path: Path, entry: dict[str, Any], start: int) -> int:
    """Levels a layer adds: 0 for inputs, 2 for a separable conv (depthwise, then pointwise), a nested model's
    longest path, else 1."""
    cls = entry["class_name"]
    if cls == "InputLayer":
        return 0
    if cls in SEPARABLE:
        return 2
    inner = _layers_of(path, entry) if cls in CONTAINERS else None
    if inner:
        levels = _levels(path, inner, 0, cls == "Sequential")
        return max(levels.values(), default=0)
    return 1


def _walk(
    path: Path, entries: list[dict[str, Any]], cls: str, prefix: str, base: int, trainable: bool, depth: int
) -> Iterator[tuple[dict[str, Any], str, int | None, bool, list[str]]]:
    """(layer entry, qualified name, level, effective trainable, Keras 3 container path) in config order."""
    if depth > MAX_NESTING:
        raise CheckpointError(path, f"model config nests models more than {MAX_NESTING} deep")
    levels = _levels(path, entries, base, cls == "Sequential")
    used: dict[str, int] = {}
    for entry in entries:
        name = _name(entry)
        snake = to_snake_case(entry["class_name"])
        used[snake] = used.get(snake, -1) + 1
        stored = snake if used[snake] == 0 else f"{snake}_{used[snake]}"
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        own = trainable and config.get("trainable", True) is not False
        inner = _layers_of(path, entry) if entry["class_name"] in CONTAINERS else None
        qualified = f"{prefix}{name}"
        if inner is not None:
            end = levels.get(name, base)
            start = end - _cost(path, entry, 0)
            for item in _walk(path, inner, entry["class_name"], f"{qualified}/", start, own, depth + 1):
                yield item[0], item[1], item[2], item[3], [stored, *item[4]]
            continue
        level = levels.get(name)
        if level is not None and entry["class_name"] in SEPARABLE:
            level -= 1  # the depthwise half; the pointwise half is one level on
        yield entry, qualified, level, own, [stored]


def _model_layers(
    path: Path, model: dict[str, Any]
) -> list[tuple[dict[str, Any], str, int | None, bool, list[str]]]:
    """Every layer of a model config (nested models flattened), see `_walk`."""
    layers = _layers_of(path, model)
    if layers is None:
        raise CheckpointError(path, f"model config of class {model['class_name']} lists no layers")
    trainable = not (isinstance(model.get("config"), dict) and model["config"].get("trainable") is False)
    return list(_walk(path, layers, model["class_name"], "", 0, trainable, 0))


def is_weighted_conv(class_name: str) -> bool:
    return class_name in CONV | DEPTHWISE | SEPARABLE | TRANSPOSED


# ------------------------------------------------------------------------------------------------ HDF5 access


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a dependency of the Keras reader
        raise CheckpointError("h5py", "the Keras reader needs h5py (pip install h5py)") from exc
    return h5py


class _MemberView(io.RawIOBase):
    """A read-only, seekable view of one stored (uncompressed) zip member, read with pread: no copy."""

    def __init__(self, path: Path, start: int, size: int):
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._start, self._size, self._pos = start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self._size - self._pos))
        data = os.pread(self._fd, count, self._start + self._pos) if count else b""
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _open_member(path: Path, member: str) -> tuple[io.IOBase, int]:
    """A seekable file object of a zip member and its size: a view when stored, else a small in-memory copy."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1:
                if info.file_size > MAX_IN_MEMORY_MEMBER or info.flag_bits & 1:
                    raise CheckpointError(
                        path,
                        f"{member} is compressed or encrypted ({info.file_size:,} bytes): refusing to inflate it",
                    )
                return io.BytesIO(archive.read(member)), info.file_size
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise CheckpointError(path, f"corrupt zip archive: no local header for {member}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        if info.compress_size != info.file_size or start + info.file_size > path.stat().st_size:
            raise CheckpointError(path, f"truncated zip archive: {member} runs past the end of the file")
        return io.BufferedReader(_MemberView(path, start, info.file_size), 1 << 20), info.file_size
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(path, f"truncated or corrupt zip archive ({describe(exc)})") from exc


class _H5:
    """An open HDF5 file (on disk or a zip member) with the checks applied to every dataset it hands out."""

    def __init__(self, path: Path, member: str | None = None):
        h5py = _h5py()
        self.path, self.member, self._raw = path, member, None
        try:
            if member is None:
                self.size = path.stat().st_size
                self.file = h5py.File(path, "r")
            else:
                self._raw, self.size = _open_member(path, member)
                self.file = h5py.File(self._raw, "r")
        except CheckpointError:
            self.close()
            raise
        except Exception as exc:  # untrusted bytes: any failure is a CheckpointError
            self.close()
            where = f"{member} " if member else ""
            raise CheckpointError(path, f"{where}truncated or corrupt HDF5 file ({describe(exc)})") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        file = getattr(self, "file", None)
        if file is not None:
            file.close()
        if self._raw is not None:
            self._raw.close()

    def refuse_external_links(self) -> None:
        """Refuse a file with any link to another file (HDF5 external links)."""
        h5py = _h5py()
        found: list[str] = []

        def check(name: str, link: Any) -> None:
            if isinstance(link, h5py.ExternalLink) and not found:
                found.append(f"{name} -> {link.filename}:{link.path}")

        try:
            self.file.visititems_links(check)
        except Exception as exc:  # untrusted bytes: any failure is a CheckpointError
            raise CheckpointError(self.path, f"corrupt HDF5 file ({describe(exc)})") from exc
        if found:
            raise CheckpointError(self.path, f"HDF5 external link {found[0]}: refusing to read another file")

    def dataset(self, where: str) -> Any:
        """The dataset at `where`, checked: a real float array of plausible size whose bytes are in the file."""
        h5py = _h5py()
        parts = [p for p in where.split("/") if p]
        node = self.file
        for i, part in enumerate(parts):
            if not isinstance(node, h5py.Group) or part not in node:
                raise CheckpointError(self.path, f"weight {where}: missing from the file")
            link = node.get(part, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise CheckpointError(self.path, f"weight {where}: HDF5 external link to {link.filename}")
            node = node[part]
        if not isinstance(node, h5py.Dataset):
            raise CheckpointError(self.path, f"weight {where}: not a dataset")
        self.check(where, node)
        return node

    def check(self, where: str, dset: Any) -> None:
        if dset.is_virtual:
            raise CheckpointError(
                self.path, f"weight {where}: virtual dataset (data from other files): refused"
            )
        if dset.external:
            raise CheckpointError(
                self.path, f"weight {where}: external storage in {dset.external[0][0]}: refused"
            )
        if dset.dtype.name not in FLOAT_DTYPES:
            raise CheckpointError(self.path, f"weight {where}: dtype {dset.dtype} is not a float type")
        shape = tuple(int(d) for d in dset.shape)
        count = math.prod(shape)
        if count > MAX_ELEMENTS:
            raise CheckpointError(self.path, f"weight {where}: absurd shape {list(shape)} ({count:,} values)")
        nbytes = count * dset.dtype.itemsize
        filters = dset.id.get_create_plist().get_nfilters()
        stored = dset.id.get_storage_size()
        if not filters and stored != nbytes or stored > self.size:
            raise CheckpointError(
                self.path,
                f"weight {where}: shape {list(shape)} of {dset.dtype} needs {nbytes:,} bytes "
                f"but {stored:,} are stored",
            )
        offset = dset.id.get_offset()
        if dset.chunks is None and nbytes and (offset is None or offset + nbytes > self.size):
            raise CheckpointError(self.path, f"weight {where}: data runs past the end of the file")


def _load(path: Path, member: str | None, where: str, shape: tuple[int, ...], how: str) -> np.ndarray:
    """Read one weight (reopening the file) and return it as canonical (O, I/groups, *kernel) float32."""
    with _H5(path, member) as h5:
        dset = h5.dataset(where)
        if tuple(dset.shape) != shape:
            raise CheckpointError(path, f"weight {where}: shape changed to {list(dset.shape)}")
        raw = dset[()]
    array = raw.astype(np.float32)
    rank = array.ndim
    spatial = tuple(range(rank - 2))
    if how == "depthwise":  # [*k, in, dm] -> (in*dm, 1, *k): channel c, multiplier m -> output c*dm + m
        array = array.reshape(*shape[:-2], shape[-2] * shape[-1]).transpose(rank - 2, *spatial)[:, None]
    elif how == "transposed":  # [*k, out, in] -> (in, out, *k), as a PyTorch ConvTranspose weight
        array = array.transpose(rank - 1, rank - 2, *spatial)
    else:  # [*k, in/groups, out] -> (out, in/groups, *k)
        array = array.transpose(rank - 1, rank - 2, *spatial)
    return np.ascontiguousarray(array)


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
    )


def _ints(value: Any, rank: int) -> tuple[int, ...] | None:
    if isinstance(value, int):
        return (value,) * rank
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None


def _layer_tensors(
    h5: _H5, name: str, entry: dict[str, Any], level: int | None, weights: list[str]
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
                h5.path, h5.member, name, weights[0], kernel, "transposed", "transposed", 1, dilation, level
            )
        ]
    if cls in CONV:
        groups = config.get("groups", 1)
        groups = groups if isinstance(groups, int) and groups >= 1 else 1
        return [
            _tensor(h5.path, h5.member, name, weights[0], kernel, "conv", "conv", groups, dilation, level)
        ]
    groups = int(kernel.shape[-2])
    out = [
        _tensor(h5.path, h5.member, name, weights[0], kernel, "depthwise", "conv", groups, dilation, level)
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
            _tensor(h5.path, h5.member, f"{name}.pointwise", weights[1], point, "conv", "conv", 1, None, nxt)
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
        for entry, name, level, _trainable, _stored in _model_layers(path, model):
            if not is_weighted_conv(entry["class_name"]):
                continue
            parts = name.split("/")
            group = "/".join([root, parts[0]]).strip("/")
            weights = _keras2_weights(h5, group, parts[-1] if len(parts) > 1 else None)
            tensors.extend(_layer_tensors(h5, name, entry, level, weights))
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
        for entry, name, level, _trainable, stored in layers:
            if is_weighted_conv(entry["class_name"]):
                weights = _keras3_weights(h5, stored)
                if not weights:
                    where = "/".join(f"layers/{s}" for s in stored)
                    raise CheckpointError(
                        path, f"layer {name} ({entry['class_name']}): weights missing at {where}/vars"
                    )
                tensors.extend(_layer_tensors(h5, name, entry, level, weights))
    return _checkpoint(path, "keras", "h5py", tensors, [])


# -------------------------------------------------------------------------------------------------- trainable


def trainable_layers(path: Path) -> dict[str, bool]:
    """Effective `trainable` flag of every layer of a Keras file's config, by the names the readers give
    ("outer/inner" inside nested models; False when the layer or an enclosing model is frozen). A file
    without a config (save_weights output) gives {}."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        model = _zip_config(path)
    else:
        with _H5(path) as h5:
            raw = h5.file.attrs.get("model_config")
            if raw is None:
                return {}
            model = _parse_config(path, raw, "model_config")
    return {name: trainable for _entry, name, _level, trainable, _stored in _model_layers(path, model)}
