"""The hostile-input tests of test_hostile.py, for the Keras and TFLite readers: every sampled prefix and flipped
byte of real-layout fixtures is refused in one line naming the file or read correctly, random bytes behind each
format's signature never escape as another error, and random small kernels read back exactly."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint
from tests.readers.keras_models import write_keras2, write_keras3
from tests.readers.test_hostile import read_everything
from tests.readers.test_tflite import _ops, _tensors
from tests.readers.tflite_fixtures import Model, Op, Tensor, build

CONV_2D, DEQUANTIZE = 3, 6
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def fixtures(folder: Path) -> list[Path]:
    """A Keras 2 HDF5, a Keras 3 archive and a TFLite file with every layer class the readers know."""
    folder.mkdir(exist_ok=True)
    tflite = folder / "model.tflite"
    tflite.write_bytes(build(Model(_tensors(), _ops(), [0], [23])))
    return [write_keras2(folder / "model.h5"), write_keras3(folder / "model.keras"), tflite]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    return fixtures(tmp_path_factory.mktemp("fixtures"))


def one_line(exc: CheckpointError, path: Path) -> None:
    assert str(exc).startswith(str(path)) and "\n" not in str(exc), str(exc)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["keras-h5", "keras", "tflite"])
def test_every_sampled_prefix_is_refused(files: list[Path], tmp_path: Path, index: int) -> None:
    data = files[index].read_bytes()
    rng = random.Random(index)
    for length in sorted(
        {0, 1, 7, 8, 64, 511, len(data) // 2, len(data) - 1, *(rng.randrange(len(data)) for _ in range(20))}
    ):
        path = tmp_path / f"cut{files[index].suffix}"
        path.write_bytes(data[:length])
        with pytest.raises(CheckpointError) as exc:
            read_everything(path)
        one_line(exc.value, path)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["keras-h5", "keras", "tflite"])
def test_flipped_bytes_are_refused_or_read(files: list[Path], tmp_path: Path, index: int) -> None:
    data = files[index].read_bytes()
    rng = random.Random(index)
    for _ in range(25):
        broken = bytearray(data)
        for _ in range(rng.choice((1, 4, 32))):
            broken[rng.randrange(len(broken))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip{files[index].suffix}"
        path.write_bytes(bytes(broken))
        try:
            read_everything(path)  # a flip inside weight data is still a readable file
        except CheckpointError as exc:
            one_line(exc, path)


def zip_with(members: dict[str, bytes]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


MAGICS = [
    HDF5_SIGNATURE,
    HDF5_SIGNATURE + b"\0" * 8,
    b"\x1c\x00\x00\x00TFL3",
    b"\x18\x00\x00\x00TFL3\x00\x00\x0e\x00",
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    magic=st.sampled_from(MAGICS),
    body=st.binary(max_size=600),
    suffix=st.sampled_from([".h5", ".tflite", ""]),
)
def test_random_bytes_behind_a_signature_never_escape(
    tmp_path: Path, magic: bytes, body: bytes, suffix: str
) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(magic + body)
    try:
        read_everything(path)
    except CheckpointError as exc:
        one_line(exc, path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.binary(max_size=300), weights=st.binary(max_size=300))
def test_random_keras_archive_members_never_escape(tmp_path: Path, config: bytes, weights: bytes) -> None:
    path = tmp_path / "random.keras"
    path.write_bytes(zip_with({"config.json": config, "model.weights.h5": HDF5_SIGNATURE + weights}))
    try:
        read_everything(path)
    except CheckpointError as exc:
        one_line(exc, path)


def keras3_one_conv(path: Path, kernel: np.ndarray) -> None:
    """A Keras 3 archive with one Conv2D whose kernel is [k, k, in, out]."""
    layers = [
        {"class_name": "InputLayer", "config": {"name": "x"}, "name": "x", "inbound_nodes": []},
        {
            "class_name": "Conv2D",
            "config": {"name": "c", "trainable": True},
            "name": "c",
            "inbound_nodes": [],
        },
    ]
    weights = path.with_suffix(".weights.h5")
    with h5py.File(weights, "w") as f:
        f.create_dataset("layers/conv2d/vars/0", data=kernel)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "config.json", json.dumps({"class_name": "Functional", "config": {"name": "m", "layers": layers}})
        )
        z.write(weights, "model.weights.h5")
    weights.unlink()


def tflite_one_conv(path: Path, kernel: np.ndarray) -> None:
    """A TFLite CONV_2D with an OHWI weight; fp16 weights sit behind a DEQUANTIZE, as converters write them."""
    o, i = kernel.shape[0], kernel.shape[-1]
    if kernel.dtype == np.float16:
        tensors = [
            Tensor("x", (1, 8, 8, i)),
            Tensor("w16", kernel.shape, kernel, "float16"),
            Tensor("w", kernel.shape),
            Tensor("y", (1, 8, 8, o)),
        ]
        ops = [Op(DEQUANTIZE, [1], [2]), Op(CONV_2D, [0, 2], [3])]
        path.write_bytes(build(Model(tensors, ops, [0], [3])))
    else:
        tensors = [Tensor("x", (1, 8, 8, i)), Tensor("w", kernel.shape, kernel), Tensor("y", (1, 8, 8, o))]
        path.write_bytes(build(Model(tensors, [Op(CONV_2D, [0, 1], [2])], [0], [2])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    out=st.integers(1, 6),
    inp=st.integers(1, 4),
    k=st.sampled_from([1, 3, 5]),
    dtype=st.sampled_from(["float32", "float16"]),
    fmt=st.sampled_from(["keras", "tflite"]),
    seed=st.integers(0, 2**16),
)
def test_random_small_kernels_read_back_exactly(
    tmp_path: Path, out: int, inp: int, k: int, dtype: str, fmt: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    canonical = rng.standard_normal((out, inp, k, k)).astype(dtype)  # (O, I, kH, kW)
    path = tmp_path / f"w.{fmt}"
    if fmt == "keras":
        keras3_one_conv(path, canonical.transpose(2, 3, 1, 0))
    else:
        tflite_one_conv(path, canonical.transpose(0, 2, 3, 1))
    [tensor] = open_checkpoint(path).tensors
    assert tensor.shape == (out, k, k, inp) and tensor.layout == "OHWI"
    np.testing.assert_array_equal(tensor.load(), canonical.astype(np.float32))
