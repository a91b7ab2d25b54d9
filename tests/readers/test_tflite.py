"""TFLite reader: fixtures built with flatbuffers.Builder (schema field ids), checked value by value."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from filterlake.errors import CheckpointError
from filterlake.extract import layer_filters, model_shape
from filterlake.readers.tflite import read_tflite
from tests.readers.tflite_fixtures import Model, Op, Tensor, build

RNG = np.random.default_rng(7)
CONV_2D, DEPTHWISE, DEQUANTIZE, TRANSPOSE_CONV, DENSIFY = 3, 4, 6, 67, 124

W_CONV = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)  # OHWI
W_DW = RNG.standard_normal((1, 3, 3, 4)).astype(np.float32)  # [1, H, W, O]
W_FP16 = RNG.standard_normal((8, 3, 3, 4)).astype(np.float16)
Q_INT8 = RNG.integers(-128, 128, (2, 3, 3, 8)).astype(np.int8)
SCALE, ZERO = np.array([0.5, 0.03125], np.float32), np.array([3, -7], np.int64)
W_OFFSET = RNG.standard_normal((3, 3, 3, 2)).astype(np.float32)
Q_DW = RNG.integers(0, 256, (1, 3, 3, 2)).astype(np.uint8)
DW_SCALE, DW_ZERO = np.array([0.25, 2.0], np.float32), np.array([128, 100], np.int64)
# A 1x1 sparse weight [4, 1, 1, 2]: dims 0..2 dense, dim 3 CSR.
SPARSE_DENSE = np.array([[0, 1.5], [0, 0], [-2, 0], [3, 4]], np.float32).reshape(4, 1, 1, 2)
SPARSE_DIMS = [
    (0, 4, None, None),
    (0, 1, None, None),
    (0, 1, None, None),
    (1, 0, [0, 1, 1, 2, 4], [1, 0, 0, 1]),
]


def _tensors() -> list[Tensor]:
    return [
        Tensor("input", (1, 8, 8, 3)),  # 0
        Tensor("conv/Kernel", W_CONV.shape, W_CONV),  # 1
        Tensor("conv", (1, 8, 8, 4)),  # 2
        Tensor("dw/Kernel", W_DW.shape, W_DW),  # 3
        Tensor("dw", (1, 8, 8, 4)),  # 4
        Tensor("fp16/Kernel", W_FP16.shape, W_FP16, "float16"),  # 5
        Tensor("fp16/Kernel_dequantize", W_FP16.shape),  # 6
        Tensor("fp16", (1, 8, 8, 8)),  # 7
        Tensor("int8/Kernel", Q_INT8.shape, Q_INT8, "int8", {"scale": SCALE, "zero_point": ZERO}),  # 8
        Tensor("int8", (1, 8, 8, 2)),  # 9
        Tensor("offset/Kernel", W_OFFSET.shape, W_OFFSET, external=True),  # 10
        Tensor("offset", (1, 8, 8, 3)),  # 11
        Tensor("up/Kernel", (2, 3, 3, 3), RNG.standard_normal((2, 3, 3, 3))),  # 12
        Tensor("up/shape", (4,), np.array([1, 16, 16, 2]), "int32"),  # 13
        Tensor("up", (1, 16, 16, 2)),  # 14
        Tensor("custom/Kernel", (2, 3, 3, 2), RNG.standard_normal((2, 3, 3, 2))),  # 15
        Tensor("custom", (1, 32, 32, 2)),  # 16
        Tensor(
            "sparse/Kernel",
            (4, 1, 1, 2),
            dtype="float32",
            raw=np.array([1.5, -2, 3, 4], np.float32).tobytes(),
            sparsity={"traversal_order": [0, 1, 2, 3], "dims": SPARSE_DIMS},
        ),  # 17
        Tensor("sparse/Kernel_densified", (4, 1, 1, 2)),  # 18
        Tensor("sparse", (1, 32, 32, 4)),  # 19
        Tensor("big/Kernel", (2, 5, 5, 4), RNG.standard_normal((2, 5, 5, 4))),  # 20
        Tensor("big", (1, 32, 32, 2)),  # 21
        Tensor(
            "qdw/Kernel",
            Q_DW.shape,
            Q_DW,
            "uint8",
            {"scale": DW_SCALE, "zero_point": DW_ZERO, "quantized_dimension": 3},
        ),  # 22
        Tensor("qdw", (1, 32, 32, 2)),  # 23
    ]


def _ops() -> list[Op]:
    return [
        Op(CONV_2D, [0, 1], [2]),
        Op(DEPTHWISE, [2, 3], [4], (2, {3: 1, 5: 2, 6: 2})),  # depth_multiplier 1, dilation 2x2
        Op(DEQUANTIZE, [5], [6]),
        Op(CONV_2D, [4, 6, -1], [7], (1, {4: 1, 5: 1})),
        Op(CONV_2D, [7, 8], [9], deprecated=True),
        Op(CONV_2D, [9, 10], [11]),
        Op(TRANSPOSE_CONV, [13, 12, 11], [14]),
        Op("Convolution2DTransposeBias", [14, 15], [16]),
        Op(DENSIFY, [17], [18]),
        Op(CONV_2D, [16, 18], [19]),
        Op(CONV_2D, [19, 20], [21]),
        Op(DEPTHWISE, [21, 22], [23]),
    ]


@pytest.fixture
def fixture_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.tflite"
    path.write_bytes(build(Model(_tensors(), _ops(), [0], [23])))
    return path


def test_fixture_parses_with_the_reference_bindings(fixture_file: Path) -> None:
    """The fixture is a valid TFLite model for the generated `tflite` bindings (field ids as in the schema)."""
    tflite = pytest.importorskip("tflite")
    model = tflite.Model.GetRootAs(fixture_file.read_bytes())
    graph = model.Subgraphs(0)
    assert (graph.TensorsLength(), graph.OperatorsLength(), model.BuffersLength()) == (24, 12, 12)
    codes = [
        max(
            model.OperatorCodes(graph.Operators(i).OpcodeIndex()).BuiltinCode(),
            model.OperatorCodes(graph.Operators(i).OpcodeIndex()).DeprecatedBuiltinCode(),
        )
        for i in range(12)
    ]
    assert codes == [3, 4, 6, 3, 3, 3, 67, 32, 124, 3, 3, 4]
    quant = graph.Tensors(22).Quantization()
    assert quant.QuantizedDimension() == 3 and list(quant.ScaleAsNumpy()) == list(DW_SCALE)
    assert graph.Tensors(17).Sparsity().DimMetadata(3).Format() == 1
    assert model.Buffers(graph.Tensors(10).Buffer()).Offset() > 0


def test_tensors_values_and_levels(fixture_file: Path) -> None:
    checkpoint = read_tflite(fixture_file)
    assert (checkpoint.format, checkpoint.depth_source, checkpoint.notes) == ("tflite", "graph", [])
    got = [(t.name, t.shape, t.dtype, t.kind, t.groups, t.level) for t in checkpoint.tensors]
    assert got == [
        ("conv", (4, 3, 3, 3), "float32", "conv", 1, 0),
        ("dw", (4, 3, 3, 1), "float32", "conv", 4, 1),
        ("fp16", (8, 3, 3, 4), "float16", "conv", 1, 2),
        ("int8", (2, 3, 3, 8), "int8", "conv", 1, 3),
        ("offset", (3, 3, 3, 2), "float32", "conv", 1, 4),
        ("up", (2, 3, 3, 3), "float32", "transposed", 1, 5),
        ("custom", (2, 3, 3, 2), "float32", "transposed", 1, 6),
        ("sparse", (4, 1, 1, 2), "float32", "conv", 1, 7),
        ("big", (2, 5, 5, 4), "float32", "conv", 1, 8),
        ("qdw", (2, 3, 3, 1), "uint8", "conv", 2, 9),
    ]
    assert {t.layout for t in checkpoint.tensors} == {"OHWI"}
    assert checkpoint.tensors[1].dilation == (2, 2) and checkpoint.tensors[2].dilation == (1, 1)
    t = {x.name: x for x in checkpoint.tensors}
    np.testing.assert_array_equal(t["conv"].load(), W_CONV.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(t["dw"].load(), W_DW[0].transpose(2, 0, 1)[:, None])
    fp16 = t["fp16"].load()
    assert fp16.dtype == np.float32
    np.testing.assert_array_equal(fp16, W_FP16.astype(np.float32).transpose(0, 3, 1, 2))
    want = (Q_INT8.astype(np.float32) - ZERO.reshape(2, 1, 1, 1)) * SCALE.reshape(2, 1, 1, 1)
    np.testing.assert_array_equal(t["int8"].load(), want.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(t["offset"].load(), W_OFFSET.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(t["sparse"].load(), SPARSE_DENSE.transpose(0, 3, 1, 2))
    want = (Q_DW.astype(np.float32) - DW_ZERO) * DW_SCALE
    np.testing.assert_array_equal(t["qdw"].load(), want[0].transpose(2, 0, 1)[:, None])


def test_model_shape_counts(fixture_file: Path) -> None:
    shape = model_shape(read_tflite(fixture_file))
    assert [layer.layer_name for layer in shape.layers] == ["conv", "dw", "fp16", "int8", "offset", "qdw"]
    assert shape.n_filters == 4 * 3 + 4 + 8 * 4 + 2 * 8 + 3 * 2 + 2
    assert dict(shape.skipped) == {"transposed": 2, "1x1": 1, "other_kernel": 1}
    assert shape.depth_source == "graph"
    assert [layer.conv_depth for layer in shape.layers] == [
        0,
        1,
        2,
        3,
        4,
        7,
    ]  # ranks of levels 0-4, 7-9 (the 1x1 and 5x5 convs count)
    for layer, tensor in zip(shape.layers, shape.tensors, strict=True):
        assert layer_filters(layer, tensor).shape == (layer.n_filters, 9)


def _single(weight: Tensor, code: int = CONV_2D, extra: list[Tensor] | None = None) -> Model:
    return Model(
        [Tensor("x", (1, 8, 8, 3)), weight, Tensor("y", (1, 8, 8, 2)), *(extra or [])],
        [Op(code, [0, 1], [2])],
        [0],
        [2],
    )


def test_block_sparse_weight_is_unresolved(tmp_path: Path) -> None:
    sparse = {"traversal_order": [0, 1, 2, 3, 4], "block_map": [3], "dims": SPARSE_DIMS}
    weight = Tensor("blocky", (2, 3, 3, 3), dtype="float32", raw=b"\0" * 16, sparsity=sparse)
    path = tmp_path / "b.tflite"
    path.write_bytes(build(_single(weight)))
    checkpoint = read_tflite(path)
    assert checkpoint.tensors == []
    assert checkpoint.notes == [
        (
            "unresolved weight for operator 0 (CONV_2D): sparse weight tensor 'blocky' uses block sparsity, "
            "which is not supported"
        )
    ]
    assert model_shape(checkpoint).skipped == {"unresolved": 1}


def test_weight_from_an_input_is_unresolved(tmp_path: Path) -> None:
    model = Model(
        [Tensor("x", (1, 8, 8, 3)), Tensor("w", (2, 3, 3, 3)), Tensor("y", (1, 8, 8, 2))],
        [Op(CONV_2D, [0, 1], [2])],
        [0, 1],
        [2],
    )
    path = tmp_path / "in.tflite"
    path.write_bytes(build(model))
    assert read_tflite(path).notes == [
        "unresolved weight for operator 0 (CONV_2D): input 1 is not a constant"
    ]


def test_grouped_conv(tmp_path: Path) -> None:
    model = Model(
        [
            Tensor("x", (1, 8, 8, 6)),
            Tensor("w", (4, 3, 3, 2), np.ones((4, 3, 3, 2))),
            Tensor("y", (1, 8, 8, 4)),
        ],
        [Op(CONV_2D, [0, 1], [2])],
        [0],
        [2],
    )
    path = tmp_path / "g.tflite"
    path.write_bytes(build(model))
    assert read_tflite(path).tensors[0].groups == 3


@pytest.mark.parametrize(
    ("quant", "why"),
    [
        (
            {"scale": [1.0, 2.0, 3.0]},
            "3 scales along quantized_dimension 0 do not match its shape [2, 3, 3, 3]",
        ),
        ({"scale": [1.0, 2.0], "zero_point": [0, 0, 0]}, "3 zero points for 2 scales"),
    ],
)
def test_mismatched_quantization_is_refused(tmp_path: Path, quant: dict, why: str) -> None:
    weight = Tensor("q", (2, 3, 3, 3), np.zeros((2, 3, 3, 3)), "int8", quant)
    path = tmp_path / "q.tflite"
    path.write_bytes(build(_single(weight)))
    with pytest.raises(CheckpointError, match=re.escape(why)):
        read_tflite(path)


def _every_failure(path: Path) -> str | None:
    """None when the file reads (and every tensor loads), else the one-line error."""
    try:
        for tensor in read_tflite(path).tensors:
            tensor.load()
    except CheckpointError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return exc.reason
    return None


def test_truncated_prefixes_are_one_line_errors(tmp_path: Path, fixture_file: Path) -> None:
    data = fixture_file.read_bytes()
    cut = tmp_path / "cut.tflite"
    reasons = set()
    for size in sorted({*range(64), *range(64, len(data), max(len(data) // 300, 1))}):
        cut.write_bytes(data[:size])
        reason = _every_failure(cut)
        assert reason is not None, size
        reasons.add(reason.split(":")[0])
    assert reasons <= {"corrupt TFLite flatbuffer", "tensor offset"}


def test_flipped_bytes_never_crash(tmp_path: Path, fixture_file: Path) -> None:
    data = fixture_file.read_bytes()
    rng = np.random.default_rng(1)
    bad = tmp_path / "bad.tflite"
    errors = 0
    for _ in range(400):
        mutated = bytearray(data)
        for at in rng.integers(0, len(data), 3):
            mutated[at] ^= int(rng.integers(1, 256))
        bad.write_bytes(bytes(mutated))
        errors += _every_failure(bad) is not None
    assert errors > 0


def test_not_a_tflite_file(tmp_path: Path) -> None:
    path = tmp_path / "x.tflite"
    path.write_bytes(b"\x10\0\0\0ABCD" + b"\0" * 32)
    with pytest.raises(CheckpointError, match="no TFL3 file identifier"):
        read_tflite(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        read_tflite(path)


def test_huge_vector_length_is_refused_without_allocating(tmp_path: Path, fixture_file: Path) -> None:
    data = bytearray(fixture_file.read_bytes())
    at = data.index(b"filterlake test fixture") - 4  # the description string's length prefix
    data[at : at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    path = tmp_path / "huge.tflite"
    path.write_bytes(bytes(data))
    # the description is not read; a weight name's length is
    data = bytearray(fixture_file.read_bytes())
    at = data.index(b"conv/Kernel\0") - 4
    data[at : at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="runs past the end"):
        read_tflite(path)
