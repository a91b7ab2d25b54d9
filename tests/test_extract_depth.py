"""Conv depth of models without a graph: the channel chain (extract.conv_levels), synthetic and on the corpus."""

from __future__ import annotations

import pytest

from filterlake.extract import channel_chain, conv_levels, model_shape
from filterlake.readers import open_checkpoint
from filterlake.vocab import DEPTH_CHANNEL_CHAIN, DEPTH_DEFINITION_ORDER, DEPTH_GRAPH
from tests.conftest import manifest_rows
from tests.test_extract import checkpoint, tensor

# --- conv depth of models without a graph: the channel chain (extract.conv_levels) ---


def depths(tensors, depth_source="definition_order"):
    """(name, conv_depth, conv_depth_norm) of each 3x3 layer, and how depth was decided."""
    shape = model_shape(checkpoint(tensors, depth_source))
    return [
        (layer.layer_name, layer.conv_depth, layer.conv_depth_norm) for layer in shape.layers
    ], shape.depth_source


def vdsr(n_body, input_last, groups=None):
    """VDSR's layout: `residual_layer.*` 64->64 defined first, `input` 1->64 and `output` 64->1 after them."""
    body = [tensor(f"residual_layer.{k}", (64, 64, 3, 3), groups=groups) for k in range(n_body)]
    ends = [tensor("input", (64, 1, 3, 3), groups=groups), tensor("output", (1, 64, 3, 3), groups=groups)]
    return body + (ends[::-1] if input_last else ends)


@pytest.mark.parametrize("input_last", [True, False])  # the brief's pattern, and the corpus file's order
@pytest.mark.parametrize("groups", [None, 1])  # bare state-dict tensors, and a format that records groups
def test_plain_chain_stored_out_of_order(input_last, groups):
    got, source = depths(vdsr(4, input_last, groups))
    expected = {"input": 0, **{f"residual_layer.{k}": k + 1 for k in range(4)}, "output": 5}
    assert source == DEPTH_CHANNEL_CHAIN
    assert got == [(name, expected[name], expected[name] / 5) for name, _, _ in got]
    # layer_idx keeps definition order: filters stay where they are stored
    layers = model_shape(checkpoint(vdsr(4, input_last, groups))).layers
    assert [layer.layer_name for layer in layers] == [t.name for t in vdsr(4, input_last)]
    assert [layer.layer_idx for layer in layers] == list(range(6))


def test_dead_end_is_avoided_on_the_retry():
    """`input` 1->64 links first to `output` 64->1, defined right after it: a 2-conv chain, too short.

    The retry prefers convs whose output another unplaced conv reads (nothing reads 1 channel): body first.
    """
    ts = vdsr(2, input_last=False)
    assert [ts[i].name for i in channel_chain(ts)] == ["input", "output"]
    chain = ["input", "residual_layer.0", "residual_layer.1", "output"]
    assert [ts[i].name for i in channel_chain(ts, avoid_dead_ends=True)] == chain


def resnet_basic(stem_last=False):
    """A CIFAR/torchvision-style basic-block ResNet with a 1x1 downsample in the second stage."""
    stem = [tensor("conv1", (16, 3, 3, 3))]
    blocks = [
        tensor("layer1.0.conv1", (16, 16, 3, 3)),
        tensor("layer1.0.conv2", (16, 16, 3, 3)),
        tensor("layer2.0.conv1", (32, 16, 3, 3)),
        tensor("layer2.0.conv2", (32, 32, 3, 3)),
        tensor("layer2.0.downsample.0", (32, 16, 1, 1)),
        tensor("layer2.1.conv1", (32, 32, 3, 3)),
        tensor("layer2.1.conv2", (32, 32, 3, 3)),
    ]
    return blocks + stem if stem_last else stem + blocks


@pytest.mark.parametrize("stem_last", [False, True])
def test_resnet_downsample_keeps_its_definition_position(stem_last):
    # the 1x1 downsample reads 16 channels but sits beside layer2.0: never linked, it stays right after
    # layer2.0.conv2 (defined just before it), so layer2.1 comes one level later
    names = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.0.conv2"]
    expected = {**{name: k for k, name in enumerate(names)}, "layer2.1.conv1": 6, "layer2.1.conv2": 7}
    ts = resnet_basic(stem_last)
    got, source = depths(ts)
    assert source == DEPTH_CHANNEL_CHAIN
    assert got == [(t.name, expected[t.name], expected[t.name] / 7) for t in ts if t.name in expected]


def test_bottleneck_walks_blocks_in_order():
    """After layer2.0.conv2 (8 outputs) the chain takes layer2.0.conv3, not layer1.0's downsample."""
    ts = [
        tensor("conv1", (8, 3, 7, 7)),
        tensor("layer1.0.conv1", (4, 8, 1, 1)),
        tensor("layer1.0.conv2", (4, 4, 3, 3)),
        tensor("layer1.0.conv3", (16, 4, 1, 1)),
        tensor("layer1.0.downsample.0", (16, 8, 1, 1)),
        tensor("layer1.1.conv1", (4, 16, 1, 1)),
        tensor("layer1.1.conv2", (4, 4, 3, 3)),
        tensor("layer1.1.conv3", (16, 4, 1, 1)),
        tensor("layer2.0.conv1", (8, 16, 1, 1)),
        tensor("layer2.0.conv2", (8, 8, 3, 3)),
        tensor("layer2.0.conv3", (32, 8, 1, 1)),
        tensor("layer2.0.downsample.0", (32, 16, 1, 1)),
    ]
    assert [ts[i].name for i in channel_chain(ts)] == [t.name for t in ts if "downsample" not in t.name]
    got, source = depths(ts)
    assert source == DEPTH_CHANNEL_CHAIN
    assert got == [
        ("layer1.0.conv2", 2, 2 / 11),
        ("layer1.1.conv2", 6, 6 / 11),
        ("layer2.0.conv2", 9, 9 / 11),
    ]


def test_unet_with_doubling_concatenations():
    """torch-em style: a decoder conv reads cat(up, skip), 2 x its width = the previous output: linked.

    The 1x1 up-samplers (parallel to the chain) keep their definition position; the head, defined first, is
    linked last.
    """
    ts = [
        tensor("out_conv", (2, 8, 1, 1)),
        tensor("enc.0.a", (8, 1, 3, 3)),
        tensor("enc.0.b", (8, 8, 3, 3)),
        tensor("enc.1.a", (16, 8, 3, 3)),
        tensor("enc.1.b", (16, 16, 3, 3)),
        tensor("base.a", (32, 16, 3, 3)),
        tensor("base.b", (32, 32, 3, 3)),
        tensor("dec.0.a", (16, 32, 3, 3)),
        tensor("dec.0.b", (16, 16, 3, 3)),
        tensor("dec.1.a", (8, 16, 3, 3)),
        tensor("dec.1.b", (8, 8, 3, 3)),
        tensor("sampler.0", (16, 32, 1, 1)),
        tensor("sampler.1", (8, 16, 1, 1)),
    ]
    got, source = depths(ts)
    assert source == DEPTH_CHANNEL_CHAIN
    # enc..dec at 0..9, samplers 10 and 11 (after dec.1.b, defined just before them), out_conv 12
    assert got == [(t.name, k, k / 12) for k, t in enumerate(ts[1:11])]
    assert conv_levels(ts, "definition_order")[0] == {0: 12, **{i: i - 1 for i in range(1, 13)}}


def test_unet_with_unmatched_concatenations():
    """MONAI style: a decoder conv reads cat(up, skip), a width no conv outputs: not linked.

    The decoder convs keep their definition-order position (after the up-sampler defined before them).
    """
    ts = [
        tensor("enc.0", (8, 3, 3, 3)),
        tensor("enc.1", (16, 8, 3, 3)),
        tensor("bottom", (32, 16, 3, 3)),
        tensor("up.1", (8, 32, 1, 1)),
        tensor("dec.1", (16, 24, 3, 3)),  # cat(up.1: 8, enc.1: 16)
        tensor("up.0", (4, 16, 1, 1)),
        tensor("dec.0", (8, 12, 3, 3)),  # cat(up.0: 4, enc.0: 8)
        tensor("head", (2, 8, 1, 1)),
    ]
    assert [ts[i].name for i in channel_chain(ts)] == ["enc.0", "enc.1", "bottom", "up.1", "head"]
    got, source = depths(ts)
    assert source == DEPTH_CHANNEL_CHAIN  # 5 of 8 convs linked
    assert got == [
        ("enc.0", 0, 0.0),
        ("enc.1", 1, 1 / 7),
        ("bottom", 2, 2 / 7),
        ("dec.1", 4, 4 / 7),
        ("dec.0", 6, 6 / 7),
    ]


def test_depthwise_chain_without_groups():
    """Bare tensors: a conv with 1 input channel and the previous conv's outputs is linked as depthwise."""
    ts = [
        tensor("head", (4, 32, 1, 1)),
        tensor("stem", (8, 3, 3, 3)),
        tensor("dw1", (8, 1, 3, 3)),
        tensor("pw1", (16, 8, 1, 1)),
        tensor("dw2", (16, 1, 3, 3)),
        tensor("pw2", (32, 16, 1, 1)),
        tensor("dw3", (32, 1, 3, 3)),
    ]
    got, source = depths(ts)
    assert source == DEPTH_CHANNEL_CHAIN
    assert got == [("stem", 0, 0.0), ("dw1", 1, 1 / 6), ("dw2", 3, 3 / 6), ("dw3", 5, 5 / 6)]


def test_depthwise_chain_with_groups():
    """Known groups: a depthwise conv reads groups x 1 channels, and a groups=1 conv with 1 input is no
    depthwise conv (it reads a grey image beside the stem, like MONAI's residual conv)."""
    ts = [
        tensor("dw", (8, 1, 3, 3), kind="conv", groups=8),
        tensor("pw", (16, 8, 1, 1), kind="conv", groups=1),
        tensor("side", (8, 1, 3, 3), kind="conv", groups=1),
        tensor("stem", (8, 3, 3, 3), kind="conv", groups=1),
    ]
    ts = [ts[3], ts[0], ts[2], ts[1]]  # stem, dw, side, pw
    assert [ts[i].name for i in channel_chain(ts)] == ["stem", "dw", "pw"]
    got, source = depths(ts)
    assert source == DEPTH_CHANNEL_CHAIN  # side keeps its place after dw, defined before it
    assert got == [("stem", 0, 0.0), ("dw", 1, 1 / 3), ("side", 2, 2 / 3)]
    # the same shapes as bare tensors: side (1 input, 8 outputs) may be depthwise, and is linked
    bare = [tensor(t.name, t.shape) for t in ts]
    assert [bare[i].name for i in channel_chain(bare)] == ["stem", "dw", "side", "pw"]


def test_no_image_input_falls_back_to_definition_order():
    """ICIAR-style: the first conv reads 12 feature maps, so there is no chain start."""
    ts = [
        tensor("f0", (64, 12, 3, 3)),
        tensor("f3", (64, 64, 3, 3)),
        tensor("f6", (64, 64, 2, 2)),
        tensor("f9", (128, 64, 3, 3)),
    ]
    assert channel_chain(ts) == []
    assert depths(ts) == ([("f0", 0, 0.0), ("f3", 1, 1 / 3), ("f9", 3, 1.0)], DEPTH_DEFINITION_ORDER)


def test_short_chain_falls_back_to_definition_order():
    """The chain stem -> a places 2 of 4 convs (not more than half): definition order, stem last."""
    ts = [
        tensor("a", (16, 16, 3, 3)),
        tensor("b", (8, 20, 3, 3)),
        tensor("c", (8, 8, 3, 3)),
        tensor("stem", (16, 3, 3, 3)),
    ]
    assert [ts[i].name for i in channel_chain(ts)] == ["stem", "a"]
    assert depths(ts) == (
        [("a", 0, 0.0), ("b", 1, 1 / 3), ("c", 2, 2 / 3), ("stem", 3, 1.0)],
        DEPTH_DEFINITION_ORDER,
    )
    # one more linked conv (c reads a's 16 outputs) makes it 3 of 4: the chain decides
    ts[2] = tensor("c", (8, 16, 3, 3))
    assert depths(ts) == (
        [("a", 1, 1 / 3), ("b", 2, 2 / 3), ("c", 3, 1.0), ("stem", 0, 0.0)],  # b stays after a
        DEPTH_CHANNEL_CHAIN,
    )


def test_graph_levels_win_and_missing_levels_do_not():
    ts = [
        tensor("b", (4, 4, 3, 3), "conv", level=3, groups=1),
        tensor("a", (4, 3, 3, 3), "conv", level=0, groups=1),
    ]
    assert depths(ts, "graph") == ([("b", 1, 1.0), ("a", 0, 0.0)], DEPTH_GRAPH)
    ts[0] = tensor("b", (4, 4, 3, 3), "conv", groups=1)  # a graph without a level for b: not graph depth
    assert depths(ts, "graph") == ([("b", 1, 1.0), ("a", 0, 0.0)], DEPTH_CHANNEL_CHAIN)


# --- on the real corpus ---

CORPUS_DEPTH_SOURCE = {
    "unet2d_nuclei_broad/weights.onnx": DEPTH_GRAPH,
    "unet2d_nuclei_broad/weights.pt": DEPTH_CHANNEL_CHAIN,  # TorchScript: tensors, no levels
    "unet2d_fixed_shape/weights.pt": DEPTH_CHANNEL_CHAIN,  # 15 of 18: the three 1x1 up-samplers unlinked
    "mouse_sc_wm_gm_t1_unet/best_metric_model.pth": DEPTH_DEFINITION_ORDER,  # 9 of 18: the encoder only
    "iciar2018_imagewise_iw1/weights_iw1.pth": DEPTH_DEFINITION_ORDER,  # reads 12 feature maps
    "relaynet/relaynet_good.model": DEPTH_CHANNEL_CHAIN,  # 5 of 8 (no 3x3 layers)
    "resnet20_cifar10/resnet20-12fca82f.th": DEPTH_CHANNEL_CHAIN,
    "resnet56_cifar10/resnet56-4bfd9763.th": DEPTH_CHANNEL_CHAIN,
    "ultraface_rfb320/version-RFB-320.pth": DEPTH_DEFINITION_ORDER,  # 18 of 52: the RFB branches stop it
    "ultraface_rfb320/version-RFB-320.onnx": DEPTH_GRAPH,
    "mtcnn/pnet.pt": DEPTH_CHANNEL_CHAIN,
    "mtcnn/onet.pt": DEPTH_CHANNEL_CHAIN,
    "espnet_cityscapes/espnet_p_2_q_8.pth": DEPTH_DEFINITION_ORDER,  # 1 of 85: concatenated inputs
    "espnetv2_cityscapes/espnetv2_s_1.0_city_1024x512.pth": DEPTH_DEFINITION_ORDER,  # 35 of 123: groups
    "vdsr/model_epoch_50.pth": DEPTH_CHANNEL_CHAIN,
    "texturenet_f3_seismic/saved_model.pt": DEPTH_DEFINITION_ORDER,  # no 2-D convs
    "dfdx_mnist_mlp/mnist.safetensors": DEPTH_DEFINITION_ORDER,  # no convs
}


def test_corpus_depth_sources_are_listed(corpus):
    assert sorted(CORPUS_DEPTH_SOURCE) == sorted(row["path"] for row in manifest_rows())


@pytest.mark.parametrize("path", sorted(CORPUS_DEPTH_SOURCE))
def test_corpus_conv_depth(corpus, path):
    ckpt = open_checkpoint(corpus / path)
    shape = model_shape(ckpt)
    level, source = conv_levels(ckpt.tensors, ckpt.depth_source)
    assert source == shape.depth_source == CORPUS_DEPTH_SOURCE[path]
    by_name = {ckpt.tensors[i].name: lv for i, lv in level.items()}
    if source == DEPTH_GRAPH:  # unchanged: the rank of each conv's graph level among the conv levels
        conv_levels_2d = {t.level for t in ckpt.tensors if len(t.shape) == 4 and t.kind != "transposed"}
        ranks = {lv: r for r, lv in enumerate(sorted(conv_levels_2d))}
        assert [layer.conv_depth for layer in shape.layers] == [ranks[t.level] for t in shape.tensors]
        assert [layer.conv_depth_norm for layer in shape.layers] == [
            ranks[t.level] / (len(ranks) - 1) for t in shape.tensors
        ]
    else:  # one level per 2-D conv: a permutation of 0..n-1
        assert sorted(level.values()) == list(range(len(level)))
        assert [layer.conv_depth for layer in shape.layers] == [
            by_name[layer.layer_name] for layer in shape.layers
        ]
        assert all(
            layer.conv_depth_norm == layer.conv_depth / max(len(level) - 1, 1) for layer in shape.layers
        )
    assert [layer.layer_idx for layer in shape.layers] == list(range(len(shape.layers)))


def test_corpus_vdsr_input_conv_is_the_shallowest(corpus):
    shape = model_shape(open_checkpoint(corpus / "vdsr/model_epoch_50.pth"))
    first = next(layer for layer in shape.layers if layer.in_channels == 1)
    assert (first.layer_name, first.layer_idx, first.conv_depth, first.conv_depth_norm) == (
        "input",
        18,
        0,
        0.0,
    )
    assert [(layer.layer_name, layer.conv_depth) for layer in shape.layers] == [
        *((f"residual_layer.{k}.conv", k + 1) for k in range(18)),
        ("input", 0),
        ("output", 19),
    ]
    assert shape.depth_source == DEPTH_CHANNEL_CHAIN
