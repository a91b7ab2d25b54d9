"""Generate realistic synthetic model zoos of any size, as real checkpoint files of all three formats.

A zoo is a folder of checkpoints (PyTorch state dicts via `torch.save`, ONNX graphs built with `onnx.helper`,
safetensors via `safetensors.numpy.save_file`), each with a `<file>.meta.json` sidecar, plus `zoo.json`
describing what was generated. Models are stacks of convolutions of real architecture families with their
channel counts (VGG, CIFAR and ImageNet ResNets with 1x1 projections and 7x7 stems, bottleneck ResNets, U-Nets
with transposed 2x2 or interpolation + 1x1 up-paths, MobileNet with depthwise 3x3 and pointwise 1x1, small CNNs),
with width multipliers; BatchNorm and linear heads are stored as well, so file sizes are realistic.

Trained-like 3x3 filters: every 3x3 layer draws whole filters (with replacement) from one layer of a real model
of `../shared/corpus` at the same relative depth, from a model of a matching visual domain (medical models for
U-Nets of medical domains, face detectors for faces, ...). The draw is rescaled to a He-like magnitude for its
fan-in (times a log-normal per-layer factor) and gets 5% Gaussian noise; about 3% of the layers are
"degenerated" (a share of their filters zeroed, as pruned or dead filters). Other weights (1x1, 7x7, 2x2
transposed, linear, BatchNorm) are Gaussian with their usual initialisation scales.

    python -m bench.zoo OUT --filters 1000000 [--seed 0] [--max-model-filters N] [--jobs 2]
    python -m bench.zoo OUT --models 1000 --filters 200000 --family tiny      # many tiny models

Sizes: in budget mode (`--filters` only) models are drawn until the 3x3 filter count reaches the budget; a model
larger than `max_model_filters` is redrawn (default: half the budget, within [20k, 4M]), so a small CI zoo still
holds several models and a large one holds realistic ImageNet-sized ones. The 3x3 filter count of a model is the
same in every format (no 3x3 transposed convs are generated), so `zoo.json` gives the exact expected counts.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
OUT = REPO / "bench" / "out"
FORMATS = ("torch", "safetensors", "onnx")
FORMAT_WEIGHTS = (0.5, 0.25, 0.25)
SUFFIX = {"torch": ".pth", "safetensors": ".safetensors", "onnx": ".onnx"}
NOISE = 0.05  # Gaussian noise added to drawn filters, relative to the layer's target std
DEGENERATE_SHARE = 0.03  # share of 3x3 layers with part of their filters zeroed


# --------------------------------------------------------------------------------------------------------------
# Architectures: a tiny graph builder that records parameters (for state dicts) and nodes (for ONNX) together
# --------------------------------------------------------------------------------------------------------------

@dataclass
class Param:
    """One stored tensor: its name, shape and how its values are drawn."""

    name: str
    shape: tuple[int, ...]
    init: str  # "filters3x3", "he", "linear", "bn_weight", "bn_bias", "bn_mean", "bn_var", "bias", "count"
    fan_in: int = 1
    in_onnx: bool = True


@dataclass
class Node:
    op: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any]
    name: str


@dataclass
class Net:
    """An architecture instance: parameters in definition order and an ONNX-able node list."""

    family: str
    arch: str
    in_channels: int
    params: list[Param] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    consts: dict[str, np.ndarray] = field(default_factory=dict)  # ONNX-only constants (Resize scales, shapes)
    output: str = ""
    output_rank: int = 2
    _n: int = 0

    @property
    def n_filters(self) -> int:
        return sum(p.shape[0] * p.shape[1] for p in self.params if p.init == "filters3x3")

    @property
    def n_layers(self) -> int:
        return sum(1 for p in self.params if p.init == "filters3x3")

    def _value(self) -> str:
        self._n += 1
        return f"t{self._n}"

    def node(self, op: str, inputs: list[str], attrs: dict[str, Any] | None = None, name: str = "") -> str:
        out = self._value()
        self.nodes.append(Node(op, inputs, out, attrs or {}, name or f"{op}_{len(self.nodes)}"))
        return out

    def conv(self, x: tuple[str, int], c_out: int, k: int, prefix: str, stride: int = 1, groups: int = 1,
             dilation: int = 1, bias: bool = False, bn: str | None = "", relu: bool = True) -> tuple[str, int]:
        """Conv (+ BatchNorm named `bn`, "" = derived from prefix, None = none) (+ ReLU)."""
        src, c_in = x
        weight = f"{prefix}.weight"
        init = "filters3x3" if k == 3 else "he"
        self.params.append(Param(weight, (c_out, c_in // groups, k, k), init, c_in // groups * k * k))
        inputs = [src, weight]
        if bias:
            self.params.append(Param(f"{prefix}.bias", (c_out,), "bias"))
            inputs.append(f"{prefix}.bias")
        pad = dilation * (k - 1) // 2
        y = self.node("Conv", inputs, {"kernel_shape": [k, k], "strides": [stride, stride], "pads": [pad] * 4,
                                       "group": groups, "dilations": [dilation, dilation]}, prefix)
        if bn is not None:
            y = self.batchnorm((y, c_out), bn or _bn_name(prefix))[0]
        if relu:
            y = self.node("Relu", [y])
        return y, c_out

    def conv_transpose(self, x: tuple[str, int], c_out: int, k: int, prefix: str) -> tuple[str, int]:
        """A stride-k transposed conv (torch layout (C_in, C_out, k, k)); never 3x3 here."""
        src, c_in = x
        self.params.append(Param(f"{prefix}.weight", (c_in, c_out, k, k), "he", c_in * k * k))
        self.params.append(Param(f"{prefix}.bias", (c_out,), "bias"))
        y = self.node("ConvTranspose", [src, f"{prefix}.weight", f"{prefix}.bias"],
                      {"kernel_shape": [k, k], "strides": [k, k]}, prefix)
        return y, c_out

    def batchnorm(self, x: tuple[str, int], prefix: str) -> tuple[str, int]:
        src, c = x
        names = [f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
        for name, init in zip(names, ("bn_weight", "bn_bias", "bn_mean", "bn_var")):
            self.params.append(Param(name, (c,), init))
        self.params.append(Param(f"{prefix}.num_batches_tracked", (), "count", in_onnx=False))
        return self.node("BatchNormalization", [src, *names], {"epsilon": 1e-5}, prefix), c

    def relu(self, x: tuple[str, int]) -> tuple[str, int]:
        return self.node("Relu", [x[0]]), x[1]

    def maxpool(self, x: tuple[str, int], k: int = 2) -> tuple[str, int]:
        return self.node("MaxPool", [x[0]], {"kernel_shape": [k, k], "strides": [k, k]}), x[1]

    def add(self, a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
        return self.node("Relu", [self.node("Add", [a[0], b[0]])]), a[1]

    def concat(self, a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
        return self.node("Concat", [a[0], b[0]], {"axis": 1}), a[1] + b[1]

    def upsample(self, x: tuple[str, int]) -> tuple[str, int]:
        if "up_scales" not in self.consts:
            self.consts["up_scales"] = np.array([1, 1, 2, 2], np.float32)
        return self.node("Resize", [x[0], "", "up_scales"], {"mode": "nearest"}), x[1]

    def head(self, x: tuple[str, int], classes: int, prefix: str = "fc") -> None:
        """Global average pool + flatten + linear layer."""
        y = self.node("Flatten", [self.node("GlobalAveragePool", [x[0]])])
        self.params.append(Param(f"{prefix}.weight", (classes, x[1]), "linear", x[1]))
        self.params.append(Param(f"{prefix}.bias", (classes,), "bias"))
        self.output = self.node("Gemm", [y, f"{prefix}.weight", f"{prefix}.bias"], {"transB": 1}, prefix)
        self.output_rank = 2

    def seg_head(self, x: tuple[str, int], classes: int, prefix: str = "final") -> None:
        self.output = self.conv(x, classes, 1, prefix, bias=True, bn=None, relu=False)[0]
        self.output_rank = 4


def _bn_name(prefix: str) -> str:
    head, _, last = prefix.rpartition(".")
    last = last.replace("conv", "bn") if "conv" in last else f"{last}_bn"
    return f"{head}.{last}" if head else last


def _ch(c: float) -> int:
    return max(1, round(c))


VGG_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg(depth: int, width: float, in_ch: int, batchnorm: bool, classes: int) -> Net:
    net = Net("vgg", f"VGG-{depth}{'-BN' if batchnorm else ''} x{width:g}", in_ch)
    x = ("input", in_ch)
    for i, v in enumerate(VGG_CFG[depth]):
        if v == "M":
            x = net.maxpool(x)
        else:
            x = net.conv(x, _ch(v * width), 3, f"features.{i}", bias=True,
                         bn=f"features.{i}_bn" if batchnorm else None)
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
            short = net.conv(x, c, 1, f"{p}.shortcut.0", stride, bn=f"{p}.shortcut.1", relu=False) \
                if x[1] != c else x
            x = net.add(y, short)
    net.head(x, classes, "linear")
    return net


def resnet(depth: int, width: float, in_ch: int, classes: int) -> Net:
    """ImageNet ResNet-18/34 (basic blocks) and -50/101 (bottlenecks), 7x7 stem, 1x1 downsampling."""
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
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
            short = net.conv(x, out, 1, f"{p}.downsample.0", stride, bn=f"{p}.downsample.1", relu=False) \
                if (x[1] != out or stride != 1) else x
            x = net.add(y, short)
    net.head(x, classes, "fc")
    return net


def unet(levels: int, base: int, in_ch: int, classes: int, up: str) -> Net:
    """Ronneberger's U-Net: double 3x3 convs per level; up-path by 2x2 transposed conv or resize + 1x1 conv."""
    net = Net("unet", f"U-Net {levels} levels, {base} features, {up} up-path", in_ch)
    x = ("input", in_ch)
    skips = []
    for lv in range(levels):
        c = base * 2 ** lv
        x = net.conv(x, c, 3, f"encoders.{lv}.conv1")
        x = net.conv(x, c, 3, f"encoders.{lv}.conv2")
        skips.append(x)
        x = net.maxpool(x)
    c = base * 2 ** levels
    x = net.conv(x, c, 3, "bottleneck.conv1")
    x = net.conv(x, c, 3, "bottleneck.conv2")
    for lv in reversed(range(levels)):
        c = base * 2 ** lv
        if up == "transposed":
            x = net.conv_transpose(x, c, 2, f"upsamplers.{lv}")
        else:
            x = net.conv(net.upsample(x), c, 1, f"upsamplers.{lv}.conv", bn=None, relu=False)
        x = net.concat(skips[lv], x)
        x = net.conv(x, c, 3, f"decoders.{lv}.conv1")
        x = net.conv(x, c, 3, f"decoders.{lv}.conv2")
    net.seg_head(x, classes)
    return net


MOBILENET = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
             (512, 1), (1024, 2), (1024, 1)]


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
    x = ("input", in_ch)
    if stem7:
        x = net.maxpool(net.conv(x, base, 7, "stem.conv", 2))
    for i in range(n_layers):
        x = net.conv(x, min(base * 2 ** (i // 2), 256), 3, f"features.{i}.conv", bn="" if i % 2 else None,
                     bias=i % 2 == 0)
        if i % 2:
            x = net.maxpool(x)
    net.head(x, classes, "fc")
    return net


# --------------------------------------------------------------------------------------------------------------
# Sampling model descriptions
# --------------------------------------------------------------------------------------------------------------

DOMAINS = {  # domain -> (pool, modality, task)
    "natural": ("natural", "RGB photographs", "image classification"),
    "medical mri": ("medical", "MRI slices", "segmentation"),
    "medical ct": ("medical", "CT slices", "segmentation"),
    "medical microscopy": ("medical", "fluorescence microscopy", "segmentation"),
    "medical histology": ("medical", "H&E histology", "classification"),
    "medical x-ray": ("medical", "chest X-ray", "classification"),
    "faces": ("faces", "RGB photographs of faces", "face detection"),
    "street scenes": ("street", "RGB street scenes", "semantic segmentation"),
    "remote sensing": ("natural", "satellite imagery", "land-cover classification"),
    "handwriting": ("natural", "grayscale digits", "digit classification"),
}
FAMILY_WEIGHTS = {"vgg": 0.15, "resnet_cifar": 0.2, "resnet": 0.15, "resnet_bottleneck": 0.1, "unet": 0.2,
                  "mobilenet": 0.04, "small_cnn": 0.16}


@dataclass
class ModelSpec:
    """Everything needed to write one model (deterministic from `seed`)."""

    index: int
    name: str
    family: str
    builder: str
    args: dict[str, Any]
    domain: str
    fmt: str
    seed: int
    n_filters: int
    n_layers: int
    wrap: str = "plain"  # torch only: "plain" state dict, "checkpoint" {'state_dict': ...}, "module" prefix


BUILDERS: dict[str, Callable[..., Net]] = {"vgg": vgg, "resnet_cifar": resnet_cifar, "resnet": resnet,
                                           "unet": unet, "mobilenet": mobilenet, "small_cnn": small_cnn}


def _sample_arch(rng: np.random.Generator, family: str) -> tuple[str, dict[str, Any], str]:
    """(builder, kwargs, domain) of a random member of a family."""
    def pick(seq: list) -> Any:
        return seq[int(rng.integers(len(seq)))]

    if family == "unet":
        domain = pick(["medical mri", "medical ct", "medical microscopy", "medical mri", "street scenes",
                       "remote sensing"])
        return "unet", {"levels": pick([3, 4, 4, 5]), "base": pick([8, 16, 16, 32, 32, 64]),
                        "in_ch": 1 if domain.startswith("medical") else 3, "classes": pick([1, 2, 3, 4]),
                        "up": pick(["transposed", "interp"])}, domain
    domain = pick(["natural", "natural", "natural", "faces", "medical x-ray", "medical histology", "remote sensing",
                   "street scenes", "handwriting"])
    in_ch = 1 if domain in ("medical x-ray", "handwriting") else 3
    classes = pick([2, 10, 100, 1000])
    if family == "vgg":
        return "vgg", {"depth": pick([11, 13, 16, 19]), "width": pick([0.125, 0.25, 0.5, 1.0]), "in_ch": in_ch,
                       "batchnorm": bool(rng.integers(2)), "classes": classes}, domain
    if family == "resnet_cifar":
        return "resnet_cifar", {"depth": pick([20, 32, 44, 56, 110]), "width": pick([1, 1, 2, 4]), "in_ch": in_ch,
                                "classes": pick([10, 100])}, domain
    if family == "resnet":
        return "resnet", {"depth": pick([18, 34]), "width": pick([0.25, 0.5, 1.0]), "in_ch": in_ch,
                          "classes": classes}, domain
    if family == "resnet_bottleneck":
        return "resnet", {"depth": pick([50, 50, 101]), "width": pick([0.25, 0.5, 1.0]), "in_ch": in_ch,
                          "classes": classes}, domain
    if family == "mobilenet":
        return "mobilenet", {"width": pick([0.25, 0.5, 0.75, 1.0]), "in_ch": in_ch, "classes": classes}, domain
    if family in ("small_cnn", "tiny"):
        base = pick([4, 8, 16, 32, 64]) if family == "small_cnn" else pick([2, 4, 8, 16])
        return "small_cnn", {"n_layers": int(rng.integers(2, 9 if family == "small_cnn" else 6)), "base": base,
                             "in_ch": in_ch, "classes": classes, "stem7": bool(rng.random() < 0.3)}, domain
    raise ValueError(f"unknown family {family!r}")


_SIZE_CACHE: dict[str, tuple[int, int]] = {}


def _size(builder: str, args: dict[str, Any]) -> tuple[int, int]:
    key = builder + json.dumps(args, sort_keys=True)
    if key not in _SIZE_CACHE:
        net = BUILDERS[builder](**args)
        _SIZE_CACHE[key] = (net.n_filters, net.n_layers)
    return _SIZE_CACHE[key]


def default_max_model_filters(n_filters: int) -> int:
    return int(min(max(n_filters // 2, 20_000), 4_000_000))


def plan(n_filters: int, seed: int = 0, n_models: int | None = None, max_model_filters: int | None = None,
         family: str | None = None, formats: Iterable[str] = FORMATS, prefix: str = "m") -> list[ModelSpec]:
    """The list of models of a zoo (deterministic in its arguments), before any weight is drawn.

    Budget mode (n_models None): draw models until the 3x3 filters reach `n_filters`. Count mode: exactly
    `n_models` models of about n_filters / n_models filters each (family 'tiny' by default).
    """
    rng = np.random.default_rng([seed, 7919])
    formats = tuple(formats)
    fweights = np.array([FORMAT_WEIGHTS[FORMATS.index(f)] for f in formats], float)
    fweights /= fweights.sum()
    families = [family] if family else list(FAMILY_WEIGHTS)
    famw = np.array([FAMILY_WEIGHTS.get(f, 1.0) for f in families], float)
    famw /= famw.sum()
    specs: list[ModelSpec] = []
    total = 0
    if n_models is not None:
        families, famw = ([family] if family else ["tiny"]), np.ones(1)
        per = max(n_filters // max(n_models, 1), 1)
        lo, hi = max(per // 4, 1), max(per * 2, 8)
    else:
        hi = max_model_filters or default_max_model_filters(n_filters)
        lo = 1
    while (len(specs) < n_models) if n_models is not None else (total < n_filters):
        # near the end of a budget the cap shrinks to what is left, but never below hi/8 (bounded overshoot)
        cap = hi if n_models is not None else min(hi, max(n_filters - total, hi // 8))
        for attempt in range(400):
            if attempt % 20 == 0:  # a family first (by weight), then up to 20 members of it that fit the cap
                fam = families[int(rng.choice(len(families), p=famw))]
            builder, args, domain = _sample_arch(rng, fam)
            size, layers = _size(builder, args)
            if lo <= size <= cap:
                break
        else:  # nothing of this budget: a tiny CNN shrunk to fit, or stop when even that is too big
            builder, args, domain = _sample_arch(rng, "tiny")
            args.update(n_layers=2, base=2, stem7=False)
            size, layers = _size(builder, args)
            if size > cap and n_models is None:
                break
        fmt = formats[int(rng.choice(len(formats), p=fweights))]
        wrap = ("plain", "plain", "checkpoint", "module")[int(rng.integers(4))] if fmt == "torch" else "plain"
        index = len(specs)
        specs.append(ModelSpec(index, f"{prefix}{seed}-{index:06d}-{builder}", fam, builder, args, domain, fmt,
                               int(rng.integers(2**31)), size, layers, wrap))
        total += size
    return specs


# --------------------------------------------------------------------------------------------------------------
# Trained-like values from the corpus
# --------------------------------------------------------------------------------------------------------------

POOL_OF = {"medical": "medical", "faces": "faces", "street scenes": "street", "natural": "natural"}


def _corpus_rows(corpus: Path) -> list[dict[str, str]]:
    with open(corpus / "MANIFEST.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def load_pool(corpus: Path = CORPUS, cache: Path | None = None) -> dict[str, list[list[np.ndarray]]]:
    """The 3x3 layers of the corpus models by pool ('medical', 'faces', 'street', 'natural'): lists of (n, 9).

    Read with filterlake's own readers (format twins are skipped); cached as an .npz beside the zoos.
    """
    rows = [r for r in _corpus_rows(corpus) if int(r["filters_3x3"] or 0) > 0
            and r["format"] not in ("onnx", "torchscript")]  # the ONNX/TorchScript twins repeat other files
    key = hashlib.sha256(json.dumps([(r["path"], r["sha256"]) for r in rows]).encode()).hexdigest()[:12]
    cache = cache or OUT / f"corpus-pool-{key}.npz"
    if cache.exists():
        data = np.load(cache)
        pool: dict[str, list[list[np.ndarray]]] = {}
        for name in sorted(data.files, key=lambda n: tuple(int(p) if p.isdigit() else p for p in n.split("__"))):
            group, model, _layer = name.split("__")
            models = pool.setdefault(group, [])
            while len(models) <= int(model):
                models.append([])
            models[int(model)].append(data[name])
        return pool
    from filterlake.extract import iter_filters, model_shape
    from filterlake.readers import open_checkpoint

    pool = {}
    for row in rows:
        domain = row["domain"]
        group = "medical" if domain.startswith("medical") else POOL_OF.get(domain, "natural")
        shape = model_shape(open_checkpoint(corpus / row["path"]))
        layers = [np.ascontiguousarray(f, np.float32) for _, f in iter_filters(shape) if len(f) >= 8]
        if layers:
            pool.setdefault(group, []).append(layers)
    cache.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{g}__{m}__{i}": a for g, models in pool.items() for m, layers in enumerate(models)
              for i, a in enumerate(layers)}
    np.savez(cache, **arrays)
    return pool


class Sampler:
    """Draws trained-like 3x3 layers from the corpus pool of a domain, and other weights from their inits."""

    def __init__(self, pool: dict[str, list[list[np.ndarray]]]):
        self.pool = pool
        self.std = {g: [[float(a.std()) or 1.0 for a in layers] for layers in models] for g, models in pool.items()}

    @classmethod
    def of(cls, pool: dict[str, list[list[np.ndarray]]]) -> Sampler:
        cached = _SAMPLERS.get(id(pool))
        if cached is None or cached.pool is not pool:
            cached = _SAMPLERS[id(pool)] = cls(pool)
        return cached

    def filters(self, rng: np.random.Generator, group: str, depth: float, c_out: int, c_in: int) -> np.ndarray:
        models = self.pool.get(group) or self.pool["natural"]
        g = group if group in self.pool else "natural"
        m = int(rng.integers(len(models)))
        layers = models[m]
        li = int(np.clip(round(depth * (len(layers) - 1)) + rng.integers(-1, 2), 0, len(layers) - 1))
        source = layers[li]
        n = c_out * c_in
        drawn = source[rng.integers(0, len(source), n)]
        target = math.sqrt(2.0 / (c_in * 9)) * math.exp(0.25 * rng.standard_normal())
        drawn *= np.float32(target / self.std[g][m][li])
        drawn += rng.standard_normal(drawn.shape, dtype=np.float32) * np.float32(NOISE * target)
        if rng.random() < DEGENERATE_SHARE:
            drawn[rng.random(n) < rng.uniform(0.2, 0.8)] = 0.0
        return drawn.reshape(c_out, c_in, 3, 3)

    def values(self, net: Net, spec: ModelSpec) -> dict[str, np.ndarray]:
        """All parameters of a model, in definition order."""
        rng = np.random.default_rng(spec.seed)
        group = DOMAINS[spec.domain][0]
        n3 = max(net.n_layers - 1, 1)
        i3 = 0
        out: dict[str, np.ndarray] = {}
        for p in net.params:
            if p.init == "filters3x3":
                out[p.name] = self.filters(rng, group, i3 / n3, p.shape[0], p.shape[1])
                i3 += 1
            elif p.init in ("he", "linear"):
                gain = 2.0 if p.init == "he" else 1.0
                out[p.name] = rng.standard_normal(p.shape, dtype=np.float32) * np.float32(math.sqrt(gain / p.fan_in))
            elif p.init == "bn_weight":
                out[p.name] = (1 + 0.1 * rng.standard_normal(p.shape)).astype(np.float32)
            elif p.init == "bn_var":
                out[p.name] = (1 + 0.3 * np.abs(rng.standard_normal(p.shape))).astype(np.float32)
            elif p.init == "count":
                out[p.name] = np.array(int(rng.integers(10_000, 1_000_000)), np.int64)
            else:  # bn_bias, bn_mean, bias
                out[p.name] = (0.05 * rng.standard_normal(p.shape)).astype(np.float32)
        return out


# --------------------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------------------

def write_torch(path: Path, values: dict[str, np.ndarray], wrap: str) -> None:
    import torch

    state = {(f"module.{k}" if wrap == "module" else k): torch.from_numpy(v) for k, v in values.items()}
    torch.save({"state_dict": state, "epoch": 90, "best_acc1": 0.7} if wrap == "checkpoint" else state, path)


def write_safetensors(path: Path, values: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in values.items()}, str(path), metadata={"format": "pt"})


def write_onnx(path: Path, net: Net, values: dict[str, np.ndarray]) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(values[p.name], p.name) for p in net.params if p.in_onnx]
    inits += [numpy_helper.from_array(v, k) for k, v in net.consts.items()]
    nodes = [helper.make_node(n.op, n.inputs, [n.output], name=n.name, **n.attrs) for n in net.nodes]
    graph = helper.make_graph(
        nodes, net.arch, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, net.in_channels, 224, 224])],
        [helper.make_tensor_value_info(net.output, TensorProto.FLOAT, ["batch", "out", "h", "w"][:net.output_rank])],
        inits)
    model = helper.make_model(graph, producer_name="filterlake-bench", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def write_model(spec: ModelSpec, out: Path, pool: dict[str, list[list[np.ndarray]]]) -> dict[str, Any]:
    """Write one model and its sidecar; returns its manifest entry."""
    net = BUILDERS[spec.builder](**spec.args)
    values = Sampler.of(pool).values(net, spec)
    folder = out / spec.family
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.name}{SUFFIX[spec.fmt]}"
    if spec.fmt == "torch":
        write_torch(path, values, spec.wrap)
    elif spec.fmt == "safetensors":
        write_safetensors(path, values)
    else:
        write_onnx(path, net, values)
    _pool, modality, task = DOMAINS[spec.domain]
    meta = {"name": spec.name, "architecture": net.arch, "task": task, "domain": spec.domain, "modality": modality,
            "training_dataset": "synthetic (filterlake bench, resampled from ../shared/corpus)",
            "license": "CC0-1.0", "extra": {"bench_family": spec.family, "bench_seed": spec.seed}}
    path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))
    return {"path": str(path.relative_to(out)), "name": spec.name, "format": spec.fmt, "family": spec.family,
            "architecture": net.arch, "domain": spec.domain, "n_filters": spec.n_filters,
            "n_layers_3x3": spec.n_layers, "bytes": path.stat().st_size}


_SAMPLERS: dict[int, Sampler] = {}
_WORKER_POOL: dict[str, list[list[np.ndarray]]] | None = None


def _init_worker(corpus: str) -> None:
    global _WORKER_POOL
    _WORKER_POOL = load_pool(Path(corpus))


def _write_one(args: tuple[ModelSpec, str]) -> dict[str, Any]:
    spec, out = args
    assert _WORKER_POOL is not None
    return write_model(spec, Path(out), _WORKER_POOL)


def generate(out: Path, n_filters: int, seed: int = 0, n_models: int | None = None,
             max_model_filters: int | None = None, family: str | None = None, formats: Iterable[str] = FORMATS,
             corpus: Path = CORPUS, jobs: int = 1, prefix: str = "m", parts: int = 1,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write a zoo to `out` (which must not hold one already) and return its manifest (also `out/zoo.json`).

    `parts` > 1 makes the zoo out of that many independent zoos of `n_filters` each (seeds seed .. seed+parts-1):
    a zoo of scale s is s base zoos, so every scale has the same distribution of models and layers, and the
    zoo of scale 1 is the first part of the zoo of scale 10.
    """
    start = time.perf_counter()
    out = Path(out)
    if (out / "zoo.json").exists():
        raise FileExistsError(f"{out} already holds a zoo; delete it first")
    out.mkdir(parents=True, exist_ok=True)
    specs = [spec for part in range(parts)
             for spec in plan(n_filters, seed + part, n_models, max_model_filters, family, formats, prefix)]
    load_pool(corpus)  # build the cache once before workers start
    entries: list[dict[str, Any]] = []
    if jobs > 1 and len(specs) > 1:
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(str(corpus),)) as ex:
            for entry in ex.map(_write_one, [(s, str(out)) for s in specs], chunksize=max(1, len(specs) // 64)):
                entries.append(entry)
                if progress:
                    progress(len(entries), len(specs))
    else:
        pool = load_pool(corpus)
        for spec in specs:
            entries.append(write_model(spec, out, pool))
            if progress:
                progress(len(entries), len(specs))
    manifest = {
        "n_models": len(entries), "n_filters": sum(e["n_filters"] for e in entries),
        "n_layers_3x3": sum(e["n_layers_3x3"] for e in entries), "bytes": sum(e["bytes"] for e in entries),
        "requested_filters": n_filters * parts, "requested_models": n_models, "seed": seed, "parts": parts,
        "max_model_filters": None if n_models is not None else (max_model_filters
                                                               or default_max_model_filters(n_filters)),
        "family": family, "formats": _count(e["format"] for e in entries),
        "families": _count(e["family"] for e in entries), "domains": _count(e["domain"] for e in entries),
        "seconds": round(time.perf_counter() - start, 3), "models": entries,
    }
    (out / "zoo.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def checkpoint_files(zoo: Path) -> list[Path]:
    """The checkpoint files of a generated zoo (from its zoo.json)."""
    manifest = json.loads((Path(zoo) / "zoo.json").read_text())
    return [Path(zoo) / m["path"] for m in manifest["models"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--filters", type=int, required=True, help="3x3 filters in total (budget)")
    parser.add_argument("--models", type=int, help="exactly this many models (default family: tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-model-filters", type=int)
    parser.add_argument("--family", choices=[*FAMILY_WEIGHTS, "tiny"])
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--parts", type=int, default=1, help="this many independent zoos of --filters each")
    args = parser.parse_args(argv)
    manifest = generate(args.out, args.filters, args.seed, args.models, args.max_model_filters, args.family,
                        args.formats.split(","), jobs=args.jobs, parts=args.parts)
    summary = {k: v for k, v in manifest.items() if k != "models"}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
