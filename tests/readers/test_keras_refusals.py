"""Keras files the reader refuses, each with one line naming the file and the reason: truncated files, links
and virtual or external datasets pointing outside the file, unallocated data, bad JSON, missing weights."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import pytest

from filterlake.errors import CheckpointError
from filterlake.readers.keras import read_keras_h5, read_keras_zip
from tests.readers.keras_models import W, layer_entry, model_config, write_keras2, write_keras3


def one_line(exc: pytest.ExceptionInfo[CheckpointError], path: Path, *words: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and text.startswith(str(path)), text
    for word in words:
        assert word in text, text


def _read(path: Path) -> None:
    reader = read_keras_zip if path.suffix == ".keras" else read_keras_h5
    for tensor in reader(path).tensors:
        tensor.load()


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_truncated(tmp_path: Path, suffix: str) -> None:
    full = write_keras2(tmp_path / "m.h5") if suffix == ".h5" else write_keras3(tmp_path / "m.keras")
    data = full.read_bytes()
    for cut in (0, 7, 100, 2048, len(data) // 3, len(data) // 2, len(data) - 600, len(data) - 1):
        path = tmp_path / f"cut{cut}{suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as exc:
            _read(path)
        one_line(exc, path)


def test_external_link(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["k"] = W["stem"]
    path = write_keras2(tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        del f["model_weights/stem/stem_4/kernel:0"]
        f["model_weights/stem/stem_4/kernel:0"] = h5py.ExternalLink(str(other), "k")
    with pytest.raises(CheckpointError) as exc:
        read_keras_h5(path)
    one_line(exc, path, "external link")


def test_virtual_dataset(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["k"] = W["stem"]
    path = write_keras2(tmp_path / "m.h5")
    layout = h5py.VirtualLayout(shape=W["stem"].shape, dtype="float32")
    layout[...] = h5py.VirtualSource(str(other), "k", shape=W["stem"].shape)
    with h5py.File(path, "a") as f:
        del f["model_weights/stem/stem_4/kernel:0"]
        f["model_weights/stem"].create_virtual_dataset("stem_4/kernel:0", layout)
    with pytest.raises(CheckpointError) as exc:
        read_keras_h5(path)
    one_line(exc, path, "virtual dataset")


def test_external_storage(tmp_path: Path) -> None:
    raw = tmp_path / "raw.bin"
    raw.write_bytes(W["stem"].tobytes())
    path = write_keras2(tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        del f["model_weights/stem/stem_4/kernel:0"]
        f["model_weights/stem"].create_dataset(
            "stem_4/kernel:0",
            shape=W["stem"].shape,
            dtype="float32",
            external=[(str(raw), 0, h5py.h5f.UNLIMITED)],
        )
    with pytest.raises(CheckpointError) as exc:
        read_keras_h5(path)
    one_line(exc, path, "external storage")


def test_unallocated_dataset(tmp_path: Path) -> None:
    """A dataset whose shape promises bytes that are not stored (chunked, no chunk written)."""
    path = write_keras2(tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        del f["model_weights/stem/stem_4/kernel:0"]
        f["model_weights/stem"].create_dataset(
            "stem_4/kernel:0", shape=(3, 3, 3, 4), dtype="float32", chunks=True
        )
    with pytest.raises(CheckpointError) as exc:
        read_keras_h5(path)
    one_line(exc, path, "needs 432 bytes but 0 are stored")


def test_bad_json_and_missing_weights(tmp_path: Path) -> None:
    path = write_keras2(tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = b'{"class_name": "Model", "config": {'
    with pytest.raises(CheckpointError) as exc:
        read_keras_h5(path)
    one_line(exc, path, "model_config is not valid JSON")

    path = write_keras2(tmp_path / "n.h5")
    with h5py.File(path, "a") as f:
        del f["model_weights/dw"]
    with pytest.raises(CheckpointError) as exc:
        read_keras_h5(path)
    one_line(exc, path, "layer dw (DepthwiseConv2D): weights missing")

    config = model_config(True)
    config["config"]["layers"].insert(
        1, layer_entry("extra", "Conv2D", {}, None, True)
    )  # shifts the counters
    bad = write_keras3(tmp_path / "m.keras", config)
    with pytest.raises(CheckpointError) as exc:
        read_keras_zip(bad)
    one_line(exc, bad, "layer half (Conv2D): weights missing at layers/conv2d_3/vars")

    bad_json = tmp_path / "j.keras"
    with zipfile.ZipFile(bad_json, "w") as z:
        z.writestr("config.json", "{nope")
        z.writestr("model.weights.h5", b"")
    with pytest.raises(CheckpointError) as exc:
        read_keras_zip(bad_json)
    one_line(exc, bad_json, "config.json is not valid JSON")


def test_sharded_manifest_without_weight_map_refused(tmp_path: Path) -> None:
    """A sharded archive is read (test_keras_sharded.py); one whose manifest maps no weights is refused."""
    path = tmp_path / "s.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(model_config(True)))
        z.writestr("model.weights.json", "{}")
        z.writestr("model_00000.weights.h5", b"")
    with pytest.raises(CheckpointError) as exc:
        read_keras_zip(path)
    one_line(exc, path, "sharded Keras weights")
    assert "no weight_map" in str(exc.value)
