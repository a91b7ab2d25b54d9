"""One set of weights written as PyTorch, safetensors, ONNX, Keras 2, Keras 3 and TFLite files: every format
gives the same filters and the same `weights_sha256`, computed here independently with hashlib."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

from filterlake.ingest import ingest
from filterlake.lake.duck import connect
from filterlake.numeric.weights_digest import LayerDigest, weights_sha256
from filterlake.vocab import INGESTED
from tests.readers.keras_models import layer_entry
from tests.readers.tflite_fixtures import Model, Op, Tensor, build

RNG = np.random.default_rng(12)
A = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)  # conv 3 -> 4, OIHW
B = RNG.standard_normal((4, 1, 3, 3)).astype(np.float32)  # depthwise over 4 channels
C = RNG.standard_normal((2, 4, 3, 3)).astype(np.float32)  # conv 4 -> 2
LAYERS = [("a", A), ("b", B), ("c", C)]


def independent_sha256() -> str:
    """The documented rule, by hand: sha256 of the sorted per-layer sha256 of "<out> <in>\\n" + float32 LE."""
    layers = sorted(
        hashlib.sha256(f"{w.shape[0]} {w.shape[1]}\n".encode() + w.astype("<f4").tobytes()).hexdigest()
        for _, w in LAYERS
    )
    return hashlib.sha256("\n".join(layers).encode()).hexdigest()


def write_torch(path: Path) -> None:
    torch.save({f"{name}.weight": torch.from_numpy(w) for name, w in LAYERS}, path)


def write_safetensors(path: Path) -> None:
    save_file({f"{name}.weight": w for name, w in LAYERS}, str(path))


def write_onnx(path: Path) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "a.weight"], ["ya"], kernel_shape=[3, 3]),
        helper.make_node("Conv", ["ya", "b.weight"], ["yb"], kernel_shape=[3, 3], group=4),
        helper.make_node("Conv", ["yb", "c.weight"], ["y"], kernel_shape=[3, 3]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, f"{name}.weight") for name, w in LAYERS],
    )
    onnx.save(helper.make_model(graph), path)


def keras_kernels() -> dict[str, np.ndarray]:
    """Keras layouts: Conv2D [kH, kW, in, out], DepthwiseConv2D [kH, kW, in, depth multiplier]."""
    return {
        "a": A.transpose(2, 3, 1, 0),
        "b": B.transpose(2, 3, 0, 1),  # [c, 1, kh, kw] -> [kh, kw, c, 1]
        "c": C.transpose(2, 3, 1, 0),
    }


def keras_layers(keras3: bool) -> list[dict]:
    classes = [("input", "InputLayer"), ("a", "Conv2D"), ("b", "DepthwiseConv2D"), ("c", "Conv2D")]
    out, previous = [], None
    for name, cls in classes:
        out.append(layer_entry(name, cls, {}, previous, keras3))
        previous = name
    return out


def write_keras2(path: Path) -> None:
    config = {"class_name": "Model", "config": {"name": "m", "layers": keras_layers(False)}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.3.0-tf"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        weights = f.create_group("model_weights")
        for name, kernel in keras_kernels().items():
            group = weights.create_group(name)
            wname = f"{name}/{'depthwise_kernel' if name == 'b' else 'kernel'}:0"
            group.create_dataset(wname, data=kernel)
            group.attrs["weight_names"] = [wname.encode()]


def write_keras3(path: Path, tmp: Path) -> None:
    config = {"class_name": "Functional", "config": {"name": "m", "layers": keras_layers(True)}}
    h5 = tmp / "model.weights.h5"
    stored = {"a": "conv2d", "b": "depthwise_conv2d", "c": "conv2d_1"}  # Keras 3's class counters
    with h5py.File(h5, "w") as f:
        for name, kernel in keras_kernels().items():
            f.create_dataset(f"layers/{stored[name]}/vars/0", data=kernel)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
        z.writestr("config.json", json.dumps(config))
        z.write(h5, "model.weights.h5")


def write_tflite(path: Path) -> None:
    """CONV_2D weights OHWI, DEPTHWISE_CONV_2D weights [1, H, W, channels]."""
    tensors = [
        Tensor("x", (1, 16, 16, 3)),
        Tensor("a", (4, 3, 3, 3), A.transpose(0, 2, 3, 1)),
        Tensor("ya", (1, 16, 16, 4)),
        Tensor("b", (1, 3, 3, 4), B.transpose(1, 2, 3, 0)),
        Tensor("yb", (1, 16, 16, 4)),
        Tensor("c", (2, 3, 3, 4), C.transpose(0, 2, 3, 1)),
        Tensor("y", (1, 16, 16, 2)),
    ]
    ops = [Op(3, [0, 1], [2]), Op(4, [2, 3], [4]), Op(3, [4, 5], [6])]
    path.write_bytes(build(Model(tensors, ops, [0], [6])))


def test_every_format_gives_the_same_filters_and_digest(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    write_torch(folder / "net.pt")
    write_safetensors(folder / "net.safetensors")
    write_onnx(folder / "net.onnx")
    write_keras2(folder / "net.h5")
    write_keras3(folder / "net.keras", tmp_path)
    write_tflite(folder / "net.tflite")
    lake = tmp_path / "lake"
    outcomes = ingest([str(folder)], lake)
    assert [o.status for o in outcomes] == [INGESTED] * 6, [o.message for o in outcomes]
    con = connect(lake)
    rows = con.execute("SELECT format, weights_sha256 FROM models ORDER BY format").fetchall()
    assert [r[0] for r in rows] == ["keras", "keras-h5", "onnx", "safetensors", "tflite", "torch-state-dict"]
    assert {r[1] for r in rows} == {independent_sha256()}
    expected = np.concatenate([w.reshape(-1, 9) for _, w in LAYERS])
    for (model_id,) in con.execute("SELECT model_id FROM models").fetchall():
        stored = con.execute(
            "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? "
            "ORDER BY layer_idx, filter_idx",
            [model_id],
        ).fetchnumpy()
        np.testing.assert_array_equal(np.column_stack([stored[f"w{i}"] for i in range(9)]), expected)
    group = con.execute("SELECT n_models, kept_model_id, model_ids FROM duplicate_weights").fetchall()
    assert len(group) == 1 and group[0][0] == 6 and group[0][1] == min(group[0][2])


def test_digest_is_independent_of_blocks_and_layer_order() -> None:
    def layer(w: np.ndarray, blocks: int) -> str:
        digest = LayerDigest(w.shape[0], w.shape[1])
        for block in np.array_split(w.reshape(-1, 9), blocks):
            digest.update(block.astype(np.float64))  # any float dtype: hashed as float32
        return digest.hexdigest()

    whole = weights_sha256(layer(w, 1) for _, w in LAYERS)
    assert whole == independent_sha256()
    assert weights_sha256(layer(w, 3) for _, w in reversed(LAYERS)) == whole
    assert weights_sha256([]) is None


def test_one_ulp_or_another_shape_changes_the_digest() -> None:
    def digest(shape: tuple[int, int], filters: np.ndarray) -> str:
        layer = LayerDigest(*shape)
        layer.update(filters)
        return layer.hexdigest()

    reference = digest((4, 3), A.reshape(-1, 9))
    assert digest((4, 3), np.nextafter(A, np.float32(9)).reshape(-1, 9)) != reference
    assert digest((3, 4), A.reshape(-1, 9)) != reference  # same values, another layer shape
    assert digest((4, 3), A.reshape(-1, 9).copy()) == reference
