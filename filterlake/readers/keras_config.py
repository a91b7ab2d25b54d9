"""Keras model configs, read as data: layer classes, Keras 3 weight names (class counters), graph levels from inbound_nodes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filterlake.errors import CheckpointError

CONV = {"Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D"}
DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
SEPARABLE = {"SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D"}
TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Deconvolution2D", "Deconvolution3D"}
CONTAINERS = {"Functional", "Sequential", "Model"}
FLOAT_DTYPES = {"float16", "float32", "float64"}
MAX_ELEMENTS = 1 << 30  # one weight of more than 2**30 values (4 GiB as float32) is refused as absurd
MAX_CONFIG_BYTES = 256 << 20
MAX_IN_MEMORY_MEMBER = 256 << 20  # a compressed model.weights.h5 up to this size is inflated into memory
MAX_NESTING = 64


# ----------------------------------------------------------------------------------------------- config model


@dataclass(frozen=True)
class _Layer:
    """One weight-bearing layer of the config: its qualified name, class, config and graph level."""

    name: str  # config name; nested layers as "outer/inner"
    class_name: str
    config: dict[str, Any]
    trainable: bool  # effective: False when the layer or any enclosing model is frozen
    level: int | None
    weights: tuple[str, ...]  # HDF5 paths of its weights in order (kernel first), resolved by the reader


def to_snake_case(name: str) -> str:
    """Keras 3's `naming.to_snake_case` (the saving rule for weight paths): Conv2D -> conv2d."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def _parse_config(path: Path, raw: Any, what: str) -> dict[str, Any]:
    """Decode a JSON model config (bytes or str) to a dict with class_name and config."""
    if isinstance(raw, np.ndarray) and raw.shape == ():
        raw = raw.item()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(path, f"{what} is not UTF-8 text ({exc.reason})") from exc
    if not isinstance(raw, str):
        raise CheckpointError(path, f"{what} is not a JSON string (found {type(raw).__name__})")
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(path, f"{what} is not valid JSON ({detail})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise CheckpointError(path, f"{what} is not a Keras model config (no class_name)")
    return config


def _layers_of(path: Path, entry: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The layer entries of a container config (Functional, Sequential, Model), None for other layers."""
    config = entry.get("config")
    layers = (
        config if isinstance(config, list) else config.get("layers") if isinstance(config, dict) else None
    )
    if layers is None:
        return None
    if not isinstance(layers, list) or not all(
        isinstance(layer, dict) and isinstance(layer.get("class_name"), str) for layer in layers
    ):
        raise CheckpointError(path, f"model config of {entry.get('class_name')}: malformed layers list")
    return layers


def _name(entry: dict[str, Any]) -> str:
    config = entry.get("config")
    name = entry.get("name") or (config.get("name") if isinstance(config, dict) else None)
    return str(name) if name is not None else ""


def _history(node: Any) -> Iterator[str]:
    """Names of the layers feeding one inbound node (Keras 2 lists or Keras 3 keras_history dicts)."""
    if isinstance(node, dict):
        history = (
            node.get("config", {}).get("keras_history") if isinstance(node.get("config"), dict) else None
        )
        if isinstance(history, list) and history and isinstance(history[0], str):
            yield history[0]
        for key, value in node.items():
            if key != "config" or history is None:
                yield from _history(value)
    elif isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
            yield node[0]  # Keras 2: [layer_name, node_index, tensor_index, kwargs]
        else:
            for item in node:
                yield from _history(item)


def _levels(path: Path, entries: list[dict[str, Any]], base: int, sequential: bool) -> dict[str, int]:
    """Graph level (longest path from an input) of the output of each layer of one container."""
    parents: dict[str, set[str]] = {}
    for entry in entries:
        nodes = entry.get("inbound_nodes") or []
        parents[_name(entry)] = set(_history(nodes))
    by_name = {_name(entry): entry for entry in entries}
    level: dict[str, int] = {}
    if sequential or not any(parents.values()):
        at = base
        for entry in entries:
            at += _cost(path, entry, at)
            level[_name(entry)] = at
        return level
    visiting: set[str] = set()

    def visit(name: str, depth: int) -> int:
        if name in level:
            return level[name]
        if name in visiting or depth > len(entries) + 1:
            raise CheckpointError(path, f"model config: the layer graph has a cycle through {name!r}")
        visiting.add(name)
        known = [visit(p, depth + 1) for p in parents.get(name, ()) if p in by_name]
        start = max(known) if known else base
        level[name] = start + _cost(path, by_name[name], start) if name in by_name else start
        visiting.discard(name)
        return level[name]

    for name in by_name:
        visit(name, 0)
    return level


def _cost(path: Path, entry: dict[str, Any], start: int) -> int:
    """Levels a layer adds: 0 for inputs, 2 for a separable conv (depthwise, then pointwise), a nested model's
    longest path, else 1."""
    cls = entry["class_name"]
    if cls == "InputLayer":
        return 0
    if cls in SEPARABLE:
        return 2
    inner = _layers_of(path, entry) if cls in CONTAINERS else None
    if inner:
        levels = _levels(path, inner, 0, cls == "Sequential")
        return max(levels.values(), default=0)
    return 1


def _walk(
    path: Path, entries: list[dict[str, Any]], cls: str, prefix: str, base: int, trainable: bool, depth: int
) -> Iterator[tuple[dict[str, Any], str, int | None, bool, list[str]]]:
    """(layer entry, qualified name, level, effective trainable, Keras 3 container path) in config order."""
    if depth > MAX_NESTING:
        raise CheckpointError(path, f"model config nests models more than {MAX_NESTING} deep")
    levels = _levels(path, entries, base, cls == "Sequential")
    used: dict[str, int] = {}
    for entry in entries:
        name = _name(entry)
        snake = to_snake_case(entry["class_name"])
        used[snake] = used.get(snake, -1) + 1
        stored = snake if used[snake] == 0 else f"{snake}_{used[snake]}"
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        own = trainable and config.get("trainable", True) is not False
        inner = _layers_of(path, entry) if entry["class_name"] in CONTAINERS else None
        qualified = f"{prefix}{name}"
        if inner is not None:
            end = levels.get(name, base)
            start = end - _cost(path, entry, 0)
            for item in _walk(path, inner, entry["class_name"], f"{qualified}/", start, own, depth + 1):
                yield item[0], item[1], item[2], item[3], [stored, *item[4]]
            continue
        level = levels.get(name)
        if level is not None and entry["class_name"] in SEPARABLE:
            level -= 1  # the depthwise half; the pointwise half is one level on
        yield entry, qualified, level, own, [stored]


def _model_layers(
    path: Path, model: dict[str, Any]
) -> list[tuple[dict[str, Any], str, int | None, bool, list[str]]]:
    """Every layer of a model config (nested models flattened), see `_walk`."""
    layers = _layers_of(path, model)
    if layers is None:
        raise CheckpointError(path, f"model config of class {model['class_name']} lists no layers")
    trainable = not (isinstance(model.get("config"), dict) and model["config"].get("trainable") is False)
    return list(_walk(path, layers, model["class_name"], "", 0, trainable, 0))


def is_weighted_conv(class_name: str) -> bool:
    return class_name in CONV | DEPTHWISE | SEPARABLE | TRANSPOSED


# ------------------------------------------------------------------------------------------------ HDF5 access
