"""Quantized ONNX convs (QLinearConv, ConvInteger): weights dequantised with their scales, exact values against numpy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint
from tests.readers.test_onnx import RNG, SCALE, ZERO, Q, W, _conv, _model, _tensor

Q_U8 = (Q.astype(np.int16) + 128).astype(np.uint8)
SCALE_U8, ZERO_U8 = np.array([0.03, 0.5, 0.125, 0.07], np.float32), np.array([128, 120, 131, 0], np.uint8)


def _real(q: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """Independent reference: (q - zero) * scale in float64, per output channel for vectors, rounded to float32.

    (q - zero) is a small integer and scale a float32, so the float64 product is exact and rounds once, as the
    reader's float32 arithmetic must.
    """

    def along_out(a: np.ndarray) -> np.ndarray | np.float64:
        return a.astype(np.float64).reshape(-1, 1, 1, 1) if a.size > 1 else np.float64(a.reshape(()))

    return ((q.astype(np.float64) - along_out(zero)) * along_out(scale)).astype(np.float32)


def _shaped(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its conv output typed (1, 4, 6, 6) float, so that the checker's full check applies."""
    output = helper.make_tensor_value_info("conv_out", TensorProto.FLOAT, [1, 4, 6, 6])
    model.graph.output.pop()
    model.graph.output.append(output)
    return model


def _qlinearconv(q: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> onnx.ModelProto:
    """Static quantization as exporters emit it: QuantizeLinear -> QLinearConv -> DequantizeLinear."""
    inits = [
        _tensor("x_scale", np.array(0.1, np.float32)),
        _tensor("x_zp", np.array(128, np.uint8)),
        _tensor("w_q", q),
        _tensor("w_scale", scale),
        _tensor("w_zp", zero),
        _tensor("y_scale", np.array(0.2, np.float32)),
        _tensor("y_zp", np.array(128, np.uint8)),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"]),
        helper.make_node(
            "QLinearConv",
            ["x_q", "x_scale", "x_zp", "w_q", "w_scale", "w_zp", "y_scale", "y_zp"],
            ["y_q"],
            name="conv",
        ),
        helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zp"], ["conv_out"]),
    ]
    return _shaped(_model(nodes, inits))


def _convinteger(
    q: np.ndarray, scale: np.ndarray | None, zero: np.ndarray, bias: bool = False
) -> onnx.ModelProto:
    """A Conv as onnxruntime's quantize_dynamic rewrites it (operators/conv.py, ConvInteger.quantize).

    DynamicQuantizeLinear(x) -> ConvInteger(x_q, w_q, x_zp, w_zp) -> Cast(float) -> Mul(., x_scale * w_scale);
    with `bias` the int32 bias is added before the Cast, as onnxruntime < 1.11 did (ddddocr's common_old.onnx).
    Without `scale` the Mul is left out (a Relu takes the cast output).
    """
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["x_q", "x_scale", "x_zp"]),
        helper.make_node("ConvInteger", ["x_q", "w_q", "x_zp", "w_zp"], ["y_int"], name="conv_quant"),
    ]
    inits = [_tensor("w_q", q), _tensor("w_zp", zero)]
    out = "y_int"
    if bias:
        nodes += [
            helper.make_node("Reshape", ["b", "b_shape"], ["b_r"]),
            helper.make_node("Add", ["y_int", "b_r"], ["y_bias"]),
        ]
        inits += [
            _tensor("b", np.arange(4, dtype=np.int32)),
            _tensor("b_shape", np.array([1, -1, 1, 1], np.int64)),
        ]
        out = "y_bias"
    nodes.append(helper.make_node("Cast", [out], ["y_cast"], to=TensorProto.FLOAT))
    if scale is None:
        nodes.append(helper.make_node("Relu", ["y_cast"], ["conv_out"]))
    else:
        inits.append(_tensor("w_scale", scale))
        nodes += [
            helper.make_node("Mul", ["x_scale", "w_scale"], ["conv_quant_scales_mul:0"]),
            helper.make_node("Mul", ["y_cast", "conv_quant_scales_mul:0"], ["conv_out"]),
        ]
    return _shaped(_model(nodes, inits))


QUANTIZED: dict[str, tuple[Callable[[], onnx.ModelProto], np.ndarray, str]] = {
    "qlinearconv-int8-per-channel": (lambda: _qlinearconv(Q, SCALE, ZERO), _real(Q, SCALE, ZERO), "int8"),
    "qlinearconv-int8-per-tensor": (
        lambda: _qlinearconv(Q, np.array(0.0625, np.float32), np.array(-3, np.int8)),
        _real(Q, np.array(0.0625, np.float32), np.array(-3, np.int8)),
        "int8",
    ),
    "qlinearconv-uint8-per-channel": (
        lambda: _qlinearconv(Q_U8, SCALE_U8, ZERO_U8),
        _real(Q_U8, SCALE_U8, ZERO_U8),
        "uint8",
    ),
    "qlinearconv-uint8-per-tensor": (
        lambda: _qlinearconv(Q_U8, np.array(0.03, np.float32), np.array(128, np.uint8)),
        _real(Q_U8, np.array(0.03, np.float32), np.array(128, np.uint8)),
        "uint8",
    ),
    "convinteger-uint8-per-tensor-bias": (
        lambda: _convinteger(Q_U8, np.array(0.03, np.float32), np.array(131, np.uint8), bias=True),
        _real(Q_U8, np.array(0.03, np.float32), np.array(131, np.uint8)),
        "uint8",
    ),
    "convinteger-int8-per-tensor": (
        lambda: _convinteger(Q, np.array(0.0625, np.float32), np.array(5, np.int8)),
        _real(Q, np.array(0.0625, np.float32), np.array(5, np.int8)),
        "int8",
    ),
    "convinteger-int8-per-channel": (
        lambda: _convinteger(Q, SCALE.reshape(4, 1, 1), ZERO),
        _real(Q, SCALE, ZERO),
        "int8",
    ),
}


@pytest.mark.parametrize("case", list(QUANTIZED))
def test_quantized_convs_are_dequantized(tmp_path: Path, case: str) -> None:
    """QLinearConv and ConvInteger (scale from the output Mul) give exact (q - zp) * scale, dtype kept as stored."""
    build, expected, dtype = QUANTIZED[case]
    model = build()
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, tmp_path / "m.onnx")
    checkpoint = open_checkpoint(tmp_path / "m.onnx")
    assert [(t.shape, t.dtype, t.kind) for t in checkpoint.tensors] == [(W.shape, dtype, "conv")]
    assert checkpoint.notes == []
    loaded = checkpoint.tensors[0].load()
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, expected)
    assert not np.array_equal(loaded, np.round(loaded))


def test_convinteger_scale_matches_the_graph(tmp_path: Path) -> None:
    """The dequantised ConvInteger weight reproduces the quantized graph's output (onnx reference evaluator)."""
    from onnx.reference import ReferenceEvaluator

    model = _convinteger(Q, SCALE.reshape(4, 1, 1), ZERO, bias=False)
    onnx.save_model(model, tmp_path / "m.onnx")
    weight = open_checkpoint(tmp_path / "m.onnx").tensors[0].load()
    x = RNG.standard_normal((1, 2, 8, 8)).astype(np.float32)
    (got,) = ReferenceEvaluator(model).run(None, {"x": x})
    quantize = _model([helper.make_node("DynamicQuantizeLinear", ["x"], ["x_q", "x_scale", "x_zp"])], [])
    quantize.graph.output.extend(
        [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in ("x_scale", "x_zp")]
    )
    x_q, x_scale, x_zp = ReferenceEvaluator(quantize).run(None, {"x": x})
    float_conv = _model([_conv("w")], [_tensor("w", weight)])
    x_real = (x_q.astype(np.float32) - x_zp.astype(np.float32)) * x_scale
    (want,) = ReferenceEvaluator(float_conv).run(None, {"x": x_real})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_convinteger_without_scale_is_noted(tmp_path: Path) -> None:
    """No Mul after the ConvInteger: the weight stays q - zp (exact integers) and a note says it is unscaled."""
    model = _convinteger(Q, None, ZERO)
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, tmp_path / "m.onnx")
    checkpoint = open_checkpoint(tmp_path / "m.onnx")
    assert [(t.name, t.dtype) for t in checkpoint.tensors] == [("conv_quant", "int8")]
    note = (
        "unscaled weight for node conv_quant (ConvInteger): no weight scale found (y_cast feeds Relu, not Cast "
        "then Mul); its filters are w - w_zero_point in quantisation steps"
    )
    assert checkpoint.notes == [note]
    np.testing.assert_array_equal(checkpoint.tensors[0].load(), _real(Q, np.array(1.0, np.float32), ZERO))


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (
            lambda: _qlinearconv(Q, SCALE[:3], ZERO),
            r"QLinearConv node conv: w_scale w_scale has shape \[3\], neither",
        ),
        (lambda: _qlinearconv(Q, SCALE.reshape(2, 2), ZERO), r"w_scale w_scale has shape \[2, 2\]"),
        (lambda: _qlinearconv(Q, SCALE, np.zeros(5, np.int8)), r"w_zero_point w_zp has shape \[5\]"),
        (
            lambda: _convinteger(Q, SCALE, ZERO),
            r"ConvInteger node conv_quant: weight scale w_scale applied after the conv has shape \[4\]",
        ),
        (lambda: _convinteger(Q, SCALE.reshape(1, 4, 1, 1, 1), ZERO), r"has shape \[1, 4, 1, 1, 1\]"),
    ],
    ids=[
        "qlinear-scale-length",
        "qlinear-scale-2d",
        "qlinear-zero-length",
        "convinteger-1d-scale",
        "convinteger-scale-rank",
    ],
)
def test_quantization_parameters_that_fit_no_channel_are_refused(
    tmp_path: Path, build: Callable[[], onnx.ModelProto], reason: str
) -> None:
    """A scale or zero point neither scalar nor one per output channel is a one-line CheckpointError naming the file."""
    onnx.save_model(build(), tmp_path / "m.onnx")
    with pytest.raises(CheckpointError, match=reason) as error:
        open_checkpoint(tmp_path / "m.onnx")
    assert str(error.value).startswith(str(tmp_path / "m.onnx")) and "\n" not in str(error.value)


def test_unresolved_zero_point_is_not_taken_as_zero(tmp_path: Path) -> None:
    """A named w_zero_point that is computed at run time makes the weight unresolved (never zero by default)."""
    model = _qlinearconv(Q, SCALE, ZERO)
    conv = model.graph.node[1]
    model.graph.node.insert(1, helper.make_node("Identity", ["x_zp_dynamic_src"], ["w_zp_dynamic"]))
    model.graph.input.append(helper.make_tensor_value_info("x_zp_dynamic_src", TensorProto.INT8, [4]))
    conv.input[5] = "w_zp_dynamic"
    onnx.save_model(model, tmp_path / "m.onnx")
    checkpoint = open_checkpoint(tmp_path / "m.onnx")
    assert checkpoint.tensors == [] and checkpoint.notes == ["unresolved weight for node conv"]
