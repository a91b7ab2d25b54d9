"""Keras 3 sharded weights (a *.weights.json manifest and *_NNNNN.weights.h5 shards) inside a .keras zip and
standalone, and Keras 3's unsharded save_weights file, built with h5py in the layout Keras writes (no Keras)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from filterlake.errors import CheckpointError
from filterlake.readers import open_checkpoint, sniff_format
from filterlake.readers.base import Checkpoint
from filterlake.readers.keras import read_keras_h5, read_keras_sharded, read_keras_zip
from tests.readers.keras_models import INNER, LAYERS, W, expected, layer_entry, model_config, write_keras3
from tests.readers.test_keras import check_model
from tests.readers.test_keras_refusals import one_line

# Variables in saving order (Keras saves model.layers in config order): the W key -> its layer's name.
ORDER = {key: name for name, _cls, keys, _extra in LAYERS + INNER for key in keys}
SPLIT = 1800  # bytes per shard: 8 shards, the separable layer's vars/0 and vars/1 in two of them
THREE = 3700  # bytes per shard: 3 shards, the nested model's layers in later ones, the optimizer in the last


def _key(src: h5py.File, group: str) -> str | None:
    """The W key of a layer group's first variable (None for a group without variables)."""
    first = src[group].get("0")
    return next((k for k, v in W.items() if first is not None and np.array_equal(first[()], v)), None)


def _saving_order(src: h5py.File, group: str) -> tuple[int, int]:
    """Where Keras saves a vars group: the model's own vars, then its layers in config order, then the optimizer
    (saving_lib.py `_walk_saveable`, lines 738-765); groups without variables first."""
    key = _key(src, group)
    rank = 0 if group == "vars" else 2 if group.startswith("optimizer") else 1
    return rank, list(ORDER).index(key) if key and rank == 1 else -1


def shard(weights: bytes, max_bytes: int, base: str = "model") -> tuple[dict[str, Any], dict[str, bytes]]:
    """Split an unsharded model.weights.h5 as ShardedH5IOStore does (keras-team/keras, saving_lib.py lines
    1646-1656 and 1740-1779): each group made in the current shard with its name attribute, a variable that
    would overflow the shard opens `<base>_NNNNN.weights.h5`, weight_map[group.name] = shard, or a list of
    shards when a group's vars spill over. Returns the manifest and the shards' bytes by name."""
    buffers: list[io.BytesIO] = []
    files: list[h5py.File] = []
    weight_map: dict[str, Any] = {}
    used = total = 0

    def new_shard() -> None:
        buffers.append(io.BytesIO())
        files.append(h5py.File(buffers[-1], "w"))

    new_shard()
    with h5py.File(io.BytesIO(weights), "r") as src:
        groups: list[str] = []
        src.visititems(lambda name, obj: groups.append(name) if name.endswith("vars") else None)
        for group in sorted(groups, key=lambda g: _saving_order(src, g)):
            layer = ORDER.get(_key(src, group) or "", group.removesuffix("/vars").split("/")[-1])
            label = "m" if group == "vars" else "adam" if group.startswith("optimizer") else layer
            files[-1].create_group(group).attrs["name"] = label
            for index in sorted(src[group], key=int):
                data = src[group][index][()]
                used, total = used + data.nbytes, total + data.nbytes
                if used > max_bytes:
                    new_shard()
                    used = data.nbytes
                target = files[-1].require_group(group)
                target[index] = data
                name = f"{base}_{len(files) - 1:05}.weights.h5"
                mapped = weight_map.setdefault(target.name, name)
                if mapped != name:
                    listed = mapped if isinstance(mapped, list) else [mapped]
                    weight_map[target.name] = listed + [name] if name not in listed else listed
    for f in files:
        f.close()
    manifest = {"metadata": {"total_size": total}, "weight_map": weight_map}
    return manifest, {f"{base}_{i:05}.weights.h5": b.getvalue() for i, b in enumerate(buffers)}


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    """A stored (uncompressed) zip of `members`, as Keras writes its archives."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def write_sharded_keras(path: Path, max_bytes: int, config: Any = None) -> tuple[Path, dict[str, Any]]:
    """A .keras zip whose model.weights.h5 is replaced by model.weights.json and its shards, as
    ShardedH5IOStore(archive=zf) writes them (zip members beside the manifest, stored); also the unsharded one."""
    plain = write_keras3(path.with_name(f"plain_{path.name}"), config)
    members = _members(plain)
    manifest, shards = shard(members.pop("model.weights.h5"), max_bytes)
    _zip(path, {**members, "model.weights.json": json.dumps(manifest, indent=4).encode(), **shards})
    return path, manifest


def write_sharded_folder(folder: Path, max_bytes: int) -> tuple[Path, Path]:
    """model.save_weights("model.weights.json", max_shard_size=...) output in `folder`, and the unsharded
    model.weights.h5 of the same weights in a subfolder."""
    folder.mkdir(exist_ok=True)
    weights = _members(write_keras3(folder.parent / f"{folder.name}_plain.keras"))["model.weights.h5"]
    manifest, shards = shard(weights, max_bytes)
    (folder / "model.weights.json").write_text(json.dumps(manifest, indent=4))
    for name, data in shards.items():
        (folder / name).write_bytes(data)
    (folder / "plain").mkdir()
    (folder / "plain" / "model.weights.h5").write_bytes(weights)
    return folder / "model.weights.json", folder / "plain" / "model.weights.h5"


def _same(a: Checkpoint, b: Checkpoint) -> None:
    """Two reads give the same tensors: names, shapes, layouts, kinds, groups, levels, flags and values."""
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for x, y in zip(a.tensors, b.tensors, strict=True):
        fields = ("shape", "dtype", "layout", "kind", "groups", "dilation", "level", "trainable")
        assert [getattr(x, f) for f in fields] == [getattr(y, f) for f in fields], x.name
        np.testing.assert_array_equal(x.load(), y.load())


@pytest.mark.parametrize("max_bytes", [THREE, SPLIT])
def test_sharded_keras_reads_as_unsharded(tmp_path: Path, max_bytes: int) -> None:
    config = model_config(True, frozen_inner=True)
    path, manifest = write_sharded_keras(tmp_path / "s.keras", max_bytes, config)
    shards = sorted({n for v in manifest["weight_map"].values() for n in (v if isinstance(v, list) else [v])})
    separable = manifest["weight_map"]["/layers/separable_conv2d/vars"]
    if max_bytes == THREE:
        assert shards == [f"model_0000{i}.weights.h5" for i in range(3)]
        assert manifest["weight_map"]["/layers/functional/layers/conv2d_1/vars"] == "model_00002.weights.h5"
        assert manifest["weight_map"]["/optimizer/vars"] == "model_00002.weights.h5"
    else:
        assert len(shards) == 8 and separable == ["model_00000.weights.h5", "model_00001.weights.h5"]
        assert isinstance(manifest["weight_map"]["/optimizer/vars"], list)
    assert sniff_format(path) == "keras"
    checkpoint = open_checkpoint(path)
    assert (checkpoint.format, checkpoint.files) == ("keras", [path])
    check_model(checkpoint)  # exact filters (transposed to (out, in, 3, 3)), the optimizer's vars not counted
    flags = {t.name: t.trainable for t in checkpoint.tensors}
    assert flags["stem"] is True and flags["sep.pointwise"] is True and flags["base/inner2"] is False
    _same(checkpoint, read_keras_zip(tmp_path / "plain_s.keras"))


def test_standalone_manifest_and_shards(tmp_path: Path) -> None:
    """save_weights output has no config: weights by shape, orientation unknown, in the manifest's order."""
    manifest, plain = write_sharded_folder(tmp_path / "w", SPLIT)
    assert sniff_format(manifest) == "keras-index" and sniff_format(plain) == "keras-h5"
    checkpoint = open_checkpoint(manifest)
    shards = [manifest.parent / f"model_0000{i}.weights.h5" for i in range(8)]
    assert (checkpoint.format, checkpoint.files) == ("keras-h5", [manifest, *shards])
    assert all(t.kind == "unknown" and t.trainable is None for t in checkpoint.tensors)
    assert not any(t.name.startswith("optimizer") for t in checkpoint.tensors)
    unsharded = read_keras_h5(plain)
    assert sorted(t.name for t in checkpoint.tensors) == sorted(t.name for t in unsharded.tensors)
    by_name = {t.name: t for t in unsharded.tensors}
    for tensor in checkpoint.tensors:
        np.testing.assert_array_equal(tensor.load(), by_name[tensor.name].load())
    order = [t.name for t in checkpoint.tensors]
    assert order.index("layers/conv2d_1/vars/0") < order.index("layers/separable_conv2d/vars/1")
    assert order.index("layers/separable_conv2d/vars/1") < order.index(
        "layers/functional/layers/conv2d/vars/0"
    )
    assert checkpoint.notes and checkpoint.depth_source == "definition_order"


def test_keras3_save_weights_unsharded(tmp_path: Path) -> None:
    """model.weights.h5 (layers/, vars/, optimizer/): by shape, optimizer skipped, names in natural order."""
    _manifest, plain = write_sharded_folder(tmp_path / "w", SPLIT)
    with h5py.File(plain, "a") as f:
        f["layers/conv2d_10/vars/0"] = W["stem"]
    checkpoint = open_checkpoint(plain)
    names = [t.name for t in checkpoint.tensors]
    assert names[:4] == [f"layers/conv2d{s}/vars/0" for s in ("", "_1", "_2", "_10")]
    assert len(names) == 10 and not any(n.startswith("optimizer") for n in names)
    assert all(t.kind == "unknown" for t in checkpoint.tensors) and checkpoint.notes
    tensor = checkpoint.tensors[0]
    np.testing.assert_array_equal(tensor.load().reshape(-1, 9), expected("stem"))


def test_lambda_in_sharded_keras_is_never_evaluated(tmp_path: Path) -> None:
    sentinel = tmp_path / "evaluated"
    config = model_config(True)
    code = f"__import__('pathlib').Path({str(sentinel)!r}).touch()"
    config["config"]["layers"].append(layer_entry("lam", "Lambda", {"function": code}, "base", True))
    path, _ = write_sharded_keras(tmp_path / "s.keras", SPLIT, config)
    check_model(open_checkpoint(path))
    assert not sentinel.exists()


# --------------------------------------------------------------------------------------------------- hostile


def _rewrite_manifest(manifest: Path, change: Any) -> None:
    data = json.loads(manifest.read_text())
    change(data["weight_map"])
    manifest.write_text(json.dumps(data))


def _refused(path: Path, named: Path, *words: str) -> None:
    with pytest.raises(CheckpointError) as exc:
        for tensor in open_checkpoint(path).tensors:
            tensor.load()
    one_line(exc, named, *words)


def test_missing_and_escaping_shards_are_refused(tmp_path: Path) -> None:
    manifest, _ = write_sharded_folder(tmp_path / "w", THREE)
    (manifest.parent / "model_00001.weights.h5").rename(tmp_path / "model_00001.weights.h5")
    _refused(manifest, manifest, "missing file", "model_00001.weights.h5")

    _rewrite_manifest(manifest, lambda m: m.update({k: "../model_00001.weights.h5" for k in m}))
    _refused(manifest, manifest, "'../model_00001.weights.h5'", "not a plain file name")

    (manifest.parent / "model_00001.weights.h5").symlink_to(tmp_path / "model_00001.weights.h5")
    _rewrite_manifest(manifest, lambda m: m.update({k: "model_00001.weights.h5" for k in m}))
    _refused(manifest, manifest, "resolves outside the model folder")

    _rewrite_manifest(manifest, lambda m: m.update({"/layers/conv2d/vars": "model_00007.weights.h5"}))
    _refused(manifest, manifest, "missing file", "model_00007.weights.h5")

    # Malformed manifests are no longer detected as Keras ones (open_checkpoint refuses them as safetensors
    # indexes); the Keras reader refuses them too.
    for text, words in [
        (
            '{"weight_map": {"/layers/conv2d/vars": ["model_00000.weights.h5", 3]}}',
            "is not shard file name(s)",
        ),
        ('{"metadata": {}, "weight_map": {"/vars": "model_00000.weights.h5"', "not valid JSON"),
    ]:
        manifest.write_text(text)
        with pytest.raises(CheckpointError) as exc:
            read_keras_sharded(manifest)
        one_line(exc, manifest, words)


def test_sharded_keras_missing_or_escaping_member_is_refused(tmp_path: Path) -> None:
    path, _ = write_sharded_keras(tmp_path / "s.keras", THREE)
    members = _members(path)
    manifest = members["model.weights.json"]
    for name, broken, words in [
        (
            "drop",
            {k: v for k, v in members.items() if k != "model_00001.weights.h5"},
            "'model_00001.weights.h5', which is not in the archive",
        ),
        (
            "escape",
            {**members, "model.weights.json": manifest.replace(b'"model_0', b'"../model_0')},
            "not a plain file name",
        ),
        (
            "absent",
            {**members, "model.weights.json": manifest.replace(b"00002", b"00009")},
            "'model_00009.weights.h5', which is not in the archive",
        ),
    ]:
        bad = _zip(tmp_path / f"{name}.keras", broken)
        _refused(bad, bad, words)


def test_truncated_shard_is_refused(tmp_path: Path) -> None:
    manifest, _ = write_sharded_folder(tmp_path / "w", THREE)
    shard_file = manifest.parent / "model_00002.weights.h5"
    data = shard_file.read_bytes()
    for cut in (0, 100, len(data) // 2, len(data) - 1):
        shard_file.write_bytes(data[:cut])
        _refused(manifest, shard_file)

    path, _ = write_sharded_keras(tmp_path / "s.keras", THREE)
    members = _members(path)
    members["model_00001.weights.h5"] = members["model_00001.weights.h5"][:1000]
    bad = _zip(tmp_path / "cut.keras", members)
    _refused(bad, bad, "model_00001.weights.h5 truncated or corrupt HDF5 file")


def test_unsafe_datasets_in_a_later_shard_are_refused(tmp_path: Path) -> None:
    """External links, virtual datasets and unallocated data are refused in every shard, not just the first."""
    manifest, _ = write_sharded_folder(tmp_path / "w", THREE)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["k"] = W["inner"]
    shard_file = manifest.parent / "model_00002.weights.h5"
    where = "layers/functional/layers/conv2d_1/vars"
    original = shard_file.read_bytes()
    with h5py.File(shard_file, "a") as f:
        f[f"{where}/9"] = h5py.ExternalLink(str(other), "k")
    _refused(manifest, shard_file, "external link")

    shard_file.write_bytes(original)
    layout = h5py.VirtualLayout(shape=W["inner2"].shape, dtype="float32")
    layout[...] = h5py.VirtualSource(str(other), "k", shape=W["inner2"].shape)
    with h5py.File(shard_file, "a") as f:
        del f[f"{where}/0"]
        f[where].create_virtual_dataset("0", layout)
    _refused(manifest, shard_file, "virtual dataset")

    shard_file.write_bytes(original)
    with h5py.File(shard_file, "a") as f:
        del f[f"{where}/0"]
        f[where].create_dataset("0", shape=W["inner2"].shape, dtype="float32", chunks=True)
    _refused(manifest, shard_file, "needs 756 bytes but 0 are stored")


def test_layer_not_in_the_weight_map_is_refused(tmp_path: Path) -> None:
    path, _ = write_sharded_keras(tmp_path / "s.keras", THREE)
    members = _members(path)
    manifest = json.loads(members["model.weights.json"])
    del manifest["weight_map"]["/layers/depthwise_conv2d/vars"]
    members["model.weights.json"] = json.dumps(manifest).encode()
    bad = _zip(tmp_path / "unmapped.keras", members)
    _refused(bad, bad, "layer dw (DepthwiseConv2D): weights missing at layers/depthwise_conv2d/vars")
