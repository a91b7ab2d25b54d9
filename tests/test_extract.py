"""Extraction rules: which conv weights become 3x3 filters, how they are flattened, and depth."""

from __future__ import annotations

import numpy as np
import pytest

from filterlake.extract import iter_filters, model_shape, skip_reason
from filterlake.readers.base import Checkpoint, ConvTensor


def tensor(name, shape, kind="unknown", level=None, layout="OIHW", array=None, groups=None):
    data = (
        array if array is not None else np.random.default_rng(len(name)).normal(size=shape).astype(np.float32)
    )
    canonical = np.transpose(data, (0, 3, 1, 2)) if layout == "OHWI" else data
    return ConvTensor(
        name=name,
        shape=tuple(shape),
        dtype="float32",
        layout=layout,
        load=lambda: canonical,
        kind=kind,
        level=level,
        groups=groups,
    )


def checkpoint(tensors, depth_source="definition_order", notes=()):
    return Checkpoint(
        path=__import__("pathlib").Path("x.pt"),
        format="torch-state-dict",
        files=[],
        load_method="test",
        tensors=tensors,
        depth_source=depth_source,
        notes=list(notes),
    )


@pytest.mark.parametrize(
    "shape,kind,reason",
    [
        ((8, 4, 3, 3), "unknown", None),
        ((8, 1, 3, 3), "conv", None),
        ((8, 4, 1, 1), "conv", "1x1"),
        ((8, 4, 5, 5), "conv", "other_kernel"),
        ((8, 4, 3, 7), "conv", "non_square"),
        ((8, 4, 3), "conv", "1d"),
        ((8, 4, 3, 3, 3), "conv", "3d"),
        ((8, 4, 3, 3), "transposed", "transposed"),
    ],
)
def test_skip_reason(shape, kind, reason):
    assert skip_reason(tensor("t", shape, kind)) == reason


def test_model_shape_counts_and_offsets():
    ckpt = checkpoint(
        [
            tensor("stem", (16, 3, 7, 7)),
            tensor("a", (16, 16, 3, 3)),
            tensor("p", (32, 16, 1, 1)),
            tensor("dw", (32, 1, 3, 3), groups=32),
            tensor("up", (32, 16, 3, 3), kind="transposed"),
            tensor("c3", (4, 4, 3, 3, 3)),
        ],
        notes=["unresolved weight for node n1"],
    )
    shape = model_shape(ckpt)
    assert [layer.layer_name for layer in shape.layers] == ["a", "dw"]
    assert [layer.n_filters for layer in shape.layers] == [256, 32]
    assert [layer.filter_offset for layer in shape.layers] == [0, 256]
    assert shape.n_filters == 288
    assert dict(shape.skipped) == {"other_kernel": 1, "1x1": 1, "transposed": 1, "3d": 1, "unresolved": 1}
    assert shape.layers[1].groups == 32 and shape.layers[1].in_channels == 1
    # the channel chain stem -> a -> p -> dw keeps definition order: levels 0..3 (transposed, 3-D excluded)
    assert [(layer.conv_depth, layer.conv_depth_norm) for layer in shape.layers] == [(1, 1 / 3), (3, 1.0)]
    assert shape.depth_source == "channel_chain"
    assert '"3x3": 288' not in shape.kernel_shapes_json()  # transposed counted under its kernel too
    assert shape.kernel_shapes["7x7"] == 48 and shape.kernel_shapes["1x1"] == 512


def test_graph_levels_give_shared_conv_depth():
    ckpt = checkpoint(
        [
            tensor("a", (4, 3, 3, 3), "conv", level=1),
            tensor("b", (4, 3, 3, 3), "conv", level=1),
            tensor("c", (4, 4, 3, 3), "conv", level=5),
            tensor("d", (4, 4, 1, 1), "conv", level=3),
        ],
        depth_source="graph",
    )
    shape = model_shape(ckpt)
    assert [(layer.conv_depth, layer.conv_depth_norm, layer.layer_depth) for layer in shape.layers] == [
        (0, 0.0, 1),
        (0, 0.0, 1),
        (2, 1.0, 5),
    ]
    assert shape.depth_source == "graph"


def test_single_conv_level_has_depth_norm_zero():
    shape = model_shape(checkpoint([tensor("only", (2, 2, 3, 3))]))
    assert (shape.layers[0].conv_depth, shape.layers[0].conv_depth_norm) == (0, 0.0)
    assert shape.depth_source == "definition_order"  # 2 input channels: no image-input conv to chain from


def test_filters_are_row_major_slices():
    weight = np.arange(2 * 3 * 9, dtype=np.float32).reshape(2, 3, 3, 3)
    shape = model_shape(checkpoint([tensor("w", weight.shape, array=weight)]))
    [(_layer, filters)] = list(iter_filters(shape))
    assert filters.dtype == np.float32 and filters.shape == (6, 9)
    for o in range(2):
        for i in range(3):
            np.testing.assert_array_equal(filters[o * 3 + i], weight[o, i].reshape(9))


def test_channel_last_layout_is_read_as_oihw():
    oihw = np.random.default_rng(0).normal(size=(5, 2, 3, 3)).astype(np.float32)
    ohwi = np.transpose(oihw, (0, 2, 3, 1))
    shape = model_shape(checkpoint([tensor("mlx", ohwi.shape, layout="OHWI", array=ohwi)]))
    [(layer, filters)] = list(iter_filters(shape))
    assert (layer.in_channels, layer.out_channels, layer.layout) == (2, 5, "OHWI")
    np.testing.assert_array_equal(filters, oihw.reshape(-1, 9))


def test_model_without_3x3_layers_has_a_message():
    shape = model_shape(checkpoint([tensor("k", (4, 4, 3, 7)), tensor("p", (4, 4, 1, 1))]))
    assert shape.layers == [] and shape.n_filters == 0
    assert "no 2-D 3x3 conv layers" in shape.message()
    assert "no convolution weights" in model_shape(checkpoint([])).message()
