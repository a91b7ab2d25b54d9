"""A pickle reader that never imports or calls anything named in the file: torch checkpoints read with numpy only."""

from __future__ import annotations

import ast
import bisect
import collections
import io
import pickle
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Self

import numpy as np

from filterlake.errors import CheckpointError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py: first pickle of a legacy (pre-1.6) file
PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "QInt8Storage": "qint8",
    "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
    "UntypedStorage": "uint8",  # torch.storage.UntypedStorage: bytes of a dtype given to the tensor rebuild
}
NUMPY_CODES = {
    "float32": "f4",
    "float64": "f8",
    "float16": "f2",
    "bfloat16": "u2",
    "int64": "i8",
    "int32": "i4",
    "int16": "i2",
    "int8": "i1",
    "uint8": "u1",
    "bool": "?",
    "complex64": "c8",
    "complex128": "c16",
    "qint8": "i1",
    "quint8": "u1",
    "qint32": "i4",
    "quint4x2": "u1",  # two 4-bit values a byte
    "quint2x4": "u1",
}
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")


def widen(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Convert raw stored elements to a float32 copy (bf16 is stored as uint16 bit patterns)."""
    if dtype == "bfloat16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def _refuse_state(self: Any, state: Any) -> None:
    """BUILD on a reader-made object would let the file rewrite where data is read from: refuse it."""
    raise pickle.UnpicklingError(f"pickle tries to set the state of a {type(self).__name__}")


@dataclass(frozen=True)
class StorageType:
    """What a `torch.*Storage` global stands for: only the element dtype."""

    dtype: str
    __setstate__ = _refuse_state


@dataclass
class Storage:
    """A flat run of `numel` elements at byte `offset` of `path` (legacy files set the offset after unpickling)."""

    path: Path
    dtype: str
    numel: int
    offset: int | None = None
    byteorder: str = "<"
    __setstate__ = _refuse_state

    def array(self) -> np.ndarray:
        """Memory-map the elements (raw dtype)."""
        if self.dtype not in NUMPY_CODES:
            raise CheckpointError(self.path, f"unsupported storage dtype {self.dtype}")
        if self.offset is None:
            raise CheckpointError(self.path, "the file holds no data for this tensor")
        dtype = np.dtype(self.byteorder + NUMPY_CODES[self.dtype])
        if self.numel == 0:
            return np.empty(0, dtype)
        return np.memmap(self.path, dtype=dtype, mode="r", offset=self.offset, shape=(self.numel,))


@dataclass(frozen=True)
class LazyTensor:
    """A strided view of a storage; the data is read only by `numpy()`."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> str:
        """Element dtype as stored."""
        return self.storage.dtype

    def __setstate__(self, state: Any) -> None:
        """Ignore BUILD (old torch pickles set requires_grad/hooks of tensors and parameters this way)."""

    def numpy(self) -> np.ndarray:
        """Read the view as a float32 array in C order (floating dtypes only)."""
        raw = self.storage.array()
        view = np.lib.stride_tricks.as_strided(
            raw[self.offset :], self.shape, tuple(s * raw.itemsize for s in self.stride)
        )
        return np.ascontiguousarray(widen(view, self.dtype))


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> LazyTensor:
    """Stand-in for torch._utils._rebuild_tensor(_v2): validate the view against its storage."""
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    dims = tuple(size) if isinstance(size, (tuple, list)) else ()
    steps = tuple(stride) if isinstance(stride, (tuple, list)) else ()
    ints = (storage_offset, *dims, *steps)
    if len(dims) != len(steps) or not all(isinstance(v, int) and v >= 0 for v in ints):
        raise pickle.UnpicklingError(f"malformed tensor record: size {size!r}, stride {stride!r}")
    extent = 0 if 0 in dims else storage_offset + sum((d - 1) * s for d, s in zip(dims, steps)) + 1
    if extent > storage.numel:
        raise pickle.UnpicklingError(
            f"tensor of size {dims} reaches element {extent} of a {storage.numel}-element storage"
        )
    return LazyTensor(storage, storage_offset, dims, steps)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    """Stand-in for torch._utils._rebuild_parameter(_with_state) and old nn.Parameter(data, requires_grad)."""
    return data


def _rebuild_from_type(func: Any, _new_type: Any, args: Any, _state: Any) -> Any:
    """Stand-in for torch._tensor._rebuild_from_type_v2: apply the (already restricted) rebuild function."""
    return func(*args)


REBUILDERS: dict[str, Callable[..., Any]] = {
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch.nn.parameter.Parameter": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
}


class Inert:
    """An object of a global the file names but that is never imported: records the name, arguments and state."""

    qualname = "?"
    constants: ClassVar[
        dict[str, Any]
    ] = {}  # TorchScript class constants parsed from the archive's code/ (never executed)

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Absorb NEWOBJ/REDUCE arguments."""
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items = args, kwargs, None, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accept any constructor arguments (already recorded by __new__)."""

    def __setstate__(self, state: Any) -> None:
        """Absorb BUILD."""
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> Inert:
        """Calling a placeholder only makes another placeholder."""
        return placeholder(f"{self.qualname}()")(*args, **kwargs)

    def append(self, item: Any) -> None:
        """Absorb APPEND."""
        self.items.append(item)

    def extend(self, items: Any) -> None:
        """Absorb APPENDS."""
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        """Absorb SETITEM(S)."""
        self.items.append((key, value))

    def __repr__(self) -> str:
        """Show the global it stands for."""
        return f"<inert {self.qualname}>"

    @property
    def attributes(self) -> dict[str, Any]:
        """The BUILD state as a dict (plus TorchScript constants)."""
        state = self.state[0] if isinstance(self.state, tuple) and self.state else self.state
        return {**self.constants, **(state if isinstance(state, dict) else {})}


def placeholder(qualname: str) -> type[Inert]:
    """A fresh inert class standing for the global `qualname`."""
    return type(qualname.rsplit(".", 1)[-1][:100] or "Inert", (Inert,), {"qualname": qualname})


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose globals are inert placeholders, except stand-ins for tensor rebuilds and storage types."""

    def __init__(self, data: bytes | io.BufferedIOBase, storage: Callable[[tuple], Any] | None = None):
        super().__init__(io.BytesIO(data) if isinstance(data, bytes) else data, encoding="utf-8")
        self._storage = storage
        self.classes: dict[str, type[Inert]] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a GLOBAL without importing anything."""
        qualname = f"{module}.{name}"
        if qualname in REBUILDERS:
            return REBUILDERS[qualname]
        if module in ("torch", "torch.cuda", "torch.storage") and name.endswith("Storage"):
            return StorageType(STORAGE_DTYPES.get(name, name))
        if qualname == "collections.OrderedDict":
            return collections.OrderedDict
        if qualname not in self.classes:
            self.classes[qualname] = placeholder(qualname)
        return self.classes[qualname]

    def persistent_load(self, pid: Any) -> Any:
        """Storages come from the container; legacy ('module', cls, ...) ids give the class."""
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError("the pickle refers to outside data that is not a tensor storage")
        kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module" and len(pid) > 1:
            return pid[1]
        if kind != "storage" or self._storage is None:
            raise pickle.UnpicklingError("the pickle refers to outside data that is not a tensor storage")
        if len(pid) < 5 or not isinstance(pid[1], StorageType) or type(pid[4]) is not int or pid[4] < 0:
            raise pickle.UnpicklingError("malformed tensor storage record in the pickle")
        return self._storage(pid[1:])


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


def load_legacy(path: Path) -> Any:
    """Unpickle a legacy (pre-1.6) torch file, mirroring torch.serialization._legacy_load; storages stay on disk."""
    storages: dict[str, Storage] = {}
    views: list[tuple[Storage, str, int]] = []

    def storage(pid: tuple) -> Storage:
        storage_type, key, _location, numel = pid[:4]
        view = pid[4] if len(pid) > 4 else None
        root = storages.setdefault(str(key), Storage(path, storage_type.dtype, numel))
        if view is None:
            return root
        view_key, offset, view_numel = view
        if not 0 <= offset <= offset + view_numel <= root.numel:
            raise pickle.UnpicklingError(
                f"a view of {view_numel} elements from element {offset} lies outside its "
                f"{root.numel}-element tensor storage"
            )
        if str(view_key) not in storages:
            storages[str(view_key)] = Storage(path, root.dtype, view_numel)
            views.append((storages[str(view_key)], str(key), offset))
        return storages[str(view_key)]

    with open(path, "rb") as fh:
        if RestrictedUnpickler(fh).load() != MAGIC_NUMBER:
            raise CheckpointError(path, "not a PyTorch checkpoint: a pickle without the torch magic number")
        version = RestrictedUnpickler(fh).load()
        if version != PROTOCOL_VERSION:
            raise CheckpointError(path, f"unsupported legacy torch protocol version {str(version)[:40]}")
        sys_info = RestrictedUnpickler(fh).load()
        order = "<" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else ">"
        result = RestrictedUnpickler(fh, storage).load()
        keys = RestrictedUnpickler(fh).load()
        if not isinstance(keys, list):
            raise CheckpointError(path, "legacy torch file without its list of storage keys")
        pos, size = fh.tell(), path.stat().st_size
        for key in keys:
            if str(key) not in storages:
                raise CheckpointError(
                    path, "corrupt legacy file: it holds tensor data that its pickle never uses"
                )
            root = storages[str(key)]
            fh.seek(pos)
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(
                    path, f"truncated: a tensor's data ends past the end of the file ({size} bytes)"
                )
            if root.dtype not in NUMPY_CODES:
                raise CheckpointError(path, f"unsupported storage dtype {root.dtype}")
            (count,) = struct.unpack(order + "q", head)
            if count != root.numel:
                raise CheckpointError(
                    path,
                    f"corrupt legacy file: a tensor's data records {count} {root.dtype} "
                    f"elements where its pickle declares {root.numel}",
                )
            root.offset, root.byteorder = pos + 8, order
            pos += 8 + count * np.dtype(NUMPY_CODES[root.dtype]).itemsize
            if pos > size:
                raise CheckpointError(
                    path, f"truncated: a tensor's data ends past the end of the file ({size} bytes)"
                )
    for view, key, offset in views:
        root = storages[key]
        if root.offset is not None:
            view.offset, view.byteorder = (
                root.offset + offset * np.dtype(NUMPY_CODES[root.dtype]).itemsize,
                order,
            )
    return result
