"""Write one planned model as a real PyTorch, safetensors or ONNX checkpoint with its `.meta.json` sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.synthetic.architectures import BUILDERS
from bench.synthetic.graph import Net
from bench.synthetic.plan import DOMAINS, ModelSpec
from bench.synthetic.pool import Pool
from bench.synthetic.sampler import Sampler

SUFFIX = {"torch": ".pth", "safetensors": ".safetensors", "onnx": ".onnx"}


def write_torch(path: Path, values: dict[str, np.ndarray], wrap: str) -> None:
    """`torch.save` of the state dict: plain, with `module.` prefixes, or wrapped as a training checkpoint."""
    import torch

    state = {(f"module.{k}" if wrap == "module" else k): torch.from_numpy(v) for k, v in values.items()}
    torch.save({"state_dict": state, "epoch": 90, "best_acc1": 0.7} if wrap == "checkpoint" else state, path)


def write_safetensors(path: Path, values: dict[str, np.ndarray]) -> None:
    """`safetensors.numpy.save_file` with the metadata PyTorch exports carry."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in values.items()}, str(path), metadata={"format": "pt"})


def write_onnx(path: Path, net: Net, values: dict[str, np.ndarray]) -> None:
    """An ONNX graph (opset 17) of the net's nodes with its parameters as initializers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(values[p.name], p.name) for p in net.params if p.in_onnx]
    inits += [numpy_helper.from_array(v, k) for k, v in net.consts.items()]
    nodes = [helper.make_node(n.op, n.inputs, [n.output], name=n.name, **n.attrs) for n in net.nodes]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, net.in_channels, 224, 224])]
    outputs = [
        helper.make_tensor_value_info(
            net.output, TensorProto.FLOAT, ["batch", "out", "h", "w"][: net.output_rank]
        )
    ]
    graph = helper.make_graph(nodes, net.arch, inputs, outputs, inits)
    model = helper.make_model(
        graph, producer_name="filterlake-bench", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))


def write_model(spec: ModelSpec, out: Path, pool: Pool) -> dict[str, Any]:
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
    meta = {
        "name": spec.name,
        "architecture": net.arch,
        "task": task,
        "domain": spec.domain,
        "modality": modality,
        "training_dataset": "synthetic (filterlake bench, resampled from ../shared/corpus)",
        "license": "CC0-1.0",
        "extra": {"bench_family": spec.family, "bench_seed": spec.seed},
    }
    path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))
    return {
        "path": str(path.relative_to(out)),
        "name": spec.name,
        "format": spec.fmt,
        "family": spec.family,
        "architecture": net.arch,
        "domain": spec.domain,
        "n_filters": spec.n_filters,
        "n_layers_3x3": spec.n_layers,
        "bytes": path.stat().st_size,
    }
