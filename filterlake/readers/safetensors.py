"""safetensors files and sharded indexes: header parsed here, tensors memory-mapped lazily, MLX layout detected."""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filterlake.errors import CheckpointError
from filterlake.readers.base import CHANNEL_FIRST, CHANNEL_LAST, Checkpoint, ConvTensor
from filterlake.readers.detect import MAX_SAFETENSORS_HEADER, contained_file, guarded
from filterlake.readers.dtypes import widen

ITEMSIZE = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "C64": 8,
}
FLOATS = {
    "F64": ("float64", "<f8"),
    "F32": ("float32", "<f4"),
    "F16": ("float16", "<f2"),
    "BF16": ("bfloat16", "<u2"),
}
MAX_KERNEL = 11


@dataclass(frozen=True)
class _Entry:
    """One tensor of a safetensors file and where its bytes are."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int

    def load(self, channel_last: bool) -> np.ndarray:
        """float32 copy in channel-first order."""
        name, code = FLOATS[self.dtype]
        raw = (
            np.zeros(self.shape, code)
            if 0 in self.shape
            else np.memmap(self.path, dtype=code, mode="r", offset=self.offset, shape=self.shape)
        )
        array = widen(raw, name)
        if channel_last:
            array = array.transpose(0, array.ndim - 1, *range(1, array.ndim - 1))
        return np.ascontiguousarray(array)


def _entry(path: Path, name: str, spec: Any, start: int, data_size: int) -> _Entry:
    """Validate one header entry against the data section."""
    try:
        dtype, shape, (begin, end) = spec["dtype"], tuple(spec["shape"]), spec["data_offsets"]
    except (TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(path, f"tensor {name}: malformed header entry {str(spec)[:80]}") from exc
    if not all(type(v) is int and v >= 0 for v in (*shape, begin, end)) or not begin <= end <= data_size:
        raise CheckpointError(
            path,
            f"tensor {name}: shape {list(shape)} / data_offsets [{begin}, {end}] invalid "
            f"for a {data_size}-byte data section",
        )
    if dtype in ITEMSIZE and end - begin != math.prod(shape) * ITEMSIZE[dtype]:
        raise CheckpointError(
            path,
            f"tensor {name}: shape {list(shape)} of {dtype} needs "
            f"{math.prod(shape) * ITEMSIZE[dtype]} bytes but data_offsets span {end - begin}",
        )
    return _Entry(name, path, str(dtype), shape, start + begin)


def _header(path: Path) -> tuple[dict[str, _Entry], dict[str, Any]]:
    """Parse and validate a safetensors header: the entries by name and the __metadata__."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if length is None or length > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise CheckpointError(
                path, f"truncated safetensors file: header length {length} vs file size {size}"
            )
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CheckpointError(path, f"safetensors header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(path, "safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    entries = {name: _entry(path, name, spec, 8 + length, size - 8 - length) for name, spec in header.items()}
    return entries, metadata if isinstance(metadata, dict) else {}


def _index(path: Path) -> tuple[list[Path], list[_Entry], dict[str, Any]]:
    """Shards (first-appearance order), entries and merged metadata of a *.safetensors.index.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(path, "safetensors index without a weight_map of tensor name -> shard file")
    shards = {shard: contained_file(path, shard) for shard in dict.fromkeys(weight_map.values())}
    headers = {shard: _header(file) for shard, file in shards.items()}
    entries = []
    for name, shard in weight_map.items():
        if name not in headers[shard][0]:
            raise CheckpointError(path, f"weight_map puts {name} in {shard}, which does not hold it")
        entries.append(headers[shard][0][name])
    metadata = {k: v for _, meta in headers.values() for k, v in meta.items()}
    return list(shards.values()), entries, metadata


def _same_small(dims: tuple[int, ...]) -> bool:
    """Plausible kernel dims: all equal and at most MAX_KERNEL."""
    return len(set(dims)) == 1 and dims[0] <= MAX_KERNEL


def channel_last(entries: list[_Entry], metadata: dict[str, Any]) -> bool:
    """Per-model vote: MLX-style [out, *kernel, in] when some tensor only fits that and none only fits OIHW."""
    if str(metadata.get("format", "")).lower() == "mlx":
        return True
    first_only = last_only = 0
    for entry in entries:
        rank = len(entry.shape)
        first, last = _same_small(entry.shape[2:]), _same_small(entry.shape[1 : rank - 1])
        first_only += first and not last
        last_only += last and not first
    return last_only > 0 and first_only == 0


def _natural(name: str) -> list[Any]:
    """Sort key reading digit runs as numbers (layer10 after layer2)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_safetensors(path: Path, kind: str = "safetensors") -> Checkpoint:
    """Open a safetensors file, or a sharded checkpoint through its index (`kind` "safetensors-index")."""
    if kind == "safetensors-index":
        shards, entries, metadata = _index(path)
    else:
        by_name, metadata = _header(path)
        shards, entries = [], list(by_name.values())
    convs = sorted(
        (e for e in entries if e.dtype in FLOATS and len(e.shape) in CHANNEL_FIRST),
        key=lambda e: _natural(e.name),
    )
    last = channel_last(convs, metadata)
    tensors = []
    for entry in convs:
        name = entry.name.removesuffix(".weight")
        layout = (CHANNEL_LAST if last else CHANNEL_FIRST)[len(entry.shape)]
        load = guarded(entry.path, f"tensor {name}", lambda e=entry: e.load(last))
        tensors.append(ConvTensor(name, entry.shape, FLOATS[entry.dtype][0], layout, load))
    return Checkpoint(path, "safetensors", [path, *shards], "safetensors", tensors)
