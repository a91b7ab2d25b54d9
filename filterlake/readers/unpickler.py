"""A pickle reader that never imports or calls anything named in the file: torch checkpoints read with numpy only."""

from __future__ import annotations

import collections
import io
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from filterlake.errors import CheckpointError
from filterlake.readers.dtypes import NUMPY_CODES, STORAGE_DTYPES, widen

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py: first pickle of a legacy (pre-1.6) file
PROTOCOL_VERSION = 1001


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
