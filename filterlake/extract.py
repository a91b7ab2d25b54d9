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
from filterlake.vocab import DEPTH_CHANNEL_CHAIN, DEPTH_DEFINITION_ORDER, DEPTH_GRAPH

SKIP_REASONS = ("1x1", "other_kernel", "non_square", "1d", "3d", "transposed", "unresolved")
# A channel chain starts at a conv reading an image (grey or RGB) and decides depth only when it places
# more than MIN_CHAIN_SHARE of the 2-D convs (see `conv_levels`).
IMAGE_CHANNELS = (1, 3)
MIN_CHAIN_SHARE = 0.5


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
    # False: frozen in the checkpoint's config (a pretrained backbone); None: the format does not record it
    trainable: bool | None


@dataclass
class ModelShape:
    """What a checkpoint holds, decided from shapes alone: its 3x3 layers and the counts of everything skipped."""

    layers: list[LayerRecord]
    tensors: list[ConvTensor]  # the tensor behind each layer, same order
    skipped: Counter = field(default_factory=Counter)
    kernel_shapes: Counter = field(default_factory=Counter)
    n_conv_layers: int = 0
    depth_source: str = DEPTH_DEFINITION_ORDER  # how conv_depth was decided (`models.depth_source`)

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


def _is_2d_conv(tensor: ConvTensor) -> bool:
    """True for a 2-D conv weight of any kernel size that counts for depth (transposed convs do not)."""
    return len(tensor.shape) == 4 and tensor.kind != "transposed"


def _full_in_channels(tensor: ConvTensor) -> int:
    """Input channels of the whole conv: per-group channels times groups where the format records groups."""
    return tensor.in_channels * (tensor.groups or 1)


def _read_channels(tensor: ConvTensor) -> set[int]:
    """Channel counts a conv can take as input; a bare tensor with 1 input channel may be depthwise."""
    if tensor.groups is not None:
        return {_full_in_channels(tensor)}
    return {1, tensor.shape[0]} if tensor.in_channels == 1 else {tensor.in_channels}


def _reads_itself(tensor: ConvTensor) -> int:
    """1 when a conv could read its own output (so it does not count as a reader of it), else 0."""
    return int(tensor.shape[0] in _read_channels(tensor))


def _next_link(
    tensors: list[ConvTensor], current: int, left: list[int], readers: Counter, avoid_dead_ends: bool
) -> int | None:
    """The unplaced conv that reads `current`'s output, or None (see `conv_levels` for the preferences)."""
    out = tensors[current].shape[0]
    options = [i for i in left if out in _read_channels(tensors[i])]
    if avoid_dead_ends:
        options = [i for i in options if readers[tensors[i].shape[0]] > _reads_itself(tensors[i])] or options
    return min(options, key=lambda i: (i - current) % len(tensors), default=None)


def channel_chain(tensors: list[ConvTensor], avoid_dead_ends: bool = False) -> list[int]:
    """The 2-D convs (indices into `tensors`) linked from the image input by matching channel counts."""
    convs = [i for i, t in enumerate(tensors) if _is_2d_conv(t)]
    start = next((i for i in convs if _full_in_channels(tensors[i]) in IMAGE_CHANNELS), None)
    if start is None:
        return []
    chain, left = [start], [i for i in convs if i != start]
    readers = Counter(c for i in left for c in _read_channels(tensors[i]))
    while (link := _next_link(tensors, chain[-1], left, readers, avoid_dead_ends)) is not None:
        chain.append(link)
        left.remove(link)
        readers.subtract(_read_channels(tensors[link]))
    return chain


def _with_unplaced(chain: list[int], convs: list[int]) -> list[int]:
    """The chain with each unplaced conv right after the chain conv defined last before it (or first)."""
    placed, anchor = set(chain), None
    after: dict[int | None, list[int]] = {}
    for i in convs:
        if i in placed:
            anchor = i
        else:
            after.setdefault(anchor, []).append(i)
    return [*after.get(None, []), *(j for i in chain for j in (i, *after.get(i, [])))]


def conv_levels(tensors: list[ConvTensor], depth_source: str) -> tuple[dict[int, int], str]:
    """Level of each 2-D conv (index into `tensors`) and its source: graph, channel_chain or definition_order.

    graph: the format's graph levels (ONNX), when every 2-D conv has one (methods.md 1.1).

    channel_chain (no graph: state dicts, TorchScript, pickles). Definition order is not run order (VDSR
    defines `residual_layer` before `input`), so the chain follows the channel counts instead:
    - start at the first conv in definition order whose input has 1 or 3 channels (an image);
    - then repeatedly link to an unplaced conv whose input channels equal the last one's output channels:
      the whole conv's input channels (per group x groups) where groups are known; a bare tensor with 1 input
      channel also links when its outputs equal the last outputs (taken as depthwise);
    - among several, take the first after the last one in definition order, wrapping round to the start, so
      blocks are walked in the order written and a downsample that reads the same channels is not taken in
      place of the next block;
    - when that chain is too short (below), build it again preferring convs whose output some other unplaced
      conv reads: VDSR's `input` 1->64 then links to `residual_layer.0`, not to the dead-end 64->1 `output`
      defined right after it. Only as a retry: at the end of a chain the true last conv is a dead end too,
      while a leftover side conv (an earlier bottleneck downsample) may not be;
    - convs the chain cannot place (ResNet downsample/shortcut convs, U-Net decoder convs whose concatenated
      input width matches no previous output, all heads but one, other branches) keep their definition-order
      position relative to the placed ones: each goes right after the chain conv defined last before it
      (first when there is none). Every conv gets a level of its own; parallel branches do not share one
      as in a graph, so a model with unplaced convs has slightly deeper levels after them.

    definition_order: each 2-D conv's rank in definition order, when there is no graph and neither chain
    places more than half of the 2-D convs (no image-input conv; a chain cut short by grouped convs or
    concatenations): most levels would then come from definition order anyway, and a short chain that jumps
    across the model (ESPNetv2) is not to be trusted. A chain in definition order gives the same levels.
    """
    convs = [i for i, t in enumerate(tensors) if _is_2d_conv(t)]
    if depth_source == DEPTH_GRAPH and all(tensors[i].level is not None for i in convs):
        return {i: int(tensors[i].level) for i in convs}, DEPTH_GRAPH
    for avoid_dead_ends in (False, True):
        chain = channel_chain(tensors, avoid_dead_ends)
        if len(chain) > MIN_CHAIN_SHARE * len(convs):
            return {i: rank for rank, i in enumerate(_with_unplaced(chain, convs))}, DEPTH_CHANNEL_CHAIN
    return {i: rank for rank, i in enumerate(convs)}, DEPTH_DEFINITION_ORDER


def _conv_depths(tensors: list[ConvTensor], depth_source: str) -> tuple[dict[int, tuple[int, float]], str]:
    """conv_depth and its normalisation per conv (index into `tensors`; methods.md 1.1), and the source."""
    level, source = conv_levels(tensors, depth_source)
    ranks = {lv: r for r, lv in enumerate(sorted(set(level.values())))}
    top = max(len(ranks) - 1, 1)
    depths = {i: (ranks[level[i]], ranks[level[i]] / top if len(ranks) > 1 else 0.0) for i in level}
    return depths, source


def model_shape(checkpoint: Checkpoint) -> ModelShape:
    """Classify every conv weight of a checkpoint and lay out its 3x3 layers."""
    tensors = checkpoint.tensors
    depths, depth_source = _conv_depths(tensors, checkpoint.depth_source)
    shape = ModelShape(layers=[], tensors=[], n_conv_layers=len(tensors), depth_source=depth_source)
    shape.skipped["unresolved"] = sum(1 for n in checkpoint.notes if n.startswith("unresolved"))
    offset = 0
    for i, tensor in enumerate(tensors):
        reason = skip_reason(tensor)
        if len(tensor.shape) >= 3:
            shape.kernel_shapes["x".join(map(str, tensor.kernel))] += tensor.shape[0] * tensor.in_channels
        if reason is not None:
            shape.skipped[reason] += 1
            continue
        out_ch, in_ch = tensor.shape[0], tensor.in_channels
        depth, depth_norm = depths[i]
        shape.layers.append(
            LayerRecord(
                layer_idx=len(shape.layers),
                layer_name=tensor.name,
                in_channels=in_ch,
                out_channels=out_ch,
                groups=tensor.groups,
                dilation=tensor.dilation[0] if tensor.dilation else None,
                n_filters=out_ch * in_ch,
                filter_offset=offset,
                conv_depth=depth,
                conv_depth_norm=depth_norm,
                layer_depth=tensor.level,
                dtype=tensor.dtype,
                layout=tensor.layout,
                orientation="conv" if tensor.kind == "conv" else "unknown",
                trainable=tensor.trainable,
            )
        )
        shape.tensors.append(tensor)
        offset += out_ch * in_ch
    shape.skipped = Counter({k: v for k, v in shape.skipped.items() if v})
    return shape


def layer_filters(layer: LayerRecord, tensor: ConvTensor) -> np.ndarray:
    """Load one layer's weight and return its filters as a C-ordered (n, 9) float32 array."""
    weight = tensor.load()
    expected = (layer.out_channels, layer.in_channels, 3, 3)
    if tuple(weight.shape) != expected:
        raise ValueError(
            f"layer {tensor.name}: weight loaded with shape {tuple(weight.shape)}, expected {expected}"
        )
    return np.ascontiguousarray(weight, dtype=np.float32).reshape(-1, 9)


def iter_filters(shape: ModelShape) -> Iterator[tuple[LayerRecord, np.ndarray]]:
    """Yield each 3x3 layer with its filters, one layer in memory at a time."""
    for layer, tensor in zip(shape.layers, shape.tensors):
        yield layer, layer_filters(layer, tensor)
