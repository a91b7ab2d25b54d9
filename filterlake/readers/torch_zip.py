"""torch.save zip archives read without torch: their members, the size check of every tensor storage entry, and
the restricted load of data.pkl (TorchScript constants included)."""

from __future__ import annotations

import ast
import bisect
import re
import struct
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from filterlake.errors import CheckpointError
from filterlake.readers.dtypes import NUMPY_CODES
from filterlake.readers.unpickler import RestrictedUnpickler, Storage, StorageType


def _entry_offset(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Byte offset of a zip entry's data in the archive file (read from its local header)."""
    zf.fp.seek(info.header_offset)
    header = zf.fp.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise CheckpointError(
            path, "truncated or corrupt zip archive: a tensor's data has a bad entry header"
        )
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _open_zip(path: Path) -> zipfile.ZipFile:
    """Open a torch zip archive; CheckpointError when zipfile cannot read its central directory."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            path, f"not a PyTorch checkpoint: truncated or corrupt zip archive ({exc})"
        ) from exc


def _members(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Entries by name; refuses two entries of one name (torch finds names ignoring case, and takes the first)."""
    infos: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    for info in zf.infolist():
        if info.filename.lower() in seen:
            raise CheckpointError(path, "corrupt zip archive: two entries have the same name")
        seen.add(info.filename.lower())
        infos[info.filename] = info
    return infos


def _archive_prefix(path: Path, infos: dict[str, zipfile.ZipInfo]) -> str:
    """The archive's folder: the one holding `data.pkl`."""
    pickles = [n for n in infos if PurePosixPath(n).name == "data.pkl" and len(PurePosixPath(n).parts) == 2]
    if not pickles:
        raise CheckpointError(
            path, "zip archive without <archive>/data.pkl: not a torch.save/TorchScript file"
        )
    return str(PurePosixPath(pickles[0]).parent)


class _StorageEntries:
    """Finds the zip entry of each storage record and checks, from the central directory and the entry's local
    header only (no tensor data is read), that it holds every byte the record declares."""

    def __init__(self, path: Path, zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], prefix: str):
        self.path, self.zf, self.infos, self.prefix = path, zf, infos, prefix
        self.size = path.stat().st_size
        # where each entry's data must end: at the next entry's header, or at the central directory
        self.bounds = sorted(
            {i.header_offset for i in infos.values()} | {getattr(zf, "start_dir", self.size)}
        )
        self.compressed = False  # a storage entry is compressed (memory-mapping it would read deflated bytes)

    def find(
        self, folder: str, storage_type: StorageType, key: Any, numel: int
    ) -> tuple[zipfile.ZipInfo, int]:
        """The entry of storage `key` in `folder` and its data offset; CheckpointError when it does not fit."""
        path = self.path
        entry = self.infos.get(f"{self.prefix}/{folder}/{key}")
        if entry is None:
            raise CheckpointError(path, "a tensor's data is missing from the zip archive")
        offset = _entry_offset(path, self.zf, entry)
        end = offset + entry.compress_size
        if end > self.size:
            raise CheckpointError(
                path, f"truncated: a tensor's data ends past the end of the file ({self.size} bytes)"
            )
        after = bisect.bisect_right(self.bounds, entry.header_offset)
        if after < len(self.bounds) and end > self.bounds[after]:
            raise CheckpointError(path, "corrupt zip archive: a tensor's data runs into the next entry")
        stored = entry.compress_type == zipfile.ZIP_STORED
        held = min(entry.file_size, entry.compress_size) if stored else entry.file_size
        item = np.dtype(NUMPY_CODES.get(storage_type.dtype, "u1")).itemsize
        if numel * item > held:
            raise CheckpointError(
                path,
                f"a tensor's data holds {held} bytes, fewer than its {numel} {storage_type.dtype} elements need",
            )
        self.compressed |= not stored
        return entry, offset


def check_zip_storages(path: Path) -> bool:
    """Check every storage record of a torch zip's `data.pkl` against the entry that holds it (`_StorageEntries`);
    CheckpointError when one is missing, cut short or damaged. True when torch.load may memory-map the
    storages: all are stored uncompressed and the archive has a single folder, the one torch reads."""
    with _open_zip(path) as zf:
        infos = _members(path, zf)
        prefix = _archive_prefix(path, infos)
        entries = _StorageEntries(path, zf, infos, prefix)

        def storage(pid: tuple) -> Storage:
            storage_type, key, _location, numel = pid[:4]
            _, offset = entries.find("data", storage_type, key, numel)
            return Storage(path, storage_type.dtype, numel, offset)

        RestrictedUnpickler(zf.read(f"{prefix}/data.pkl"), storage).load()
    return not entries.compressed and all(name.startswith(f"{prefix}/") for name in infos)


def _code_constants(zf: zipfile.ZipFile, prefix: str, qualname: str) -> dict[str, Any]:
    """`name : Final[...] = literal` lines of a TorchScript class in code/ (parsed as literals, never run)."""
    module, _, cls = qualname.rpartition(".")
    try:
        source = zf.read(f"{prefix}/code/{module.replace('.', '/')}.py").decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return {}
    match = re.search(rf"^class {re.escape(cls)}\(.*?(?=^class |\Z)", source, re.MULTILINE | re.DOTALL)
    found = {}
    for name, literal in re.findall(
        r"^\s+(\w+) : Final\[.*\] = (.+)$", match.group(0) if match else "", re.MULTILINE
    ):
        try:
            found[name] = ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            continue
    return found


def load_zip(path: Path) -> tuple[Any, Any]:
    """Unpickle `data.pkl` (and `constants.pkl`, if any) of a torch zip archive; storages stay on disk."""
    with _open_zip(path) as zf:
        infos = _members(path, zf)
        prefix = _archive_prefix(path, infos)
        entries = _StorageEntries(path, zf, infos, prefix)
        order = (
            zf.read(f"{prefix}/byteorder").decode().strip() if f"{prefix}/byteorder" in infos else "little"
        )

        def unpickle(name: str, folder: str) -> tuple[Any, RestrictedUnpickler]:
            def storage(pid: tuple) -> Storage:
                storage_type, key, _location, numel = pid[:4]
                entry, offset = entries.find(folder, storage_type, key, numel)
                if entry.compress_type != zipfile.ZIP_STORED:
                    raise CheckpointError(
                        path, "a tensor's data is compressed in the zip archive (torch.save never does that)"
                    )
                return Storage(path, storage_type.dtype, numel, offset, "<" if order == "little" else ">")

            unpickler = RestrictedUnpickler(zf.read(name), storage)
            return unpickler.load(), unpickler

        data, unpickler = unpickle(f"{prefix}/data.pkl", "data")
        constants = None
        if f"{prefix}/constants.pkl" in infos:
            constants, _ = unpickle(f"{prefix}/constants.pkl", "constants")
            for qualname, cls in unpickler.classes.items():
                if qualname.startswith("__torch__."):
                    cls.constants = _code_constants(zf, prefix, qualname)
    return data, constants
