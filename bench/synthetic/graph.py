"""A tiny graph builder that records a net's parameters (for state dicts) and nodes (for ONNX) together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Value = tuple[str, int]  # a graph value: its name and its channel count


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
    """One ONNX node: operator, input and output value names, attributes."""

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
        """The net's 3x3 filters (output x input channels of every 3x3 conv), as filterlake counts them."""
        return sum(p.shape[0] * p.shape[1] for p in self.params if p.init == "filters3x3")

    @property
    def n_layers(self) -> int:
        """The net's 3x3 conv layers."""
        return sum(1 for p in self.params if p.init == "filters3x3")

    def _value(self) -> str:
        """A fresh value name."""
        self._n += 1
        return f"t{self._n}"

    def node(self, op: str, inputs: list[str], attrs: dict[str, Any] | None = None, name: str = "") -> str:
        """Append a node; returns its output value name."""
        out = self._value()
        self.nodes.append(Node(op, inputs, out, attrs or {}, name or f"{op}_{len(self.nodes)}"))
        return out

    def conv(
        self,
        x: Value,
        c_out: int,
        k: int,
        prefix: str,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        bias: bool = False,
        bn: str | None = "",
        relu: bool = True,
    ) -> Value:
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
        attrs = {
            "kernel_shape": [k, k],
            "strides": [stride, stride],
            "pads": [pad] * 4,
            "group": groups,
            "dilations": [dilation, dilation],
        }
        y = self.node("Conv", inputs, attrs, prefix)
        if bn is not None:
            y = self.batchnorm((y, c_out), bn or _bn_name(prefix))[0]
        if relu:
            y = self.node("Relu", [y])
        return y, c_out

    def conv_transpose(self, x: Value, c_out: int, k: int, prefix: str) -> Value:
        """A stride-k transposed conv (torch layout (C_in, C_out, k, k)); never 3x3 here."""
        src, c_in = x
        self.params.append(Param(f"{prefix}.weight", (c_in, c_out, k, k), "he", c_in * k * k))
        self.params.append(Param(f"{prefix}.bias", (c_out,), "bias"))
        inputs = [src, f"{prefix}.weight", f"{prefix}.bias"]
        y = self.node("ConvTranspose", inputs, {"kernel_shape": [k, k], "strides": [k, k]}, prefix)
        return y, c_out

    def batchnorm(self, x: Value, prefix: str) -> Value:
        """BatchNorm with its four stored vectors and the state dict's `num_batches_tracked`."""
        src, c = x
        names = [f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
        for name, init in zip(names, ("bn_weight", "bn_bias", "bn_mean", "bn_var")):
            self.params.append(Param(name, (c,), init))
        self.params.append(Param(f"{prefix}.num_batches_tracked", (), "count", in_onnx=False))
        return self.node("BatchNormalization", [src, *names], {"epsilon": 1e-5}, prefix), c

    def maxpool(self, x: Value, k: int = 2) -> Value:
        """A k x k max pool of stride k."""
        return self.node("MaxPool", [x[0]], {"kernel_shape": [k, k], "strides": [k, k]}), x[1]

    def add(self, a: Value, b: Value) -> Value:
        """A residual sum followed by ReLU."""
        return self.node("Relu", [self.node("Add", [a[0], b[0]])]), a[1]

    def concat(self, a: Value, b: Value) -> Value:
        """Channel concatenation (U-Net skips)."""
        return self.node("Concat", [a[0], b[0]], {"axis": 1}), a[1] + b[1]

    def upsample(self, x: Value) -> Value:
        """Nearest 2x resize (its scales are an ONNX-only constant)."""
        if "up_scales" not in self.consts:
            self.consts["up_scales"] = np.array([1, 1, 2, 2], np.float32)
        return self.node("Resize", [x[0], "", "up_scales"], {"mode": "nearest"}), x[1]

    def head(self, x: Value, classes: int, prefix: str = "fc") -> None:
        """Global average pool + flatten + linear layer."""
        y = self.node("Flatten", [self.node("GlobalAveragePool", [x[0]])])
        self.params.append(Param(f"{prefix}.weight", (classes, x[1]), "linear", x[1]))
        self.params.append(Param(f"{prefix}.bias", (classes,), "bias"))
        self.output = self.node("Gemm", [y, f"{prefix}.weight", f"{prefix}.bias"], {"transB": 1}, prefix)
        self.output_rank = 2

    def seg_head(self, x: Value, classes: int, prefix: str = "final") -> None:
        """A 1x1 conv to per-pixel classes (segmentation output of rank 4)."""
        self.output = self.conv(x, classes, 1, prefix, bias=True, bn=None, relu=False)[0]
        self.output_rank = 4


def _bn_name(prefix: str) -> str:
    """The BatchNorm name torchvision-style code gives a conv: `layer1.0.conv1` -> `layer1.0.bn1`."""
    head, _, last = prefix.rpartition(".")
    last = last.replace("conv", "bn") if "conv" in last else f"{last}_bn"
    return f"{head}.{last}" if head else last
