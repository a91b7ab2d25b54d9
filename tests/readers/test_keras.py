"""Keras reader: Keras 2 legacy HDF5 and Keras 3 .keras zips built with h5py in the real layouts (no Keras)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from filterlake.errors import CheckpointError
from filterlake.extract import layer_filters, model_shape
from filterlake.readers.keras import read_keras_h5, read_keras_zip
from filterlake.readers.keras_config import to_snake_case

RNG = np.random.default_rng(7)


def arr(*shape: int, dtype: str = "float32") -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


# Kernels as Keras stores them: [*k, in/groups, out], depthwise [*k, in, dm].
W = {
    "stem": arr(3, 3, 3, 4),
    "grouped": arr(3, 3, 2, 6),  # groups=2: in 4
    "dw": arr(3, 3, 6, 2),  # 6 channels x depth multiplier 2
    "sep_dw": arr(3, 3, 12, 1),
    "sep_pw": arr(1, 1, 12, 8),
    "up": arr(3, 3, 5, 8),  # Conv2DTranspose [k, out, in]
    "c1": arr(3, 8, 4),
    "c3": arr(3, 3, 3, 4, 2),
    "half": arr(3, 3, 8, 5, dtype="float16"),
    "inner": arr(3, 3, 5, 7),
    "inner2": arr(3, 3, 7, 3),
}
LAYERS = [  # (name, class, weights, extra config)
    ("input_1", "InputLayer", [], {}),
    ("stem", "Conv2D", ["stem"], {}),
    ("grouped", "Conv2D", ["grouped"], {"groups": 2}),
    ("bn", "BatchNormalization", [], {}),
    ("dw", "DepthwiseConv2D", ["dw"], {"depth_multiplier": 2}),
    ("sep", "SeparableConv2D", ["sep_dw", "sep_pw"], {}),
    ("up", "Conv2DTranspose", ["up"], {}),
    ("c1", "Conv1D", ["c1"], {}),
    ("c3", "Conv3D", ["c3"], {}),
    ("half", "Conv2D", ["half"], {}),
]
INNER = [
    ("inner_in", "InputLayer", [], {}),
    ("inner", "Conv2D", ["inner"], {}),
    ("inner2", "Conv2D", ["inner2"], {}),
]
# 3x3 2-D conv filters by layer: stem 4x3, grouped 6x2, dw 12, sep 12, half 5x8, inner 7x5, inner2 3x7.
COUNTS = {"stem": 12, "grouped": 12, "dw": 12, "sep": 12, "half": 40, "base/inner": 35, "base/inner2": 21}


def expected(key: str, how: str = "conv") -> np.ndarray:
    """Canonical (n, 9) filters of a stored kernel."""
    k = W[key].astype(np.float32)
    if how == "depthwise":  # channel c, multiplier m -> output c*dm + m
        return np.stack([k[:, :, c, m].ravel() for c in range(k.shape[2]) for m in range(k.shape[3])])
    return np.stack([k[:, :, i, o].ravel() for o in range(k.shape[3]) for i in range(k.shape[2])])


def _entry(name: str, cls: str, extra: dict[str, Any], previous: str | None, keras3: bool) -> dict[str, Any]:
    config = {"name": name, "trainable": True, "dtype": "float32", **extra}
    if keras3:
        history = [
            {"class_name": "__keras_tensor__", "config": {"shape": [None], "keras_history": [previous, 0, 0]}}
        ]
        nodes = [] if previous is None else [{"args": history, "kwargs": {}}]
    else:
        nodes = [] if previous is None else [[[previous, 0, 0, {}]]]
    return {"class_name": cls, "config": config, "name": name, "inbound_nodes": nodes}


def model_config(keras3: bool, frozen_inner: bool = False, lambda_code: bool = False) -> dict[str, Any]:
    """A Functional model: LAYERS in a chain, then a nested Functional "base" holding INNER."""
    layers, previous = [], None
    for name, cls, _w, extra in LAYERS:
        layers.append(_entry(name, cls, extra, previous, keras3))
        previous = name
    inner, prev = [], None
    for name, cls, _w, extra in INNER:
        inner.append(_entry(name, cls, extra, prev, keras3))
        prev = name
    nested = _entry("base", "Functional", {}, previous, keras3)
    nested["config"].update({"layers": inner, "trainable": not frozen_inner})
    layers.append(nested)
    if lambda_code:
        layers.append(
            _entry("lam", "Lambda", {"function": "__import__('os').system('false')"}, "base", keras3)
        )
    return {"class_name": "Functional" if keras3 else "Model", "config": {"name": "m", "layers": layers}}


def write_keras2(path: Path, config: Any = None, optimizer: bool = True) -> Path:
    """Keras 2 legacy HDF5: root attrs, model_weights/<layer>/ with weight_names (uniquified prefixes)."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.3.0-tf"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(model_config(False) if config is None else config).encode()
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [n.encode() for n, *_ in LAYERS] + [b"base"]
        for name, _cls, weights, _extra in LAYERS:
            group = mw.create_group(name)
            names = [f"{name}_4/{'kernel' if i == 0 else 'pointwise_kernel'}:0" for i in range(len(weights))]
            if name == "sep":
                names = ["sep_4/depthwise_kernel:0", "sep_4/pointwise_kernel:0"]
            for wname, key in zip(names, weights, strict=True):
                group.create_dataset(wname, data=W[key])
            if weights:
                group.create_dataset(f"{name}_4/bias:0", data=np.zeros(3, "float32"))
            group.attrs["weight_names"] = [n.encode() for n in names]
        base = mw.create_group("base")
        base.attrs["weight_names"] = [b"inner/kernel:0", b"inner2_1/kernel:0"]
        base.create_dataset("inner/kernel:0", data=W["inner"])
        base.create_dataset("inner2_1/kernel:0", data=W["inner2"])
        if optimizer:
            f.create_dataset("optimizer_weights/Adam/stem_4/kernel/m:0", data=W["stem"])
    return path


def write_keras3(path: Path, config: Any = None, weights_member: bool = True) -> Path:
    """Keras 3 .keras zip: config.json, metadata.json, model.weights.h5 with layers/<snake>_N/vars/K."""
    h5 = path.with_suffix(".weights.h5")
    with h5py.File(h5, "w") as f:
        used: dict[str, int] = {}

        def store(prefix: str, layers: list[tuple[str, str, list[str], dict[str, Any]]]) -> dict[str, int]:
            counters: dict[str, int] = {}
            for _name, cls, weights, _extra in layers:
                snake = to_snake_case(cls)
                counters[snake] = counters.get(snake, -1) + 1
                stored = snake if counters[snake] == 0 else f"{snake}_{counters[snake]}"
                group = f.create_group(f"{prefix}/layers/{stored}/vars")
                for i, key in enumerate(weights):
                    group.create_dataset(str(i), data=W[key])
            return counters

        used = store("", LAYERS)
        store(f"/layers/functional{'_' + str(used['functional']) if 'functional' in used else ''}", INNER)
        f.create_group("vars")
        for i, key in enumerate(["stem", "stem", "dw", "dw"]):
            f.create_dataset(f"optimizer/vars/{i}", data=W[key])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3", "date_saved": "2024-01-01"}))
        z.writestr("config.json", json.dumps(model_config(True) if config is None else config))
        if weights_member:
            z.write(h5, "model.weights.h5")
    h5.unlink()
    return path


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


def _one_line(exc: pytest.ExceptionInfo[CheckpointError], path: Path, *words: str) -> None:
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
        _one_line(exc, path)


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
    _one_line(exc, path, "external link")


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
    _one_line(exc, path, "virtual dataset")


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
    _one_line(exc, path, "external storage")


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
    _one_line(exc, path, "needs 432 bytes but 0 are stored")


def test_bad_json_and_missing_weights(tmp_path: Path) -> None:
    path = write_keras2(tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = b'{"class_name": "Model", "config": {'
    with pytest.raises(CheckpointError) as exc:
        read_keras_h5(path)
    _one_line(exc, path, "model_config is not valid JSON")

    path = write_keras2(tmp_path / "n.h5")
    with h5py.File(path, "a") as f:
        del f["model_weights/dw"]
    with pytest.raises(CheckpointError) as exc:
        read_keras_h5(path)
    _one_line(exc, path, "layer dw (DepthwiseConv2D): weights missing")

    config = model_config(True)
    config["config"]["layers"].insert(1, _entry("extra", "Conv2D", {}, None, True))  # shifts the counters
    bad = write_keras3(tmp_path / "m.keras", config)
    with pytest.raises(CheckpointError) as exc:
        read_keras_zip(bad)
    _one_line(exc, bad, "layer half (Conv2D): weights missing at layers/conv2d_3/vars")

    bad_json = tmp_path / "j.keras"
    with zipfile.ZipFile(bad_json, "w") as z:
        z.writestr("config.json", "{nope")
        z.writestr("model.weights.h5", b"")
    with pytest.raises(CheckpointError) as exc:
        read_keras_zip(bad_json)
    _one_line(exc, bad_json, "config.json is not valid JSON")


def test_sharded_manifest_without_weight_map_refused(tmp_path: Path) -> None:
    """A sharded archive is read (test_keras_sharded.py); one whose manifest maps no weights is refused."""
    path = tmp_path / "s.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(model_config(True)))
        z.writestr("model.weights.json", "{}")
        z.writestr("model_00000.weights.h5", b"")
    with pytest.raises(CheckpointError) as exc:
        read_keras_zip(path)
    _one_line(exc, path, "sharded Keras weights")
    assert "no weight_map" in str(exc.value)


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
