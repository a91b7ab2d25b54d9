"""Format detection by content (magic bytes), and the input-safety helpers the readers share."""
from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from filterlake.errors import CheckpointError

T = TypeVar("T")
HEAD_BYTES = 4096
MAX_SAFETENSORS_HEADER = 100_000_000  # the format's own limit; a longer "header" is not safetensors
LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # LONG1 of torch's legacy magic number
# ModelProto fields (number -> protobuf wire type) that appear before/around the graph in ONNX files.
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    """Decode a protobuf varint at `pos`; None when it runs off the buffer or is over-long."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            return None
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    return None


def _looks_like_onnx(head: bytes, size: int) -> bool:
    """True when the head parses as ModelProto fields with an ir_version and a graph (or a field past the head)."""
    pos, seen = 0, set()
    while pos < len(head):
        tag = _varint(head, pos)
        if tag is None:
            break
        key, pos = tag
        field, wire = key >> 3, key & 7
        if _ONNX_FIELDS.get(field) != wire:
            return False
        value = _varint(head, pos)
        if value is None:
            break
        number, pos = value
        if field == 1 and not 1 <= number <= 64:
            return False
        seen.add(field)
        if wire == 2:
            if pos + number > size:
                return False
            pos += number
    return 1 in seen and (7 in seen or pos > len(head))


def _last_byte(path: Path) -> bytes:
    """The final byte of a file (a plain pickle ends with STOP, b".")."""
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)


def _zip_kind(path: Path) -> str | None:
    """Classify a zip archive: TorchScript, torch.save zip, or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "torch-zip"  # a PK header that zipfile cannot open: a broken archive, reported by the reader
    parts = [PurePosixPath(n).parts for n in names]
    if any(p[1:] == ("constants.pkl",) or p[1:2] == ("code",) for p in parts):
        return "torchscript"
    if any(p[1:] == ("data.pkl",) for p in parts):
        return "torch-zip"
    return None


def _index_kind(path: Path, head: bytes, size: int) -> str | None:
    """Return "safetensors-index" for a JSON object with a weight_map."""
    if not head.lstrip().startswith(b"{") or b'"weight_map"' not in head or size > MAX_SAFETENSORS_HEADER:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return "safetensors-index" if isinstance(data, dict) and isinstance(data.get("weight_map"), dict) else None


def sniff_format(path: Path) -> str | None:
    """Detect a checkpoint format from the first bytes of `path` (never from its name); None when not a model."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and (
            LEGACY_MAGIC in head[:32] or _last_byte(path) == b"."):
        return "torch-legacy"
    if len(head) >= 10 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= MAX_SAFETENSORS_HEADER:
        return "safetensors"
    if _looks_like_onnx(head, size):
        return "onnx"
    return _index_kind(path, head, size)


def contained_file(model: Path, location: str) -> Path:
    """Resolve `location` (external data, shard) relative to the model's folder; refuse anything outside it."""
    rel = PurePosixPath(location.replace("\\", "/"))
    folder = model.parent.resolve()
    if not location or rel.is_absolute() or ".." in rel.parts or os.path.isabs(location):
        raise CheckpointError(model, f"refers to {location!r}, which is not a plain path inside the model folder")
    target = folder / rel
    if not target.resolve().is_relative_to(folder):
        raise CheckpointError(model, f"refers to {location!r}, which resolves outside the model folder")
    if not target.is_file():
        raise CheckpointError(model, f"refers to the missing file {target} (location {location!r})")
    return target


def describe(exc: BaseException) -> str:
    """One line naming an exception (for torch's weights_only refusal: the offending global)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"WeightsUnpickler error: (.*?)(?: Please use|\n|$)", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = found.group(1).strip() if found else lines[0] if lines else ""
    return f"{type(exc).__name__}: {detail}"[:300].rstrip(": ")


MAX_EXPANSION = 20  # torch stores storages uncompressed: a zip that inflates far beyond its size is refused


def check_zip_expansion(path: Path) -> None:
    """Refuse a zip whose entries expand far beyond the archive's size (a zip bomb) before anything reads it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(path, f"truncated or corrupt zip archive ({describe(exc)})") from exc
    size = path.stat().st_size
    if expanded > MAX_EXPANSION * size + (1 << 20):
        raise CheckpointError(path, f"zip entries expand to {expanded:,} bytes from a {size:,}-byte file "
                                    f"(more than {MAX_EXPANSION}x): refusing a possible zip bomb")


def guarded(path: Path, what: str, load: Callable[[], T]) -> Callable[[], T]:
    """Wrap a lazy loader so that any failure surfaces as a one-line CheckpointError."""

    def call() -> T:
        try:
            return load()
        except CheckpointError:
            raise
        except Exception as exc:  # untrusted bytes: any failure becomes a CheckpointError
            raise CheckpointError(path, f"{what}: {describe(exc)}") from exc

    return call
