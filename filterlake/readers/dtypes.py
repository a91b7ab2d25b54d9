"""Tensor dtypes of PyTorch storages and their numpy equivalents, and the widening to float32 of half types."""

from __future__ import annotations

import numpy as np

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
