"""The layer plans of real CNN families (VGG, ResNets, U-Net, MobileNet, small CNNs) and their channels."""

from __future__ import annotations

from collections.abc import Callable

from bench.synthetic.graph import Net, Value

VGG_CFG = {  # the channels of each 3x3 conv, M for a max pool
    11: "64 M 128 M 256 256 M 512 512 M 512 512 M",
    13: "64 64 M 128 128 M 256 256 M 512 512 M 512 512 M",
    16: "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M",
    19: "64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M",
}
RESNET_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
MOBILENET = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
             (512, 1), (512, 1), (1024, 2), (1024, 1)]  # fmt: skip


def _ch(c: float) -> int:
    """A channel count after a width multiplier (at least 1)."""
    return max(1, round(c))


def vgg(depth: int, width: float, in_ch: int, batchnorm: bool, classes: int) -> Net:
    """VGG-11..19, optionally with BatchNorm, 3x3 convs with bias between max pools."""
    net = Net("vgg", f"VGG-{depth}{'-BN' if batchnorm else ''} x{width:g}", in_ch)
    x: Value = ("input", in_ch)
    for i, v in enumerate(VGG_CFG[depth].split()):
        if v == "M":
            x = net.maxpool(x)
        else:
            bn = f"features.{i}_bn" if batchnorm else None
            x = net.conv(x, _ch(int(v) * width), 3, f"features.{i}", bias=True, bn=bn)
    net.head(x, classes, "classifier")
    return net


def resnet_cifar(depth: int, width: int, in_ch: int, classes: int) -> Net:
    """He et al.'s CIFAR ResNet (3 stages, 16/32/64 x width), option-B 1x1 projections."""
    net = Net("resnet_cifar", f"ResNet-{depth} (CIFAR) x{width}", in_ch)
    n = (depth - 2) // 6
    x = net.conv(("input", in_ch), 16 * width, 3, "conv1")
    for s, c in enumerate((16 * width, 32 * width, 64 * width)):
        for b in range(n):
            stride = 2 if s > 0 and b == 0 else 1
            p = f"layer{s + 1}.{b}"
            y = net.conv(x, c, 3, f"{p}.conv1", stride)
            y = net.conv(y, c, 3, f"{p}.conv2", relu=False)
            if x[1] != c:
                x = net.conv(x, c, 1, f"{p}.shortcut.0", stride, bn=f"{p}.shortcut.1", relu=False)
            x = net.add(y, x)
    net.head(x, classes, "linear")
    return net


def resnet(depth: int, width: float, in_ch: int, classes: int) -> Net:
    """ImageNet ResNet-18/34 (basic blocks) and -50/101 (bottlenecks), 7x7 stem, 1x1 downsampling."""
    blocks = RESNET_BLOCKS[depth]
    bottleneck = depth >= 50
    net = Net("resnet_bottleneck" if bottleneck else "resnet", f"ResNet-{depth} x{width:g}", in_ch)
    x = net.conv(("input", in_ch), _ch(64 * width), 7, "conv1", 2)
    x = net.maxpool(x)
    for s, base in enumerate((64, 128, 256, 512)):
        c = _ch(base * width)
        out = c * 4 if bottleneck else c
        for b in range(blocks[s]):
            stride = 2 if s > 0 and b == 0 else 1
            p = f"layer{s + 1}.{b}"
            if bottleneck:
                y = net.conv(x, c, 1, f"{p}.conv1")
                y = net.conv(y, c, 3, f"{p}.conv2", stride)
                y = net.conv(y, out, 1, f"{p}.conv3", relu=False)
            else:
                y = net.conv(x, c, 3, f"{p}.conv1", stride)
                y = net.conv(y, c, 3, f"{p}.conv2", relu=False)
            if x[1] != out or stride != 1:
                x = net.conv(x, out, 1, f"{p}.downsample.0", stride, bn=f"{p}.downsample.1", relu=False)
            x = net.add(y, x)
    net.head(x, classes, "fc")
    return net


def unet(levels: int, base: int, in_ch: int, classes: int, up: str) -> Net:
    """Ronneberger's U-Net: two 3x3 convs per level; up-path by 2x2 transposed conv or resize + 1x1 conv."""
    net = Net("unet", f"U-Net {levels} levels, {base} features, {up} up-path", in_ch)
    x: Value = ("input", in_ch)
    skips = []
    for lv in range(levels):
        c = base * 2**lv
        x = net.conv(x, c, 3, f"encoders.{lv}.conv1")
        x = net.conv(x, c, 3, f"encoders.{lv}.conv2")
        skips.append(x)
        x = net.maxpool(x)
    c = base * 2**levels
    x = net.conv(x, c, 3, "bottleneck.conv1")
    x = net.conv(x, c, 3, "bottleneck.conv2")
    for lv in reversed(range(levels)):
        c = base * 2**lv
        if up == "transposed":
            x = net.conv_transpose(x, c, 2, f"upsamplers.{lv}")
        else:
            x = net.conv(net.upsample(x), c, 1, f"upsamplers.{lv}.conv", bn=None, relu=False)
        x = net.concat(skips[lv], x)
        x = net.conv(x, c, 3, f"decoders.{lv}.conv1")
        x = net.conv(x, c, 3, f"decoders.{lv}.conv2")
    net.seg_head(x, classes)
    return net


def mobilenet(width: float, in_ch: int, classes: int) -> Net:
    """MobileNet v1: 3x3 stem, then depthwise 3x3 (one filter per channel) + pointwise 1x1 blocks."""
    net = Net("mobilenet", f"MobileNet-v1 x{width:g}", in_ch)
    x = net.conv(("input", in_ch), _ch(32 * width), 3, "features.0.conv", 2)
    for i, (c, stride) in enumerate(MOBILENET, start=1):
        x = net.conv(x, x[1], 3, f"features.{i}.dw.conv", stride, groups=x[1])
        x = net.conv(x, _ch(c * width), 1, f"features.{i}.pw.conv")
    net.head(x, classes, "classifier")
    return net


def small_cnn(n_layers: int, base: int, in_ch: int, classes: int, stem7: bool) -> Net:
    """A small plain CNN (the many small models of a real zoo): channels double every other layer."""
    net = Net("small_cnn", f"CNN-{n_layers} ({base} features{', 7x7 stem' if stem7 else ''})", in_ch)
    x: Value = ("input", in_ch)
    if stem7:
        x = net.maxpool(net.conv(x, base, 7, "stem.conv", 2))
    for i in range(n_layers):
        c = min(base * 2 ** (i // 2), 256)
        x = net.conv(x, c, 3, f"features.{i}.conv", bn="" if i % 2 else None, bias=i % 2 == 0)
        if i % 2:
            x = net.maxpool(x)
    net.head(x, classes, "fc")
    return net


BUILDERS: dict[str, Callable[..., Net]] = {
    "vgg": vgg,
    "resnet_cifar": resnet_cifar,
    "resnet": resnet,
    "unet": unet,
    "mobilenet": mobilenet,
    "small_cnn": small_cnn,
}
