"""PyTorch checkpoints: torch.load(weights_only=True) first, the restricted unpickler when torch refuses."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filterlake.errors import CheckpointError
from filterlake.readers.base import CHANNEL_FIRST, Checkpoint, ConvTensor, Kind
from filterlake.readers.detect import check_zip_expansion, describe, guarded
from filterlake.readers.dtypes import FLOAT_DTYPES
from filterlake.readers.torch_zip import check_zip_storages, load_zip
from filterlake.readers.unpickler import Inert, LazyTensor, load_legacy

PREFERRED_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights", "params")
SKIPPED_KEYS = ("optim", "sched", "scaler")  # optimizer/scheduler state also holds tensors
TensorInfo = tuple[tuple[int, ...], str, Callable[[], np.ndarray]]


@dataclass(frozen=True)
class _Found:
    """A tensor found in the object tree, with what its owning module tells about it."""

    name: str
    tensor: Any
    kind: Kind = "unknown"
    groups: int | None = None
    dilation: tuple[int, ...] | None = None
    from_module: bool = False


def _join(prefix: str, key: Any) -> str:
    """Dotted name of `key` under `prefix`."""
    return f"{prefix}.{key}" if prefix else str(key)


def _module_info(obj: Inert) -> tuple[Kind, int | None, tuple[int, ...] | None]:
    """Conv kind, groups and dilation of a pickled module, from its class name and attributes."""
    attrs, cls = obj.attributes, obj.qualname.rsplit(".", 1)[-1]
    transposed = "ConvTranspose" in cls or attrs.get("transposed") is True
    kind: Kind = "transposed" if transposed else "conv" if "Conv" in cls else "unknown"
    groups = attrs.get("groups") if type(attrs.get("groups")) is int else None
    dilation = attrs.get("dilation")
    ok = isinstance(dilation, (tuple, list)) and all(type(d) is int for d in dilation)
    return kind, groups, tuple(dilation) if ok else None


def _collect_object(
    obj: Inert, prefix: str, is_tensor: Callable[[Any], bool], seen: set[int]
) -> list[_Found]:
    """Tensors of a placeholder object: an nn.Module, a TorchScript module, or any object holding a dict."""
    attrs = obj.attributes
    if "_parameters" in attrs or "_modules" in attrs:
        members = [
            (k, v)
            for key in ("_parameters", "_buffers", "_modules")
            if isinstance(attrs.get(key), Mapping)
            for k, v in attrs[key].items()
        ]
    elif obj.qualname.startswith("__torch__."):
        members = list(attrs.items())
    else:
        pairs = [p for p in obj.items if isinstance(p, tuple) and len(p) == 2]
        return _collect({**attrs, **dict(pairs)}, prefix, is_tensor, seen)
    kind, groups, dilation = _module_info(obj)
    found = []
    for name, value in members:
        if is_tensor(value):
            found.append(_Found(_join(prefix, name), value, kind, groups, dilation, True))
        elif isinstance(value, Inert):
            found += _collect(value, _join(prefix, name), is_tensor, seen)
    return found


def _collect(obj: Any, prefix: str, is_tensor: Callable[[Any], bool], seen: set[int]) -> list[_Found]:
    """Tensors under `obj` in definition order: a module tree, a state dict, or a dict/list nesting them."""
    if is_tensor(obj):
        return [_Found(prefix, obj)]
    if id(obj) in seen or not isinstance(obj, (Mapping, Inert, list, tuple)):
        return []
    seen.add(id(obj))
    if isinstance(obj, Inert):
        return _collect_object(obj, prefix, is_tensor, seen)
    if isinstance(obj, (list, tuple)):
        obj = {str(i): value for i, value in enumerate(obj)}
    if any(is_tensor(v) for v in obj.values()):
        return [_Found(_join(prefix, k), v) for k, v in obj.items() if is_tensor(v)]
    for key in PREFERRED_KEYS:
        if key in obj and (found := _collect(obj[key], prefix, is_tensor, seen)):
            return found
    return [
        f
        for k, v in obj.items()
        if not any(s in str(k).lower() for s in SKIPPED_KEYS)
        for f in _collect(v, _join(prefix, k), is_tensor, seen)
    ]


def _layer_name(name: str) -> str:
    """Drop DataParallel `module.` prefixes and a trailing `.weight`."""
    while name.startswith("module."):
        name = name[len("module.") :]
    return name.removesuffix(".weight")


def _dict_format(obj: Any, is_tensor: Callable[[Any], bool]) -> str:
    """torch-state-dict for a flat name->tensor mapping, else torch-checkpoint-dict."""
    flat = isinstance(obj, Mapping) and any(is_tensor(v) for v in obj.values())
    return "torch-state-dict" if flat else "torch-checkpoint-dict"


def _checkpoint(
    path: Path, fmt: str, method: str, found: list[_Found], info: Callable[[Any], TensorInfo | None]
) -> Checkpoint:
    """Checkpoint of the floating 3-D/4-D/5-D tensors among `found`."""
    tensors = []
    for item in found:
        described = info(item.tensor)
        if described is None:
            continue
        shape, dtype, load = described
        name = _layer_name(item.name)
        tensors.append(
            ConvTensor(
                name,
                shape,
                dtype,
                CHANNEL_FIRST[len(shape)],
                guarded(path, f"tensor {name}", load),
                item.kind,
                item.groups,
                item.dilation,
            )
        )
    return Checkpoint(path, fmt, [path], method, tensors)


def _torch_info(tensor: Any) -> TensorInfo | None:
    """Shape, dtype and loader of a materialised torch tensor."""
    import torch

    if tensor.ndim not in CHANNEL_FIRST or not tensor.is_floating_point():
        return None
    dtype = str(tensor.dtype).removeprefix("torch.")
    return tuple(tensor.shape), dtype, lambda: np.ascontiguousarray(tensor.detach().to(torch.float32).numpy())


def _lazy_info(tensor: Any) -> TensorInfo | None:
    """Shape, dtype and loader of a tensor read by the restricted unpickler."""
    if len(tensor.shape) not in CHANNEL_FIRST or tensor.dtype not in FLOAT_DTYPES:
        return None
    return tensor.shape, tensor.dtype, tensor.numpy


def _torch_load(path: Path, mmap: bool) -> tuple[Any, str | None]:
    """torch.load with weights_only=True; (object, None), or (None, why torch refused)."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap), None
    except Exception as exc:  # noqa: BLE001 - any refusal falls back to the restricted unpickler
        return None, describe(exc)


def _mappable(path: Path) -> bool:
    """Whether torch.load may memory-map the storages of a torch zip, checked before any tensor exists.

    torch.load(mmap=True) slices each storage out of a map of the whole file at its entry's offset, by the size
    the pickle declares: it never compares that size with the entry, and maps a compressed entry's deflated
    bytes as they are. So every storage record is first checked against its entry (`check_zip_storages`), and
    a storage that does not fit refuses the file (CheckpointError). A compressed storage entry, entries outside
    the archive's folder, or a pickle the restricted unpickler cannot walk give False: torch.load then reads
    without mmap, which inflates entries and refuses any whose size differs from its storage's.
    """
    try:
        return check_zip_storages(path)
    except CheckpointError:
        raise
    except Exception:  # noqa: BLE001 - torch.load without mmap checks the sizes itself, or refuses the file
        return False


def _is_lazy(value: Any) -> bool:
    """A tensor rebuilt by the restricted unpickler."""
    return isinstance(value, LazyTensor)


def _read_restricted(path: Path, kind: str) -> Checkpoint:
    """Read with the restricted unpickler (never executes anything from the file)."""
    obj, constants = load_zip(path) if kind in ("torch-zip", "torchscript") else (load_legacy(path), None)
    found = _collect(obj, "", _is_lazy, set())
    if isinstance(constants, tuple):
        found += [_Found(f"CONSTANTS.c{i}", v) for i, v in enumerate(constants) if _is_lazy(v)]
    if kind == "torchscript":
        fmt = "torchscript"
    elif isinstance(obj, Inert):
        fmt = "torch-full-pickle"
    elif any(f.from_module for f in found):
        fmt = "torch-legacy-pickle" if kind == "torch-legacy" else "torch-full-pickle"
    else:
        fmt = _dict_format(obj, _is_lazy)
    return _checkpoint(path, fmt, "restricted-unpickler", found, _lazy_info)


def read_torch(path: Path, kind: str) -> Checkpoint:
    """Open a torch.save or TorchScript file (`kind` from sniff_format) without running code from it."""
    refusal = "TorchScript archive (torch.jit.load would run its code)"
    if kind in ("torch-zip", "torchscript"):
        check_zip_expansion(path)
    if kind != "torchscript":
        obj, refusal = _torch_load(path, mmap=kind == "torch-zip" and _mappable(path))
        if refusal is None:
            import torch

            def is_tensor(value: Any) -> bool:
                """A materialised torch tensor."""
                return isinstance(value, torch.Tensor)

            found = _collect(obj, "", is_tensor, set())
            return _checkpoint(
                path, _dict_format(obj, is_tensor), "torch.load(weights_only=True)", found, _torch_info
            )
    try:
        checkpoint = _read_restricted(path, kind)
    except CheckpointError:
        raise
    except Exception as exc:  # untrusted bytes: any failure becomes a CheckpointError
        raise CheckpointError(path, f"not a readable PyTorch checkpoint: {describe(exc)}") from exc
    checkpoint.notes.append(f"torch.load(weights_only=True) refused: {refusal}")
    return checkpoint
