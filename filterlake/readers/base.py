"""What every reader yields: conv weights found in a checkpoint, with their names and a lazy loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

# How the orientation of a 4-D weight is known: "conv" (a real Conv2d/ONNX Conv), "transposed" (known to be a
# ConvTranspose, excluded from filters), "unknown" (a bare tensor, e.g. in a state dict: counted as a conv).
Kind = Literal["conv", "transposed", "unknown"]


# Layouts of conv weights by rank, as stored: channel-first (PyTorch, ONNX) and channel-last (MLX, TF).
CHANNEL_FIRST: dict[int, str] = {3: "OIW", 4: "OIHW", 5: "OIDHW"}
CHANNEL_LAST: dict[int, str] = {3: "OWI", 4: "OHWI", 5: "ODHWI"}


def is_channel_last(layout: str) -> bool:
    """True for an [out, *kernel, in] layout (OHWI, ...), whose input channels are the last dimension."""
    return layout.startswith("O") and layout.endswith("I")


@dataclass(frozen=True)
class ResolvedWeight:
    """A weight resolved through a graph's producer chain: shape, stored dtype, the name of the constant at the
    root of the chain, and a lazy float32 loader (the ONNX and TFLite readers share it)."""

    shape: tuple[int, ...]
    dtype: str
    name: str
    load: Callable[[], np.ndarray]


def graph_levels(predecessors: list[set[int]], sources: set[int]) -> dict[int, int]:
    """Longest-path level of each node of a DAG from the `sources` (level 0), given each node's predecessors;
    nodes not reached from a source (e.g. fed by constants only) have no level (methods.md §1.1)."""
    successors: list[list[int]] = [[] for _ in predecessors]
    for i, before in enumerate(predecessors):
        for j in before:
            successors[j].append(i)
    pending = [len(before) for before in predecessors]
    ready = [i for i, n in enumerate(pending) if n == 0]
    level = {i: 0 for i in sources}
    while ready:
        i = ready.pop()
        for j in successors[i]:
            if i in level:
                level[j] = max(level.get(j, 0), level[i] + 1)
            pending[j] -= 1
            if pending[j] == 0:
                ready.append(j)
    return level


@dataclass(frozen=True)
class ConvTensor:
    """One convolution weight of a checkpoint (any kernel size and rank), loaded only when `load()` is called.

    `shape` and `layout` are as stored in the file; `load()` returns float32 in canonical channel-first order
    (O, I/groups, *kernel), i.e. an MLX/TF `[out, kH, kW, in]` tensor comes back transposed to OIHW. Non-finite
    values are returned as they are (extraction counts them).
    """

    name: str  # layer name without a trailing ".weight", e.g. "layer1.0.conv1"
    shape: tuple[int, ...]
    dtype: str  # dtype as stored: "float32", "float16", "bfloat16", "float64", ...
    layout: str  # layout of `shape`: "OIHW", "OHWI" (channel-last), "OIW" (1-D), "OIDHW" (3-D), ...
    load: Callable[[], np.ndarray] = field(repr=False, compare=False)
    kind: Kind = "unknown"
    groups: int | None = None  # from the graph when the format records it
    dilation: tuple[int, ...] | None = None
    level: int | None = None  # graph level (longest path from an input) when the format has a graph
    trainable: bool | None = None  # False when frozen in the file's config (Keras); None when not recorded

    @property
    def in_channels(self) -> int:
        """Input channels per group as stored (the last dimension of a channel-last layout)."""
        return self.shape[-1] if is_channel_last(self.layout) else self.shape[1]

    @property
    def kernel(self) -> tuple[int, ...]:
        """Kernel dims (spatial) in canonical order."""
        if is_channel_last(self.layout):
            return tuple(self.shape[1:-1])
        return tuple(self.shape[2:])


@dataclass
class Checkpoint:
    """A checkpoint opened by a reader: its conv weights in graph/definition order, and provenance."""

    path: Path
    format: str  # "onnx", "safetensors", "torch-state-dict", "torch-checkpoint-dict", "torchscript", "torch-full-pickle", "torch-legacy-pickle"
    files: list[
        Path
    ]  # every file whose bytes make up the model (main file first, then external data / shards)
    load_method: str  # e.g. "torch.load(weights_only=True)", "restricted-unpickler", "onnx", "safetensors"
    tensors: list[ConvTensor]
    depth_source: Literal["graph", "definition_order"] = "definition_order"
    notes: list[str] = field(default_factory=list)
