"""Small real Keras checkpoints built with h5py in the layouts Keras 2 and Keras 3 write (no Keras): the
fixture models of the Keras reader's tests, with the filters every layer must give."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from filterlake.readers.keras_config import to_snake_case

RNG = np.random.default_rng(7)


def arr(*shape: int, dtype: str = "float32") -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


# Kernels as Keras stores them: [*k, in/groups, out], depthwise [*k, in, dm].
W = {
    "stem": arr(3, 3, 3, 4),
    "grouped": arr(3, 3, 2, 6),  # groups=2: in 4
    "dw": arr(3, 3, 6, 2),  # 6 channels x depth multiplier 2
    "sep_dw": arr(3, 3, 12, 1),
    "sep_pw": arr(1, 1, 12, 8),
    "up": arr(3, 3, 5, 8),  # Conv2DTranspose [k, out, in]
    "c1": arr(3, 8, 4),
    "c3": arr(3, 3, 3, 4, 2),
    "half": arr(3, 3, 8, 5, dtype="float16"),
    "inner": arr(3, 3, 5, 7),
    "inner2": arr(3, 3, 7, 3),
}
LAYERS = [  # (name, class, weights, extra config)
    ("input_1", "InputLayer", [], {}),
    ("stem", "Conv2D", ["stem"], {}),
    ("grouped", "Conv2D", ["grouped"], {"groups": 2}),
    ("bn", "BatchNormalization", [], {}),
    ("dw", "DepthwiseConv2D", ["dw"], {"depth_multiplier": 2}),
    ("sep", "SeparableConv2D", ["sep_dw", "sep_pw"], {}),
    ("up", "Conv2DTranspose", ["up"], {}),
    ("c1", "Conv1D", ["c1"], {}),
    ("c3", "Conv3D", ["c3"], {}),
    ("half", "Conv2D", ["half"], {}),
]
INNER = [
    ("inner_in", "InputLayer", [], {}),
    ("inner", "Conv2D", ["inner"], {}),
    ("inner2", "Conv2D", ["inner2"], {}),
]
# 3x3 2-D conv filters by layer: stem 4x3, grouped 6x2, dw 12, sep 12, half 5x8, inner 7x5, inner2 3x7.
COUNTS = {"stem": 12, "grouped": 12, "dw": 12, "sep": 12, "half": 40, "base/inner": 35, "base/inner2": 21}


def expected(key: str, how: str = "conv") -> np.ndarray:
    """Canonical (n, 9) filters of a stored kernel."""
    k = W[key].astype(np.float32)
    if how == "depthwise":  # channel c, multiplier m -> output c*dm + m
        return np.stack([k[:, :, c, m].ravel() for c in range(k.shape[2]) for m in range(k.shape[3])])
    return np.stack([k[:, :, i, o].ravel() for o in range(k.shape[3]) for i in range(k.shape[2])])


def layer_entry(
    name: str, cls: str, extra: dict[str, Any], previous: str | None, keras3: bool
) -> dict[str, Any]:
    config = {"name": name, "trainable": True, "dtype": "float32", **extra}
    if keras3:
        history = [
            {"class_name": "__keras_tensor__", "config": {"shape": [None], "keras_history": [previous, 0, 0]}}
        ]
        nodes = [] if previous is None else [{"args": history, "kwargs": {}}]
    else:
        nodes = [] if previous is None else [[[previous, 0, 0, {}]]]
    return {"class_name": cls, "config": config, "name": name, "inbound_nodes": nodes}


def model_config(keras3: bool, frozen_inner: bool = False, lambda_code: bool = False) -> dict[str, Any]:
    """A Functional model: LAYERS in a chain, then a nested Functional "base" holding INNER."""
    layers, previous = [], None
    for name, cls, _w, extra in LAYERS:
        layers.append(layer_entry(name, cls, extra, previous, keras3))
        previous = name
    inner, prev = [], None
    for name, cls, _w, extra in INNER:
        inner.append(layer_entry(name, cls, extra, prev, keras3))
        prev = name
    nested = layer_entry("base", "Functional", {}, previous, keras3)
    nested["config"].update({"layers": inner, "trainable": not frozen_inner})
    layers.append(nested)
    if lambda_code:
        layers.append(
            layer_entry("lam", "Lambda", {"function": "__import__('os').system('false')"}, "base", keras3)
        )
    return {"class_name": "Functional" if keras3 else "Model", "config": {"name": "m", "layers": layers}}


def write_keras2(path: Path, config: Any = None, optimizer: bool = True) -> Path:
    """Keras 2 legacy HDF5: root attrs, model_weights/<layer>/ with weight_names (uniquified prefixes)."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.3.0-tf"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(model_config(False) if config is None else config).encode()
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [n.encode() for n, *_ in LAYERS] + [b"base"]
        for name, _cls, weights, _extra in LAYERS:
            group = mw.create_group(name)
            names = [f"{name}_4/{'kernel' if i == 0 else 'pointwise_kernel'}:0" for i in range(len(weights))]
            if name == "sep":
                names = ["sep_4/depthwise_kernel:0", "sep_4/pointwise_kernel:0"]
            for wname, key in zip(names, weights, strict=True):
                group.create_dataset(wname, data=W[key])
            if weights:
                group.create_dataset(f"{name}_4/bias:0", data=np.zeros(3, "float32"))
            group.attrs["weight_names"] = [n.encode() for n in names]
        base = mw.create_group("base")
        base.attrs["weight_names"] = [b"inner/kernel:0", b"inner2_1/kernel:0"]
        base.create_dataset("inner/kernel:0", data=W["inner"])
        base.create_dataset("inner2_1/kernel:0", data=W["inner2"])
        if optimizer:
            f.create_dataset("optimizer_weights/Adam/stem_4/kernel/m:0", data=W["stem"])
    return path


def write_keras3(path: Path, config: Any = None, weights_member: bool = True) -> Path:
    """Keras 3 .keras zip: config.json, metadata.json, model.weights.h5 with layers/<snake>_N/vars/K."""
    h5 = path.with_suffix(".weights.h5")
    with h5py.File(h5, "w") as f:
        used: dict[str, int] = {}

        def store(prefix: str, layers: list[tuple[str, str, list[str], dict[str, Any]]]) -> dict[str, int]:
            counters: dict[str, int] = {}
            for _name, cls, weights, _extra in layers:
                snake = to_snake_case(cls)
                counters[snake] = counters.get(snake, -1) + 1
                stored = snake if counters[snake] == 0 else f"{snake}_{counters[snake]}"
                group = f.create_group(f"{prefix}/layers/{stored}/vars")
                for i, key in enumerate(weights):
                    group.create_dataset(str(i), data=W[key])
            return counters

        used = store("", LAYERS)
        store(f"/layers/functional{'_' + str(used['functional']) if 'functional' in used else ''}", INNER)
        f.create_group("vars")
        for i, key in enumerate(["stem", "stem", "dw", "dw"]):
            f.create_dataset(f"optimizer/vars/{i}", data=W[key])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3", "date_saved": "2024-01-01"}))
        z.writestr("config.json", json.dumps(model_config(True) if config is None else config))
        if weights_member:
            z.write(h5, "model.weights.h5")
    h5.unlink()
    return path
