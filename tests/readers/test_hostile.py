"""Hostile and broken inputs: every reader answers with a CheckpointError or a correct read, nothing else."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
SAMPLES = [
    "mtcnn/pnet.pt",
    "unet2d_fixed_shape/weights.pt",
    "ultraface_rfb320/version-RFB-320.onnx",
    "dfdx_mnist_mlp/mnist.safetensors",
    "unet2d_nuclei_broad/weights.pt",
    "vdsr/model_epoch_50.pth",
]


def read_everything(path: Path) -> int:
    """Open a file and load every tensor; returns the number of values read."""
    checkpoint = open_checkpoint(path)
    return sum(t.load().size for t in checkpoint.tensors)


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sampled_prefix_is_refused(tmp_path, name):
    data = (CORPUS / name).read_bytes()
    rng = random.Random(name)
    lengths = sorted(
        {0, 1, 7, 8, 64, 511, len(data) // 2, len(data) - 1, *(rng.randrange(len(data)) for _ in range(20))}
    )
    for length in lengths:
        path = tmp_path / f"cut{Path(name).suffix}"
        path.write_bytes(data[:length])
        with pytest.raises(CheckpointError, match=str(path)):
            read_everything(path)


@pytest.mark.parametrize("name", SAMPLES)
def test_flipped_bytes_are_refused_or_read(tmp_path, name):
    data = bytearray((CORPUS / name).read_bytes())
    rng = random.Random(name)
    for _ in range(25):
        broken = bytearray(data)
        for _ in range(rng.choice((1, 4, 32))):
            broken[rng.randrange(len(broken))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip{Path(name).suffix}"
        path.write_bytes(bytes(broken))
        try:
            read_everything(path)  # a flip inside tensor data is still a readable file
        except CheckpointError as exc:
            assert str(exc).startswith(str(path)) and "\n" not in str(exc)


MAGICS = [
    b"",
    b"PK\x03\x04",
    b"\x80\x02",
    b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.",
    b"\x08\x07\x12",
    struct.pack("<Q", 40) + b'{"w": {"dtype": "F32", "shape": [4, 1, 3, 3], "data_offsets": [0, 144]}}',
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    magic=st.sampled_from(MAGICS),
    body=st.binary(max_size=600),
    suffix=st.sampled_from([".pt", ".onnx", ".safetensors", ""]),
)
def test_random_bytes_never_escape_as_other_errors(tmp_path, magic, body, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(magic + body)
    try:
        read_everything(path)
    except CheckpointError:
        pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    out=st.integers(1, 6),
    inp=st.integers(1, 4),
    k=st.sampled_from([1, 3, 5]),
    dtype=st.sampled_from(["float32", "float16", "bfloat16"]),
    fmt=st.sampled_from(["torch", "safetensors"]),
    seed=st.integers(0, 2**16),
)
def test_random_small_tensors_read_back_exactly(tmp_path, out, inp, k, dtype, fmt, seed):
    weight = torch.randn(out, inp, k, k, generator=torch.Generator().manual_seed(seed)).to(
        getattr(torch, dtype)
    )
    path = tmp_path / f"w.{fmt}"
    if fmt == "torch":
        torch.save({"conv.weight": weight}, path)
    else:
        from safetensors.torch import save_file as save_torch

        save_torch({"conv.weight": weight}, str(path))
    [tensor] = open_checkpoint(path).tensors
    assert tensor.shape == (out, inp, k, k) and tensor.dtype == dtype
    np.testing.assert_array_equal(tensor.load(), weight.float().numpy())


def test_zip_bomb_is_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(4, 4, 3, 3)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w") as bomb:
        for info in source.infolist():
            bomb.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_STORED)
        bomb.writestr("archive/data/huge", b"\0" * (64 << 20), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="zip bomb"):
        open_checkpoint(path)


def test_declared_shape_larger_than_the_bytes_is_refused(tmp_path):
    path = tmp_path / "lie.safetensors"
    save_file({"conv.weight": np.ones((4, 1, 3, 3), np.float32)}, str(path))
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = data[8 : 8 + n].replace(b"[4,1,3,3]", b"[9,1,3,3]")
    path.write_bytes(struct.pack("<Q", len(header)) + header + data[8 + n :])
    with pytest.raises(CheckpointError):
        read_everything(path)


def test_absurd_dimensions_are_refused(tmp_path):
    path = tmp_path / "huge.safetensors"
    header = b'{"w":{"dtype":"F32","shape":[1000000000,1000000000,3,3],"data_offsets":[0,144]}}'
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 144)
    with pytest.raises(CheckpointError):
        read_everything(path)


def test_directory_named_like_a_checkpoint(tmp_path):
    (tmp_path / "model.pt").mkdir()
    with pytest.raises(CheckpointError, match="model.pt"):
        open_checkpoint(tmp_path / "model.pt")
