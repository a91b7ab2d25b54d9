"""Keras 3 sharded weights: a `*.weights.json` manifest and its `*_NNNNN.weights.h5` shards, opened and checked.

The layout, as keras-team/keras writes and reads it in keras/src/saving/saving_lib.py (master 3422977a, the same
in v3.15.1; sharding exists since v3.10.0):
- `save_weights_only` (lines 578-633): `max_shard_size` set -> `ShardedH5IOStore(filepath)` (614-615) on a path
  ending in `.weights.json`; `load_weights_only` (665-666) reads such a path with `ShardedH5IOStore(mode="r")`.
- `ShardedH5IOStore.__init__` (lines 1541-1556): the manifest is `{"metadata": {"total_size": ...},
  "weight_map": {...}}`, a zip member when an `archive` is given, else a file.
- `_create_new_shard_file` (lines 1646-1656): shard names are f"{base}_{index:05}.weights.h5" with `base` the
  manifest's stem without ".weights", opened as `self.path.with_name(name)`: a plain name beside the manifest.
- `__setitem__` (lines 1740-1779): each variable is written to the current shard under the layer's group
  (`layers/conv2d/vars/0`, nested `layers/functional/layers/conv2d/vars/0`, as unsharded); the weight_map key is
  that vars group's h5py name ("/layers/conv2d/vars"), the value the shard's name, or a list of names in shard
  order when a layer's vars spill over into the next shard.
- `get` (lines 1579-1611) looks up `weight_map[path]` or `weight_map[f"/{path}/vars"]` and opens the first
  listed shard; `__getitem__` (lines 1723-1738) then looks for a var in that shard first, then in the others.
- `close` (lines 1624-1642) writes the manifest and the shards as zip members named the same way when an archive
  is given. No saving_lib caller passes one: `model.save` (`_save_model_to_fileobj`, line 195) always writes one
  `model.weights.h5`, and `_load_model_from_fileobj` (499-548) reads nothing else; a sharded `.keras` only comes
  from `ShardedH5IOStore(..., archive=zf)` used directly. It is read with the same rules as the standalone form.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from filterlake.errors import CheckpointError
from filterlake.readers.detect import contained_file, describe
from filterlake.readers.keras_config import MAX_CONFIG_BYTES
from filterlake.readers.keras_h5 import _H5, _h5py

Weight = tuple[_H5, str]  # an open HDF5 file and the path of one dataset in it


def vars_base(stored: list[str]) -> str:
    """The group of a layer from its stored names, outer first: `layers/<a>/layers/<b>`."""
    return "/".join(f"layers/{s}" for s in stored)


def keras3_vars(files: list[_H5], base: str) -> list[Weight]:
    """Weights `<base>/vars/N` in N order, each taken from the first of `files` that holds it (as Keras reads)."""
    h5py = _h5py()
    found: dict[int, Weight] = {}
    for h5 in files:
        group = h5.file.get(f"{base}/vars")
        if isinstance(group, h5py.Group):
            for key in group:
                if key.isdigit():
                    found.setdefault(int(key), (h5, f"{base}/vars/{key}"))
    return [found[i] for i in sorted(found)]


@dataclass(frozen=True)
class Shards:
    """The open shards of one manifest; variables are found through its weight_map, as ShardedH5IOStore.get."""

    weight_map: dict[
        str, list[str]
    ]  # vars group ("/layers/conv2d/vars") -> shard names, in the manifest's order
    files: dict[str, _H5]  # shard name -> open shard, in order of first mention

    def weights(self, stored: list[str]) -> list[Weight]:
        """The weights of one layer (stored names outer first), looked up in the shards the map names for it."""
        base = vars_base(stored)
        names = self.weight_map.get(base) or self.weight_map.get(f"/{base}/vars") or []
        return keras3_vars([self.files[name] for name in names], base)

    def groups(self) -> Iterator[tuple[_H5, str]]:
        """(shard, vars group) of every mapped group outside the optimizer, in the manifest's (saving) order."""
        for group, names in self.weight_map.items():
            if group.strip("/").split("/")[0] != "optimizer":
                for name in names:
                    yield self.files[name], group


def _weight_map(path: Path, raw: bytes, what: str) -> dict[str, list[str]]:
    """The manifest's weight_map with every value as a list of plain shard names (no folder part)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(path, f"{what} is not valid JSON ({describe(exc)})") from exc
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckpointError(path, f"sharded Keras weights {what}: no weight_map")
    out: dict[str, list[str]] = {}
    for group, value in weight_map.items():
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(n, str) for n in names):
            raise CheckpointError(path, f"{what}: weight_map entry {group[:80]!r} is not shard file name(s)")
        for name in names:
            if name in ("", ".", "..") or "/" in name or "\\" in name:
                raise CheckpointError(
                    path, f"{what}: shard {name[:80]!r} is not a plain file name beside the manifest"
                )
        out[group] = names
    return out


def _open(stack: ExitStack, path: Path, raw: bytes, what: str, opener: Callable[[str], _H5]) -> Shards:
    """Parse a manifest and open every shard it names through `opener`, each refused if it links to other files."""
    weight_map = _weight_map(path, raw, what)
    files: dict[str, _H5] = {}
    for name in dict.fromkeys(n for names in weight_map.values() for n in names):
        h5 = stack.enter_context(opener(name))
        h5.refuse_external_links()
        files[name] = h5
    return Shards(weight_map, files)


def open_folder_shards(stack: ExitStack, manifest: Path) -> Shards:
    """A standalone manifest (save_weights output) and the shard files beside it, which must stay in its folder."""
    size = manifest.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(manifest, f"weights manifest of {size:,} bytes: refused as absurd")
    raw = manifest.read_bytes()
    return _open(stack, manifest, raw, manifest.name, lambda name: _H5(contained_file(manifest, name)))


def open_zip_shards(stack: ExitStack, path: Path, member: str) -> Shards:
    """A manifest member of a `.keras` zip and its shard members beside it (the archive's size already checked)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            info = archive.getinfo(member)
            if info.file_size > MAX_CONFIG_BYTES:
                raise CheckpointError(path, f"{member} of {info.file_size:,} bytes: refused as absurd")
            raw = archive.read(member)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(path, f"truncated or corrupt zip archive ({describe(exc)})") from exc

    def opener(name: str) -> _H5:
        sibling = str(PurePosixPath(member).with_name(name))
        if sibling not in members:
            raise CheckpointError(path, f"{member} names the shard {name!r}, which is not in the archive")
        return _H5(path, sibling)

    return _open(stack, path, raw, member, opener)
