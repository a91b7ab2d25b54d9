"""The demo catalog's real Keras and TFLite files: the lake's filters equal an independent read of each file,
bit for bit (h5py for Keras; the `tflite` reference flatbuffer bindings for TFLite, fp16 widened to float32),
the frozen backbone is recorded, and the two byte-different seg-for-4modalities files with one set of weights
form one duplicate set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from filterlake.lake.duck import connect
from filterlake.sources.catalog import load_catalog
from tests.conftest import REPO
from tests.layer_keys import layer_key, stored_layers

pytestmark = pytest.mark.network
CATALOG = REPO / "catalog" / "pypi_zoo.toml"


def lake_layers(lake: Path, name: str) -> Counter:
    con = connect(lake)
    (model_id,) = con.execute("SELECT model_id FROM models WHERE name = ?", [name]).fetchone()
    return stored_layers(con, model_id)


def member_file(name: str) -> Path:
    entry = next(e for e in load_catalog(CATALOG) if e.metadata.get("name") == name)
    (path,) = (REPO / ".cache" / "zoo").glob(f"*/{entry.source['member']}")
    return path


def keras_layers(h5: h5py.Group, skip: str) -> Counter:
    """Every 3x3 2-D kernel dataset outside the optimizer's group, as Keras stores it: conv [3, 3, in, out]
    (filter o*in + i), depthwise [3, 3, c, dm] (filter c*dm + m, in 1), told apart by the dataset's name."""
    out: Counter = Counter()

    def visit(where: str, obj) -> None:
        if (
            not isinstance(obj, h5py.Dataset)
            or where.startswith(skip)
            or obj.ndim != 4
            or obj.shape[:2] != (3, 3)
        ):
            return
        k = obj[()].astype(np.float32)
        if "depthwise" in where or where.endswith("vars/0") and "separable" in where:
            filters = np.stack([k[:, :, c, m].ravel() for c in range(k.shape[2]) for m in range(k.shape[3])])
            out[layer_key(filters, k.shape[2] * k.shape[3], 1)] += 1
        else:
            filters = np.stack([k[:, :, i, o].ravel() for o in range(k.shape[3]) for i in range(k.shape[2])])
            out[layer_key(filters, k.shape[3], k.shape[2])] += 1

    h5.visititems(visit)
    return out


@pytest.mark.parametrize(
    "name",
    [
        "seg-for-4modalities U-Net model156 scan",
        "seg-for-4modalities U-Net 156mice noregwarp",
        "seg-for-4modalities U-Net model156 nosearch",
    ],
)
def test_keras2_filters_equal_h5py(zoo_lake: Path, name: str) -> None:
    with h5py.File(member_file(name), "r") as h5:
        assert keras_layers(h5["model_weights"], "optimizer") == lake_layers(zoo_lake, name)


def test_keras3_filters_equal_h5py_and_the_backbone_is_frozen(zoo_lake: Path) -> None:
    import io
    import zipfile

    name = "pneumonia Xception (frozen ImageNet backbone)"
    with (
        zipfile.ZipFile(member_file(name)) as z,
        h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5,
    ):
        expected = keras_layers(h5, "optimizer")
    assert sum(expected.values()) == 36 and expected == lake_layers(zoo_lake, name)
    frozen = (
        connect(zoo_lake)
        .execute(
            "SELECT count_if(NOT l.trainable), count(*) FROM layers l JOIN models m USING (model_id) WHERE m.name = ?",
            [name],
        )
        .fetchone()
    )
    assert frozen == (36, 36)


def tflite_layers(path: Path) -> Counter:
    """CONV_2D (OHWI) and DEPTHWISE_CONV_2D ([1, H, W, O]) 3x3 weights through the reference bindings,
    following a DEQUANTIZE producer to its fp16 constant."""
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    codes = [
        max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
        for i in range(model.OperatorCodesLength())
    ]
    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    producer = {op.Outputs(0): op for op in ops}
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16}

    def constant(index: int) -> np.ndarray:
        tensor = graph.Tensors(index)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int):  # empty buffer: the weight is an op's output
            op = producer[index]
            assert codes[op.OpcodeIndex()] == tflite.BuiltinOperator.DEQUANTIZE
            return constant(op.Inputs(0))
        return np.frombuffer(data.tobytes(), dtypes[tensor.Type()]).reshape(tensor.ShapeAsNumpy())

    out: Counter = Counter()
    for op in ops:
        code = codes[op.OpcodeIndex()]
        if code not in (tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.DEPTHWISE_CONV_2D):
            continue
        w = constant(op.Inputs(1)).astype(np.float32)
        if tuple(w.shape[1:3]) != (3, 3):
            continue
        if code == tflite.BuiltinOperator.CONV_2D:
            filters = np.stack([w[o, :, :, i].ravel() for o in range(w.shape[0]) for i in range(w.shape[3])])
            out[layer_key(filters, w.shape[0], w.shape[3])] += 1
        else:
            out[layer_key(np.stack([w[0, :, :, o].ravel() for o in range(w.shape[3])]), w.shape[3], 1)] += 1
    return out


@pytest.mark.parametrize(
    "name",
    [
        "MediaPipe BlazeFace short range",
        "MediaPipe FaceMesh landmarks",
        "MediaPipe hand landmarks lite",
        "MediaPipe selfie segmentation",
        "MediaPipe iris landmarks",
        "MediaPipe BlazePalm lite",
    ],
)
def test_tflite_filters_equal_the_reference_bindings(zoo_lake: Path, name: str) -> None:
    assert tflite_layers(member_file(name)) == lake_layers(zoo_lake, name)


def test_the_byte_different_seg_copies_are_one_weight_set(zoo_lake: Path) -> None:
    rows = connect(zoo_lake).execute("SELECT names FROM duplicate_weights").fetchall()
    assert [sorted(r[0]) for r in rows] == [
        ["seg-for-4modalities U-Net model156 nosearch", "seg-for-4modalities U-Net model156 scan"]
    ]
    files = [member_file(n) for n in rows[0][0]]
    assert files[0].read_bytes() != files[1].read_bytes()
