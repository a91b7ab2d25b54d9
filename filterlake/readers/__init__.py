"""Checkpoint readers: detect a file's format by content and list its conv weights with lazy loaders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from filterlake.errors import CheckpointError
from filterlake.readers.base import Checkpoint, ConvTensor
from filterlake.readers.detect import describe, describe_unknown, recognise, sniff_format
from filterlake.readers.keras import read_keras_h5, read_keras_sharded, read_keras_zip
from filterlake.readers.onnx import read_onnx
from filterlake.readers.safetensors import read_safetensors
from filterlake.readers.tflite import read_tflite
from filterlake.readers.torch import read_torch

__all__ = ["Checkpoint", "ConvTensor", "open_checkpoint", "recognise", "sniff_format"]

_READERS: dict[str, Callable[[Path, str], Checkpoint]] = {
    "onnx": lambda path, _kind: read_onnx(path),
    "safetensors": read_safetensors,
    "safetensors-index": read_safetensors,
    "torch-zip": read_torch,
    "torchscript": read_torch,
    "torch-legacy": read_torch,
    "keras-h5": lambda path, _kind: read_keras_h5(path),
    "keras": lambda path, _kind: read_keras_zip(path),
    "keras-index": lambda path, _kind: read_keras_sharded(path),
    "tflite": lambda path, _kind: read_tflite(path),
}
_NAMES = {
    "onnx": "ONNX",
    "safetensors": "safetensors",
    "safetensors-index": "safetensors index",
    "torch-zip": "PyTorch zip",
    "torchscript": "TorchScript",
    "torch-legacy": "legacy PyTorch",
    "keras-h5": "Keras HDF5",
    "keras": "Keras 3 .keras",
    "keras-index": "Keras sharded weights manifest",
    "tflite": "TensorFlow Lite",
}


def open_checkpoint(path: Path) -> Checkpoint:
    """Open a checkpoint of any supported format; every unreadable or unsafe input raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    kind = sniff_format(path)
    if kind is None:
        raise CheckpointError(path, describe_unknown(path))
    try:
        return _READERS[kind](path, kind)
    except CheckpointError:
        raise
    except Exception as exc:  # untrusted bytes: any failure becomes a CheckpointError
        raise CheckpointError(path, f"unreadable {_NAMES[kind]} file: {describe(exc)}") from exc
