"""Keras reader: Keras 2 legacy HDF5 and Keras 3 .keras zips built with h5py in the real layouts (no Keras)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from filterlake.extract import layer_filters, model_shape
from filterlake.readers.keras import read_keras_h5, read_keras_zip
from filterlake.readers.keras_config import to_snake_case
from tests.readers.keras_models import COUNTS, W, expected, model_config, write_keras2, write_keras3


def check_model(checkpoint: Any) -> None:
    """Every class counted as formats.md says, exact filter values, optimizer state not counted."""
    shape = model_shape(checkpoint)
    assert {layer.layer_name: layer.n_filters for layer in shape.layers} == COUNTS
    assert dict(shape.skipped) == {"1x1": 1, "transposed": 1, "1d": 1, "3d": 1}
    assert checkpoint.depth_source == "graph" and shape.depth_source == "graph"
    by_name = {layer.layer_name: (layer, t) for layer, t in zip(shape.layers, shape.tensors, strict=True)}
    for name, key, how in [
        ("stem", "stem", "conv"),
        ("grouped", "grouped", "conv"),
        ("dw", "dw", "depthwise"),
        ("sep", "sep_dw", "depthwise"),
        ("half", "half", "conv"),
        ("base/inner", "inner", "conv"),
        ("base/inner2", "inner2", "conv"),
    ]:
        filters = layer_filters(*by_name[name])
        assert filters.dtype == np.float32 and filters.flags.c_contiguous
        np.testing.assert_array_equal(filters, expected(key, how))
    tensors = {t.name: t for t in checkpoint.tensors}
    assert tensors["dw"].shape == (12, 3, 3, 1) and tensors["dw"].groups == 6
    assert tensors["grouped"].groups == 2 and tensors["half"].dtype == "float16"
    assert tensors["up"].kind == "transposed" and tensors["sep.pointwise"].shape == (8, 1, 1, 12)
    np.testing.assert_array_equal(tensors["sep.pointwise"].load()[:, :, 0, 0], W["sep_pw"][0, 0].T)
    levels = [
        tensors[n].level for n in ("stem", "grouped", "dw", "sep", "sep.pointwise", "half", "base/inner")
    ]
    assert levels == sorted(levels) and len(set(levels)) == len(levels)


def test_keras2_legacy(tmp_path: Path) -> None:
    checkpoint = read_keras_h5(write_keras2(tmp_path / "m.h5"))
    assert (checkpoint.format, checkpoint.load_method, checkpoint.files) == (
        "keras-h5",
        "h5py",
        [tmp_path / "m.h5"],
    )
    check_model(checkpoint)


def test_keras2_config_as_fixed_bytes(tmp_path: Path) -> None:
    """h5py gives a fixed-length string attribute back as bytes (a variable-length one as str)."""
    path = write_keras2(tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = np.bytes_(f.attrs["model_config"].encode())
        assert isinstance(f.attrs["model_config"], bytes)
    check_model(read_keras_h5(path))


def test_keras3_zip(tmp_path: Path) -> None:
    path = write_keras3(tmp_path / "m.keras")
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    checkpoint = read_keras_zip(path)
    assert (checkpoint.format, checkpoint.files) == ("keras", [path])
    check_model(checkpoint)


def test_keras3_compressed_member(tmp_path: Path) -> None:
    """A deflated weights member (small) is read through an in-memory copy."""
    path = write_keras3(tmp_path / "m.keras")
    redone = tmp_path / "deflated.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(redone, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    check_model(read_keras_zip(redone))


def test_trainable(tmp_path: Path) -> None:
    """Each tensor carries its layer's effective flag: False inside a frozen nested model, pointwise halves too."""
    path = write_keras3(tmp_path / "m.keras", model_config(True, frozen_inner=True))
    flags = {t.name: t.trainable for t in read_keras_zip(path).tensors}
    assert flags["stem"] is True and flags["base/inner"] is False and flags["base/inner2"] is False
    assert all(v is False for k, v in flags.items() if k.startswith("base/inner"))
    h5 = write_keras2(tmp_path / "m.h5")
    flags = {t.name: t.trainable for t in read_keras_h5(h5).tensors}
    assert "base/inner" in flags and all(v is True for v in flags.values())


def test_lambda_is_never_evaluated(tmp_path: Path) -> None:
    path = write_keras3(tmp_path / "m.keras", model_config(True, lambda_code=True))
    check_model(read_keras_zip(path))


def test_save_weights_without_config(tmp_path: Path) -> None:
    """No model_config: every 4-D dataset by shape, kind unknown, optimizer_weights skipped."""
    path = write_keras2(tmp_path / "w.h5")
    with h5py.File(path, "a") as f:
        del f.attrs["model_config"]
    checkpoint = read_keras_h5(path)
    assert all(t.kind == "unknown" for t in checkpoint.tensors)
    names = sorted(t.name for t in checkpoint.tensors)
    assert names == sorted(
        [
            "base/inner/kernel",
            "base/inner2_1/kernel",
            "dw/dw_4/kernel",
            "grouped/grouped_4/kernel",
            "half/half_4/kernel",
        ]
        + ["sep/sep_4/depthwise_kernel", "sep/sep_4/pointwise_kernel", "stem/stem_4/kernel", "up/up_4/kernel"]
    )
    tensor = next(t for t in checkpoint.tensors if t.name == "stem/stem_4/kernel")
    np.testing.assert_array_equal(tensor.load().reshape(-1, 9), expected("stem"))
    assert checkpoint.depth_source == "definition_order" and checkpoint.notes


def test_snake_case() -> None:
    assert [
        to_snake_case(c) for c in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")
    ] == [
        "conv2d",
        "separable_conv2d",
        "depthwise_conv2d",
        "conv2d_transpose",
    ]
    assert to_snake_case("BatchNormalization") == "batch_normalization"
