"""The TFLite flatbuffer read as data: a bounds-checked table reader, the schema's opcodes and dtypes, and the
parsed tensors, operators and buffers (every offset and length checked against the file size)."""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from filterlake.errors import CheckpointError

CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, CUSTOM, TRANSPOSE_CONV, DENSIFY = 3, 4, 6, 32, 67, 124
OP_NAMES = {CONV_2D: "CONV_2D", DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D", TRANSPOSE_CONV: "TRANSPOSE_CONV"}
# TensorType -> numpy dtype (the types a weight can have).
DTYPES = {0: "float32", 1: "float16", 3: "uint8", 7: "int16", 9: "int8", 10: "float64"}
QUANTIZED = {"uint8", "int8", "int16"}
MAX_CHAIN = 32  # most producer ops followed to resolve one weight
CONV2D_OPTIONS, DEPTHWISE_OPTIONS = 1, 2  # BuiltinOptions union tags


def _is_transposed_custom(code: str) -> bool:
    """A custom op that is a transposed conv (mediapipe's Convolution2DTransposeBias, ...)."""
    low = code.lower()
    return "conv" in low and "transpose" in low


class _Refused(Exception):
    """A weight that is read but cannot be resolved (reported as an "unresolved" note, not a file error)."""


class _Flat:
    """Bounds-checked reads of flatbuffer scalars, tables, vectors and strings from a byte buffer."""

    def __init__(self, path: Path, data: mmap.mmap | bytes):
        self.path, self.data, self.size = path, data, len(data)

    def fail(self, reason: str) -> CheckpointError:
        return CheckpointError(self.path, f"corrupt TFLite flatbuffer: {reason}")

    def check(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise self.fail(
                f"{what} at byte {pos} (+{length}) runs past the end of the {self.size}-byte file"
            )

    def read(self, fmt: str, pos: int, what: str) -> int | float:
        self.check(pos, struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int, what: str) -> _Table:
        vtable = pos - int(self.read("<i", pos, what))
        vsize = int(self.read("<H", vtable, f"vtable of {what}"))
        if vsize < 4 or vsize % 2:
            raise self.fail(f"vtable of {what} has an invalid size {vsize}")
        self.check(vtable, vsize, f"vtable of {what}")
        tsize = int(self.read("<H", vtable + 2, f"vtable of {what}"))
        self.check(pos, tsize, what)
        return _Table(self, pos, vtable, vsize, tsize, what)


@dataclass(frozen=True)
class _Table:
    flat: _Flat
    pos: int
    vtable: int
    vsize: int
    tsize: int
    what: str

    def _field(self, index: int) -> int:
        """Absolute position of field `index`, 0 when it is absent."""
        at = 4 + 2 * index
        if at + 2 > self.vsize:
            return 0
        off = int(self.flat.read("<H", self.vtable + at, self.what))
        if off and off >= self.tsize:
            raise self.flat.fail(f"field {index} of {self.what} lies outside its table")
        return self.pos + off if off else 0

    def scalar(self, index: int, fmt: str, default: float = 0) -> float:
        at = self._field(index)
        return self.flat.read(fmt, at, f"field {index} of {self.what}") if at else default

    def _ref(self, index: int) -> int | None:
        at = self._field(index)
        return at + int(self.flat.read("<I", at, f"field {index} of {self.what}")) if at else None

    def table(self, index: int, what: str) -> _Table | None:
        at = self._ref(index)
        return None if at is None else self.flat.table(at, what)

    def span(self, index: int, itemsize: int) -> tuple[int, int]:
        """(start, count) of a vector field; (0, 0) when absent."""
        at = self._ref(index)
        if at is None:
            return 0, 0
        count = int(self.flat.read("<I", at, f"vector {index} of {self.what}"))
        self.flat.check(at + 4, count * itemsize, f"vector {index} of {self.what} ({count} items)")
        return at + 4, count

    def vector(self, index: int, fmt: str) -> tuple:
        start, count = self.span(index, struct.calcsize(fmt))
        return struct.unpack_from(f"<{count}{fmt}", self.flat.data, start) if count else ()

    def tables(self, index: int, what: str) -> list[_Table]:
        start, count = self.span(index, 4)
        return [
            self.flat.table(start + 4 * i + int(self.flat.read("<I", start + 4 * i, what)), f"{what} {i}")
            for i in range(count)
        ]

    def string(self, index: int) -> str:
        start, count = self.span(index, 1)
        return bytes(self.flat.data[start : start + count]).decode("utf-8", "replace")


@dataclass(frozen=True)
class _Tensor:
    shape: tuple[int, ...]
    type: int
    buffer: int
    name: str
    quant: _Table | None
    sparsity: _Table | None


@dataclass(frozen=True)
class _Op:
    index: int
    code: int
    custom: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: int
    options: _Table | None


def _read_span(path: Path, start: int, length: int) -> bytes:
    """`length` bytes at `start` of `path`, read through a memory map at load time."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if start + length > len(mm):
            raise CheckpointError(path, f"data at byte {start} (+{length}) runs past the end of the file")
        return mm[start : start + length]
