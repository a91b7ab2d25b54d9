"""Turn the conv weights of a checkpoint into 3x3 layer records and (n, 9) float32 filter blocks.

Every 2-D conv weight with a 3x3 kernel becomes C_out x C_in/groups filters in row-major order
(filter_idx = o * in_channels + i); other kernels, 1-D/3-D convs and transposed convs are only counted.
Everything except the filters themselves is decided from shapes, before any weight is loaded.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from filterlake.readers.base import Checkpoint, ConvTensor

SKIP_REASONS = ("1x1", "other_kernel", "non_square", "1d", "3d", "transposed", "unresolved")


@dataclass(frozen=True)
class LayerRecord:
    """Shape-level facts of one 3x3 layer (the `layers` row, minus what needs the weights)."""

    layer_idx: int
    layer_name: str
    in_channels: int
    out_channels: int
    groups: int | None
    dilation: int | None
    n_filters: int
    filter_offset: int
    conv_depth: int
    conv_depth_norm: float
    layer_depth: int | None
    dtype: str
    layout: str
    orientation: str


@dataclass
class ModelShape:
    """What a checkpoint holds, decided from shapes alone: its 3x3 layers and the counts of everything skipped."""

    layers: list[LayerRecord]
    tensors: list[ConvTensor]  # the tensor behind each layer, same order
    skipped: Counter = field(default_factory=Counter)
    kernel_shapes: Counter = field(default_factory=Counter)
    n_conv_layers: int = 0

    @property
    def n_filters(self) -> int:
        return sum(layer.n_filters for layer in self.layers)

    def kernel_shapes_json(self) -> str:
        return json.dumps(dict(sorted(self.kernel_shapes.items())), sort_keys=True)

    def message(self) -> str | None:
        """A plain note for models that yield no filters."""
        if self.layers:
            return None
        if not self.n_conv_layers:
            return "no convolution weights found: recorded with zero filters"
        kinds = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return f"no 2-D 3x3 conv layers ({kinds}): recorded with zero filters"


def skip_reason(tensor: ConvTensor) -> str | None:
    """Why a conv weight yields no 3x3 filters, or None when it is a 2-D 3x3 conv."""
    rank = len(tensor.shape)
    if rank == 3:
        return "1d"
    if rank == 5:
        return "3d"
    if rank != 4:
        return "other_kernel"
    if tensor.kind == "transposed":
        return "transposed"
    kh, kw = tensor.kernel
    if (kh, kw) == (3, 3):
        return None
    if (kh, kw) == (1, 1):
        return "1x1"
    return "other_kernel" if kh == kw else "non_square"


def _conv_depths(tensors: list[ConvTensor], depth_source: str) -> dict[int, tuple[int, float]]:
    """conv_depth and its normalisation per 2-D conv (index into `tensors`), as in methods.md 1.1.

    Levels are graph levels when the format has a graph, else each 2-D conv's rank in definition order.
    """
    convs = [i for i, t in enumerate(tensors) if len(t.shape) == 4 and t.kind != "transposed"]
    if depth_source == "graph" and all(tensors[i].level is not None for i in convs):
        level = {i: int(tensors[i].level) for i in convs}
    else:
        level = {i: rank for rank, i in enumerate(convs)}
    ranks = {lv: r for r, lv in enumerate(sorted(set(level.values())))}
    top = max(len(ranks) - 1, 1)
    return {i: (ranks[level[i]], ranks[level[i]] / top if len(ranks) > 1 else 0.0) for i in convs}


def model_shape(checkpoint: Checkpoint) -> ModelShape:
    """Classify every conv weight of a checkpoint and lay out its 3x3 layers."""
    tensors = checkpoint.tensors
    depths = _conv_depths(tensors, checkpoint.depth_source)
    shape = ModelShape(layers=[], tensors=[], n_conv_layers=len(tensors))
    shape.skipped["unresolved"] = sum(1 for n in checkpoint.notes if n.startswith("unresolved"))
    offset = 0
    for i, tensor in enumerate(tensors):
        reason = skip_reason(tensor)
        if len(tensor.shape) >= 3:
            shape.kernel_shapes["x".join(map(str, tensor.kernel))] += tensor.shape[0] * _in_channels(tensor)
        if reason is not None:
            shape.skipped[reason] += 1
            continue
        out_ch, in_ch = tensor.shape[0], _in_channels(tensor)
        depth, depth_norm = depths[i]
        shape.layers.append(LayerRecord(
            layer_idx=len(shape.layers), layer_name=tensor.name, in_channels=in_ch, out_channels=out_ch,
            groups=tensor.groups, dilation=tensor.dilation[0] if tensor.dilation else None,
            n_filters=out_ch * in_ch, filter_offset=offset, conv_depth=depth, conv_depth_norm=depth_norm,
            layer_depth=tensor.level, dtype=tensor.dtype, layout=tensor.layout,
            orientation="conv" if tensor.kind == "conv" else "unknown",
        ))
        shape.tensors.append(tensor)
        offset += out_ch * in_ch
    shape.skipped = Counter({k: v for k, v in shape.skipped.items() if v})
    return shape


def _in_channels(tensor: ConvTensor) -> int:
    """Input channels per group as stored (last dim for channel-last layouts)."""
    return tensor.shape[-1] if tensor.layout.endswith("I") and tensor.layout.startswith("O") else tensor.shape[1]


def layer_filters(layer: LayerRecord, tensor: ConvTensor) -> np.ndarray:
    """Load one layer's weight and return its filters as a C-ordered (n, 9) float32 array."""
    weight = tensor.load()
    expected = (layer.out_channels, layer.in_channels, 3, 3)
    if tuple(weight.shape) != expected:
        raise ValueError(f"layer {tensor.name}: weight loaded with shape {tuple(weight.shape)}, expected {expected}")
    return np.ascontiguousarray(weight, dtype=np.float32).reshape(-1, 9)


def iter_filters(shape: ModelShape) -> Iterator[tuple[LayerRecord, np.ndarray]]:
    """Yield each 3x3 layer with its filters, one layer in memory at a time."""
    for layer, tensor in zip(shape.layers, shape.tensors):
        yield layer, layer_filters(layer, tensor)
