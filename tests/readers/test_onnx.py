"""ONNX reader: weight resolution chains, quantized weights, subgraphs, levels, external data, cross-format pairs."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data
from torch import nn

from filterlake.errors import CheckpointError
from filterlake.readers import Checkpoint, open_checkpoint

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)


class Net(nn.Module):
    """Plain, grouped+dilated, depthwise and transposed convs (no BatchNorm, so export keeps the weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, groups=2, dilation=2, padding=2)
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8, padding=1, bias=False)
        self.up = nn.ConvTranspose2d(8, 4, 3)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Chain every layer."""
        return self.head(self.up(self.depthwise(self.grouped(self.conv(x)))))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Net, onnx.ModelProto]:
    """Net exported with the TorchScript-based exporter (opset 13)."""
    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path_factory.mktemp("export") / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter is deprecated
        torch.onnx.export(net, torch.randn(1, 3, 16, 16), str(path), dynamo=False, opset_version=13)
    return net, onnx.load(str(path))


def _assert_net(checkpoint: Checkpoint, net: Net) -> None:
    """Names, kinds, groups, dilations, levels and exact values of the exported Net."""
    assert [(t.kind, t.groups, t.dilation) for t in checkpoint.tensors] == [
        ("conv", 1, (1, 1)),
        ("conv", 2, (2, 2)),
        ("conv", 8, (1, 1)),
        ("transposed", 1, (1, 1)),
        ("conv", 1, (1, 1)),
    ]
    assert [t.level for t in checkpoint.tensors] == [0, 1, 2, 3, 4]
    assert (checkpoint.format, checkpoint.depth_source, checkpoint.notes) == ("onnx", "graph", [])
    expected = [m.weight.detach().numpy() for m in (net.conv, net.grouped, net.depthwise, net.up, net.head)]
    for tensor, want in zip(checkpoint.tensors, expected, strict=True):
        np.testing.assert_array_equal(tensor.load(), want)


def test_exported_inline(tmp_path: Path, exported: tuple[Net, onnx.ModelProto]) -> None:
    """A torch export read back exactly, ConvTranspose kept and marked."""
    net, model = exported
    onnx.save_model(model, tmp_path / "net.onnx")
    checkpoint = open_checkpoint(tmp_path / "net.onnx")
    assert checkpoint.files == [tmp_path / "net.onnx"]
    _assert_net(checkpoint, net)


def _external(tmp_path: Path, model: onnx.ModelProto) -> Path:
    """Save a copy of `model` with all tensors in w.data (save_model mutates the model it is given)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(
        copy,
        tmp_path / "net.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="w.data",
        size_threshold=0,
    )
    return tmp_path / "net.onnx"


def test_exported_external_data(tmp_path: Path, exported: tuple[Net, onnx.ModelProto]) -> None:
    """External data is read lazily from the sibling file, which is listed among the model's files."""
    net, model = exported
    path = _external(tmp_path, model)
    checkpoint = open_checkpoint(path)
    assert checkpoint.files == [path, tmp_path / "w.data"]
    _assert_net(checkpoint, net)


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("missing.data", "missing file .*missing.data"),
        ("../outside.data", "not a plain path inside"),
        ("/etc/hostname", "not a plain path inside"),
        ("link.data", "resolves outside"),
    ],
)
def test_external_location_refused(tmp_path: Path, location: str, reason: str) -> None:
    """Missing files and locations escaping the model folder (.., absolute, symlink) are refused."""
    (tmp_path / "outside.data").write_bytes(W.tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link.data").symlink_to(tmp_path / "outside.data")
    weight = numpy_helper.from_array(W, "w")
    set_external_data(weight, location=location, offset=0, length=W.nbytes)
    weight.ClearField("raw_data")
    onnx.save_model(_model([_conv("w")], [weight]), folder / "m.onnx")
    with pytest.raises(CheckpointError, match=reason):
        open_checkpoint(folder / "m.onnx")


def test_external_length_past_end(tmp_path: Path) -> None:
    """An offset/length beyond the data file fails at load time with a CheckpointError."""
    (tmp_path / "w.data").write_bytes(W.tobytes()[:100])
    weight = numpy_helper.from_array(W, "w")
    set_external_data(weight, location="w.data", offset=0, length=W.nbytes)
    weight.ClearField("raw_data")
    onnx.save_model(_model([_conv("w")], [weight]), tmp_path / "m.onnx")
    checkpoint = open_checkpoint(tmp_path / "m.onnx")
    with pytest.raises(CheckpointError, match="do not fit"):
        checkpoint.tensors[0].load()


def _conv(
    weight: str, name: str = "conv", op: str = "Conv", inputs: tuple[str, ...] = ("x",), **attrs: object
) -> onnx.NodeProto:
    """A conv-like node reading `weight`."""
    return helper.make_node(op, [*inputs, weight], [f"{name}_out"], name=name, **attrs)


def _model(nodes: list[onnx.NodeProto], initializers: list[TensorProto], opset: int = 13) -> onnx.ModelProto:
    """A model with graph input x and the output of the last node."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _tensor(name: str, array: np.ndarray) -> TensorProto:
    """An initializer."""
    return numpy_helper.from_array(array, name)


Q = RNG.integers(-128, 128, size=W.shape).astype(np.int8)
SCALE, ZERO = np.array([0.5, 0.25, 2.0, 1.0], np.float32), np.array([1, -2, 0, 3], np.int8)
PER_AXIS = (Q.astype(np.float32) - ZERO[:, None, None, None]) * SCALE[:, None, None, None]


def _dequantize_per_axis() -> tuple[onnx.ModelProto, np.ndarray, str]:
    """int8 weight, per-output-channel scale and zero point."""
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], axis=0)
    return (
        _model([dq, _conv("w")], [_tensor("q", Q), _tensor("s", SCALE), _tensor("z", ZERO)]),
        PER_AXIS,
        "int8",
    )


def _dequantize_per_tensor() -> tuple[onnx.ModelProto, np.ndarray, str]:
    """uint8 weight, scalar scale and zero point."""
    q = (Q.astype(np.int16) + 128).astype(np.uint8)
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"])
    inits = [_tensor("q", q), _tensor("s", np.array(0.1, np.float32)), _tensor("z", np.array(128, np.uint8))]
    return _model([dq, _conv("w")], inits), (q.astype(np.float32) - 128) * np.float32(0.1), "uint8"


def _identity_mul() -> tuple[onnx.ModelProto, np.ndarray, str]:
    """weight -> Identity -> Mul by a per-channel scale from a Constant node."""
    scale = SCALE.reshape(4, 1, 1, 1)
    nodes = [
        helper.make_node("Constant", [], ["s"], value=_tensor("s_value", scale)),
        helper.make_node("Identity", ["w0"], ["w1"]),
        helper.make_node("Mul", ["w1", "s"], ["w"]),
        _conv("w"),
    ]
    return _model(nodes, [_tensor("w0", W)]), W * scale, "float32"


def _cast_fp16() -> tuple[onnx.ModelProto, np.ndarray, str]:
    """fp16 weight cast to float."""
    nodes = [helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT), _conv("w")]
    return (
        _model(nodes, [_tensor("w16", W.astype(np.float16))]),
        W.astype(np.float16).astype(np.float32),
        "float16",
    )


def _if_subgraph() -> tuple[onnx.ModelProto, np.ndarray, str]:
    """A Conv inside an If branch, its weight an initializer of the outer graph."""
    branch = helper.make_graph(
        [_conv("w", "inner")],
        "then",
        [],
        [helper.make_tensor_value_info("inner_out", TensorProto.FLOAT, None)],
    )
    cond = helper.make_node("Constant", [], ["c"], value=_tensor("c_value", np.array(True)))
    relu = helper.make_node("Relu", ["x"], ["r"])
    other = helper.make_graph(
        [helper.make_node("Identity", ["r"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    node = helper.make_node("If", ["c"], ["conv_out"], then_branch=branch, else_branch=other, name="if")
    return _model([cond, relu, node], [_tensor("w", W)]), W, "float32"


CHAINS: dict[str, Callable[[], tuple[onnx.ModelProto, np.ndarray, str]]] = {
    "dequantize-per-axis": _dequantize_per_axis,
    "dequantize-per-tensor": _dequantize_per_tensor,
    "identity-mul": _identity_mul,
    "cast-fp16": _cast_fp16,
    "if-subgraph": _if_subgraph,
}


@pytest.mark.parametrize("case", list(CHAINS))
def test_weight_chains(tmp_path: Path, case: str) -> None:
    """Weights behind Constant/Identity/Cast/DequantizeLinear/Mul and in subgraphs resolve exactly."""
    model, expected, dtype = CHAINS[case]()
    onnx.save_model(model, tmp_path / "m.onnx")
    checkpoint = open_checkpoint(tmp_path / "m.onnx")
    assert [(t.shape, t.dtype, t.kind) for t in checkpoint.tensors] == [(W.shape, dtype, "conv")]
    assert checkpoint.notes == []
    np.testing.assert_array_equal(checkpoint.tensors[0].load(), expected)


def test_unresolved_weight_is_noted(tmp_path: Path) -> None:
    """A weight computed from a graph input yields no tensor and an 'unresolved' note."""
    nodes = [
        helper.make_node("Relu", ["x"], ["w"]),
        _conv("w", "dynamic"),
        _conv("w2", "static", inputs=("dynamic_out",)),
    ]
    onnx.save_model(_model(nodes, [_tensor("w2", W)]), tmp_path / "m.onnx")
    checkpoint = open_checkpoint(tmp_path / "m.onnx")
    assert [t.name for t in checkpoint.tensors] == ["static"]
    assert checkpoint.notes == ["unresolved weight for node dynamic"]


def test_hostile_chains_stay_bounded(tmp_path: Path) -> None:
    """A weight behind 40 self-multiplications (2**40 paths) is given up quickly and noted as unresolved."""
    nodes = [helper.make_node("Mul", [f"m{i}", f"m{i}"], [f"m{i + 1}"]) for i in range(40)] + [_conv("m40")]
    onnx.save_model(_model(nodes, [_tensor("m0", W)]), tmp_path / "m.onnx")
    checkpoint = open_checkpoint(tmp_path / "m.onnx")
    assert checkpoint.tensors == [] and checkpoint.notes == ["unresolved weight for node conv"]


def test_conv_in_local_function_is_noted(tmp_path: Path) -> None:
    """Convs inside model-local functions are not read; each is reported as an unresolved weight."""
    function = helper.make_function(
        "local",
        "Block",
        ["x", "w"],
        ["y"],
        [helper.make_node("Conv", ["x", "w"], ["y"], name="inner")],
        [helper.make_opsetid("", 13)],
    )
    model = _model([helper.make_node("Block", ["x", "w"], ["conv_out"], domain="local")], [_tensor("w", W)])
    model.functions.append(function)
    model.opset_import.append(helper.make_opsetid("local", 1))
    onnx.save_model(model, tmp_path / "m.onnx")
    checkpoint = open_checkpoint(tmp_path / "m.onnx")
    assert checkpoint.tensors == [] and checkpoint.notes == [
        "unresolved weight for node inner in local function Block"
    ]


def test_levels_are_longest_paths(tmp_path: Path) -> None:
    """Level = longest path from a graph input: x->Relu->A, x->B, Add(A,B)->C gives A 1, B 0, C 3."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        _conv("w", "A", inputs=("r",)),
        _conv("w", "B"),
        helper.make_node("Add", ["A_out", "B_out"], ["s"]),
        _conv("w", "C", inputs=("s",)),
    ]
    onnx.save_model(_model(nodes, [_tensor("w", np.ones((2, 2, 3, 3), np.float32))]), tmp_path / "m.onnx")
    assert [(t.name, t.level) for t in open_checkpoint(tmp_path / "m.onnx").tensors] == [
        ("A", 1),
        ("B", 0),
        ("C", 3),
    ]


def test_unnamed_nodes_take_the_weight_name(corpus: Path) -> None:
    """ultraface (PyTorch 1.2 exporter) has unnamed nodes: layers are named after their weights."""
    checkpoint = open_checkpoint(corpus / "ultraface_rfb320/version-RFB-320.onnx")
    assert checkpoint.tensors[0].name == "base_net.0.0" and checkpoint.tensors[0].level == 0
    assert sum(1 for t in checkpoint.tensors if t.groups > 1 and t.kernel == (3, 3)) == 18
    assert sum(1 for t in checkpoint.tensors if t.dilation != (1, 1)) == 3


def _three_by_three(path: Path) -> list[np.ndarray]:
    """Loaded 3x3 conv weights of a checkpoint, sorted by shape and bytes (graph and definition order differ)."""
    arrays = [t.load() for t in open_checkpoint(path).tensors if t.kernel == (3, 3) and len(t.shape) == 4]
    return sorted(arrays, key=lambda a: (a.shape, a.tobytes()))


@pytest.mark.parametrize(
    ("onnx_file", "twin"),
    [
        ("unet2d_nuclei_broad/weights.onnx", "unet2d_nuclei_broad/weights.pt"),
        ("ultraface_rfb320/version-RFB-320.onnx", "ultraface_rfb320/version-RFB-320.pth"),
    ],
)
def test_cross_format_pairs(corpus: Path, onnx_file: str, twin: str) -> None:
    """The ONNX file and its TorchScript / state-dict twin hold identical 3x3 weights, tensor by tensor."""
    # ultraface's ONNX graph order differs from its module definition order (heads interleave with the backbone).
    ours, theirs = _three_by_three(corpus / onnx_file), _three_by_three(corpus / twin)
    assert len(ours) == len(theirs) > 10
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
