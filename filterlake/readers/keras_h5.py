"""HDF5 access for the Keras reader with its safety checks: zip member views, no external links, virtual or external storage, sizes that match."""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, Self

import numpy as np

from filterlake.errors import CheckpointError
from filterlake.readers.detect import describe
from filterlake.readers.keras_config import FLOAT_DTYPES, MAX_ELEMENTS, MAX_IN_MEMORY_MEMBER


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
