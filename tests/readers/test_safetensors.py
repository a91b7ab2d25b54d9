"""safetensors reader: dtypes, channel-last (MLX) layout vote, sharded indexes and header validation."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint, sniff_format

RNG = np.random.default_rng(0)
STATE = {
    "features.10.conv.weight": torch.randn(16, 8, 3, 3),
    "features.2.conv.weight": torch.randn(8, 3, 3, 3),
    "features.2.bn.weight": torch.randn(8),
    "stem.weight": torch.randn(4, 4, 5),
    "head.weight": torch.randn(2, 16),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_dtypes(tmp_path: Path, dtype: torch.dtype) -> None:
    """Conv-like tensors in natural name order, stored dtype recorded, values exact as float32."""
    state = {k: v.to(dtype) for k, v in STATE.items()}
    save_torch(state, str(tmp_path / "model.safetensors"))
    checkpoint = open_checkpoint(tmp_path / "model.safetensors")
    assert (checkpoint.format, checkpoint.load_method, checkpoint.files) == (
        "safetensors",
        "safetensors",
        [tmp_path / "model.safetensors"],
    )
    assert [(t.name, t.layout, t.kind) for t in checkpoint.tensors] == [
        ("features.2.conv", "OIHW", "unknown"),
        ("features.10.conv", "OIHW", "unknown"),
        ("stem", "OIW", "unknown"),
    ]
    for tensor in checkpoint.tensors:
        want = state[tensor.name + ".weight"]
        assert tensor.dtype == str(dtype).removeprefix("torch.")
        np.testing.assert_array_equal(tensor.load(), want.float().numpy())


MLX = {
    "conv1.weight": RNG.standard_normal((16, 3, 3, 3)),
    "conv2.weight": RNG.standard_normal((32, 3, 3, 16)),
    "fc.weight": RNG.standard_normal((10, 32)),
}


@pytest.mark.parametrize(
    ("tensors", "metadata", "layout"),
    [
        (MLX, None, "OHWI"),
        ({"conv1.weight": MLX["conv1.weight"]}, None, "OIHW"),  # ambiguous alone: channel-first by default
        ({"conv1.weight": MLX["conv1.weight"]}, {"format": "mlx"}, "OHWI"),
        ({**MLX, "conv3.weight": RNG.standard_normal((8, 16, 3, 3))}, None, "OIHW"),  # conflicting: no flip
    ],
)
def test_channel_last_vote(
    tmp_path: Path, tensors: dict[str, np.ndarray], metadata: dict | None, layout: str
) -> None:
    """MLX [out, kH, kW, in] weights are detected per file and returned as OIHW."""
    arrays = {k: v.astype(np.float32) for k, v in tensors.items()}
    save_numpy(arrays, str(tmp_path / "m.safetensors"), metadata=metadata)
    checkpoint = open_checkpoint(tmp_path / "m.safetensors")
    assert {t.layout for t in checkpoint.tensors} == {layout}
    for tensor in checkpoint.tensors:
        stored = arrays[tensor.name + ".weight"]
        want = stored.transpose(0, 3, 1, 2) if layout == "OHWI" else stored
        np.testing.assert_array_equal(tensor.load(), want)
        assert tensor.kernel == want.shape[2:]


def _shards(tmp_path: Path, shard_of: dict[str, str]) -> Path:
    """Write STATE split into shards and its index; return the index path."""
    for shard in dict.fromkeys(shard_of.values()):
        save_torch({k: v for k, v in STATE.items() if shard_of[k] == shard}, str(tmp_path / shard))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": shard_of}))
    return index


def test_sharded(tmp_path: Path) -> None:
    """A 2-shard checkpoint opens through its index; files are the index then the shards in first-use order."""
    shard_of = {k: "b.safetensors" if "10" in k else "a.safetensors" for k in STATE}  # b is used first
    index = _shards(tmp_path, shard_of)
    assert sniff_format(index) == "safetensors-index"
    checkpoint = open_checkpoint(index)
    assert checkpoint.files == [index, tmp_path / "b.safetensors", tmp_path / "a.safetensors"]
    assert [t.name for t in checkpoint.tensors] == ["features.2.conv", "features.10.conv", "stem"]
    for tensor in checkpoint.tensors:
        np.testing.assert_array_equal(tensor.load(), STATE[tensor.name + ".weight"].numpy())


def _raw(header: dict, data: bytes, length_delta: int = 0) -> bytes:
    """A hand-made safetensors file."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) + length_delta) + text + data


F32 = {"dtype": "F32", "shape": [2, 1, 3, 3], "data_offsets": [0, 72]}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_raw({"w": {**F32, "shape": [2, 2, 3, 3]}}, bytes(72)), "needs 144 bytes but data_offsets span 72"),
        (_raw({"w": {**F32, "data_offsets": [0, 80]}}, bytes(72)), "invalid for a 72-byte data section"),
        (_raw({"w": F32}, bytes(72), length_delta=10_000), "header length"),
        (_raw({"w": {**F32, "shape": [-2, 1, 3, 3]}}, bytes(72)), "invalid"),
        (_raw({"w": {"dtype": "F32"}}, bytes(72)), "malformed header entry"),
        (_raw({"w": F32}, bytes(72))[:-20], "invalid for a 52-byte data section"),
        (b"\x05\0\0\0\0\0\0\0{oops" + bytes(8), "not valid JSON"),
    ],
    ids=[
        "shape-vs-bytes",
        "offsets-past-end",
        "header-too-long",
        "negative-dim",
        "no-offsets",
        "truncated",
        "bad-json",
    ],
)
def test_bad_headers(tmp_path: Path, content: bytes, reason: str) -> None:
    """Headers that disagree with the bytes are refused with a CheckpointError."""
    (tmp_path / "m.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match=reason):
        open_checkpoint(tmp_path / "m.safetensors")


@pytest.mark.parametrize(
    ("shard_of", "reason"),
    [
        ({k: "../outside.safetensors" for k in STATE}, "not a plain path inside"),
        ({k: "missing.safetensors" for k in STATE}, "missing file"),
    ],
)
def test_bad_index(tmp_path: Path, shard_of: dict[str, str], reason: str) -> None:
    """Shards outside the index's folder or missing are refused."""
    folder = tmp_path / "model"
    folder.mkdir()
    save_torch(STATE, str(tmp_path / "outside.safetensors"))
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": shard_of}))
    with pytest.raises(CheckpointError, match=reason):
        open_checkpoint(index)


def test_index_naming_absent_tensor(tmp_path: Path) -> None:
    """A weight_map entry its shard does not hold is refused."""
    index = _shards(tmp_path, {k: "a.safetensors" for k in STATE})
    data = json.loads(index.read_text())
    data["weight_map"]["ghost.weight"] = "a.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="ghost.weight"):
        open_checkpoint(index)


def test_mlp_has_no_conv_tensors(corpus: Path) -> None:
    """dfdx MNIST MLP (2-D and 1-D tensors only): readable, nothing yielded."""
    checkpoint = open_checkpoint(corpus / "dfdx_mnist_mlp/mnist.safetensors")
    assert checkpoint.tensors == [] and checkpoint.format == "safetensors"


@pytest.mark.network
def test_chess_cv_needs_the_vote(zoo, fetch_zoo) -> None:
    """chess-cv pieces: the naive "last two dims are 3x3" rule finds 1 layer, the per-file vote all 3."""
    checkpoint = open_checkpoint(fetch_zoo(zoo["pieces.safetensors"]))
    assert sum(1 for t in checkpoint.tensors if t.shape[-2:] == (3, 3)) == 1
    assert [(t.layout, t.kernel, t.load().shape) for t in checkpoint.tensors] == [
        ("OHWI", (3, 3), (16, 3, 3, 3)),
        ("OHWI", (3, 3), (32, 16, 3, 3)),
        ("OHWI", (3, 3), (64, 32, 3, 3)),
    ]
