"""ONNX models: conv weights resolved through initializers, Constant, Identity, Cast, DequantizeLinear and Mul.

Quantized convs are read as their real weights, ``(w - w_zero_point) * w_scale``, kept with the stored dtype
(int8/uint8) in ``ConvTensor.dtype`` while ``load()`` returns the dequantised float32 values; see
`_Resolver.weight` for where each op keeps its scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, helper, numpy_helper

from filterlake.errors import CheckpointError
from filterlake.readers.base import CHANNEL_FIRST, Checkpoint, ConvTensor, ResolvedWeight, graph_levels
from filterlake.readers.detect import contained_file, guarded

WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "ConvInteger": 1, "QLinearConv": 3}
MAX_CHAIN = 32  # most nodes and tensors visited to resolve one weight (bounds work on hostile graphs)


class _Scope:
    """Initializers and node outputs visible in a (sub)graph, chained to the enclosing graph's scope."""

    def __init__(self, graph: GraphProto, parent: _Scope | None = None):
        self.tensors = {t.name: t for t in graph.initializer}
        self.nodes = {out: node for node in graph.node for out in node.output if out}
        self.users: dict[str, list[NodeProto]] = {}
        for node in graph.node:
            for name in dict.fromkeys(i for i in node.input if i):
                self.users.setdefault(name, []).append(node)
        self.outputs = {o.name for o in graph.output}
        self.parent = parent

    def lookup(self, name: str) -> tuple[TensorProto | NodeProto, _Scope] | None:
        """The initializer or producing node of `name`, and the scope it lives in."""
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.nodes:
                return scope.nodes[name], scope
            if name in scope.tensors:
                return scope.tensors[name], scope
            scope = scope.parent
        return None


def _attrs(node: NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _subgraphs(node: NodeProto) -> list[GraphProto]:
    """Bodies of If/Loop/Scan (any graph-valued attribute)."""
    found = []
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            found.append(attr.g)
        elif attr.type == AttributeProto.GRAPHS:
            found.extend(attr.graphs)
    return found


def _all_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    """Every initializer and Constant value of a graph and its subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        yield from (a.t for a in node.attribute if a.type == AttributeProto.TENSOR)
        for sub in _subgraphs(node):
            yield from _all_tensors(sub)


def levels(graph: GraphProto) -> dict[int, int]:
    """Longest-path level of each node from the graph inputs (methods.md §1.1 layer_depth); constant-fed nodes have none."""
    feeds = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    producers = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    preds = [{producers[x] for x in node.input if x in producers} for node in graph.node]
    return graph_levels(preds, {i for i, node in enumerate(graph.node) if feeds.intersection(node.input)})


def _conv_nodes(
    graph: GraphProto, scope: _Scope, level: int | None = None
) -> Iterator[tuple[NodeProto, _Scope, int | None]]:
    """Conv-like nodes in graph order, subgraph nodes at their parent's position and level."""
    node_levels = levels(graph) if scope.parent is None else {}
    for i, node in enumerate(graph.node):
        at = node_levels.get(i) if scope.parent is None else level
        if node.op_type in WEIGHT_INPUT:
            yield node, scope, at
        for sub in _subgraphs(node):
            yield from _conv_nodes(sub, _Scope(sub, scope), at)


class _Resolver:
    """Follows a weight input back to constants and builds its lazy loader."""

    def __init__(self, path: Path):
        self.path = path
        self.budget = MAX_CHAIN
        self.notes: list[str] = []

    def tensor(self, t: TensorProto) -> ResolvedWeight:
        """A stored tensor, inline or in an external data file."""
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
        shape = tuple(int(d) for d in t.dims)
        if t.data_location != TensorProto.EXTERNAL:
            return ResolvedWeight(shape, dtype.name, t.name, lambda: numpy_helper.to_array(t))
        info = {e.key: e.value for e in t.external_data}
        file = contained_file(self.path, info.get("location", ""))
        nbytes = math.prod(shape) * dtype.itemsize
        offset, length = int(info.get("offset", 0)), int(info.get("length", nbytes))

        def load() -> np.ndarray:
            if length != nbytes or offset + nbytes > file.stat().st_size:
                raise CheckpointError(
                    self.path,
                    f"external data of {t.name} in {file.name}: offset {offset} and "
                    f"length {length} do not fit {shape} {dtype.name}",
                )
            with open(file, "rb") as fh:
                fh.seek(offset)
                return np.frombuffer(fh.read(nbytes), dtype).reshape(shape)

        return ResolvedWeight(shape, dtype.name, t.name, load)

    def dequantize(
        self, x: ResolvedWeight | None, scale: ResolvedWeight | None, zero: ResolvedWeight | None, axis: int
    ) -> ResolvedWeight | None:
        """(x - zero) * scale, per tensor or per `axis`; `scale` None means 1 (ConvInteger without a scale)."""
        if x is None:
            return None

        def load() -> np.ndarray:
            xv = x.load().astype(np.float32)
            s = np.float32(1) if scale is None else scale.load().astype(np.float32)
            z = np.float32(0) if zero is None else zero.load().astype(np.float32)
            along = [1] * xv.ndim
            along[axis % max(xv.ndim, 1)] = -1
            s = s.reshape(along) if s.ndim == 1 else s
            z = z.reshape(along) if z.ndim == 1 else z
            return (xv - z) * s

        return ResolvedWeight(x.shape, x.dtype, x.name, load)

    def resolve(self, name: str, scope: _Scope) -> ResolvedWeight | None:
        """The constant value of `name`, or None when it is computed from graph inputs or unsupported ops."""
        self.budget -= 1
        found = scope.lookup(name) if name and self.budget >= 0 else None
        if found is None:
            return None
        item, owner = found
        if isinstance(item, TensorProto):
            return self.tensor(item)
        op, attrs = item.op_type, _attrs(item)
        if op == "Constant":
            value = attrs.get("value")
            return replace(self.tensor(value), name=name) if isinstance(value, TensorProto) else None
        if op not in ("Identity", "Cast", "DequantizeLinear", "Mul") or attrs.get("block_size"):
            return None
        args = [self.resolve(i, owner) for i in item.input]
        if any(a is None for a, i in zip(args, item.input) if i) or not args or args[0] is None:
            return None
        src = args[0]
        if op == "Identity":
            return src
        if op == "Cast":
            target = helper.tensor_dtype_to_np_dtype(attrs["to"])
            return ResolvedWeight(src.shape, src.dtype, src.name, lambda: src.load().astype(target))
        if op == "DequantizeLinear":
            return self.dequantize(src, args[1], args[2] if len(args) > 2 else None, attrs.get("axis", 1))
        if len(args) != 2:
            return None
        a, b = args
        try:
            shape = tuple(np.broadcast_shapes(a.shape, b.shape))
        except ValueError:
            return None
        main = a if math.prod(a.shape) >= math.prod(b.shape) else b
        return ResolvedWeight(shape, main.dtype, main.name, lambda: a.load() * b.load())

    def _per_channel(self, value: ResolvedWeight, out_channels: int, what: str, label: str) -> ResolvedWeight:
        """A QLinearConv/ConvInteger weight scale or zero point as a scalar or a vector along axis 0.

        The ONNX spec allows a scalar (per tensor) or a 1-D tensor of one value per output channel; anything else
        is refused, since it cannot be matched to the weight's output channels.
        """
        if math.prod(value.shape) == 1:
            return ResolvedWeight((), value.dtype, value.name, lambda: value.load().reshape(()))
        if value.shape == (out_channels,):
            return value
        raise CheckpointError(
            self.path,
            f"{label}: {what} {value.name} has shape {list(value.shape)}, neither a "
            f"scalar nor one value per output channel ({out_channels})",
        )

    def _output_scale(
        self, node: NodeProto, scope: _Scope, weight: tuple[int, ...], label: str
    ) -> tuple[ResolvedWeight | None, str]:
        """The weight scale a ConvInteger's output is multiplied by, or None and why it was not found.

        ConvInteger has no scale input: onnxruntime's quantize_dynamic applies it after the conv, as
        ConvInteger -> [Add of the int32 bias] -> Cast(float) -> Mul(., S) with S = Mul(x_scale, w_scale) and
        x_scale an output of the DynamicQuantizeLinear (or an input of the QuantizeLinear) that made the conv's
        input. w_scale is the factor of S that is not x_scale (or, failing that, its only constant factor). It
        multiplies the output (N, M, *spatial), so it must be a scalar or (M, 1, ...) aligned with output axis 1;
        a 1-D (M,) vector would multiply the last spatial axis and is refused.
        """
        out, cast = node.output[0], False
        for _ in range(4):
            users = scope.users.get(out, [])
            if out in scope.outputs:
                return None, f"{out} is a graph output"
            if len(users) != 1:
                return None, f"{out} feeds {len(users)} nodes, not one Cast or Mul"
            user = users[0]
            if user.op_type == "Mul" and cast and len(user.input) == 2:
                break
            if not (user.op_type in ("Cast", "Identity") or user.op_type == "Add" and not cast):
                return None, f"{out} feeds {user.op_type}, not Cast then Mul"
            cast = cast or user.op_type == "Cast"
            out = user.output[0]
        else:
            return None, "no Mul within 4 nodes of its output"
        combined = user.input[1] if user.input[0] == out else user.input[0]
        found = scope.lookup(combined)
        if found is None or not isinstance(found[0], NodeProto) or found[0].op_type != "Mul":
            return None, f"the output Mul's factor {combined} is not a product x_scale * w_scale"
        factors, owner = list(found[0].input), found[1]
        source = scope.lookup(node.input[0]) if node.input else None
        x_scale = None
        if source is not None and isinstance(source[0], NodeProto):
            quantize = source[0]
            if quantize.op_type == "DynamicQuantizeLinear" and len(quantize.output) > 1:
                x_scale = quantize.output[1]
            elif quantize.op_type == "QuantizeLinear" and len(quantize.input) > 1:
                x_scale = quantize.input[1]
        if x_scale is not None:
            pair = len(factors) == 2 and x_scale in factors and factors[0] != factors[1]
            scale = self.resolve(factors[1 - factors.index(x_scale)], owner) if pair else None
        else:  # the conv's input comes quantized from elsewhere: take the Mul's only constant factor
            constant = [v for v in (self.resolve(f, owner) for f in factors) if v is not None]
            scale = constant[0] if len(factors) == 2 and len(constant) == 1 else None
        if scale is None:
            return None, f"the weight factor of {combined} is not a constant"
        shape, out_channels = scale.shape, weight[0]
        if math.prod(shape) == 1 and len(shape) <= len(weight):
            return ResolvedWeight((), scale.dtype, scale.name, lambda: scale.load().reshape(())), ""
        # The output's channel axis (1), right-aligned into the scale's shape as broadcasting does.
        axis = len(shape) - len(weight) + 1
        if 0 <= axis < len(shape) <= len(weight) and shape[axis] == math.prod(shape) == out_channels:
            return ResolvedWeight(
                (out_channels,), scale.dtype, scale.name, lambda: scale.load().reshape(-1)
            ), ""
        raise CheckpointError(
            self.path,
            f"{label}: weight scale {scale.name} applied after the conv has shape "
            f"{list(shape)}, neither a scalar nor one value per output channel "
            f"({out_channels}, 1, ...)",
        )

    def weight(self, node: NodeProto, scope: _Scope, label: str = "") -> ResolvedWeight | None:
        """The effective (dequantized) weight of a conv-like node, None when it cannot be resolved.

        - Conv / ConvTranspose: input 1 through the chains of `resolve`.
        - QLinearConv: ``(w - w_zero_point) * w_scale`` from inputs 3, 5 and 4, each scale/zero point a scalar or
          one value per output channel (axis 0), else a CheckpointError.
        - ConvInteger: ``(w - w_zero_point) * w_scale`` with w (input 1), w_zero_point (input 3, scalar or per
          output channel) and w_scale read from the Mul that scales the conv's output (`_output_scale`). Where no
          such scale is found the weight stays ``w - w_zero_point`` (quantisation steps, exact integers) and a note
          "unscaled weight for node ..." says so: a per-tensor or per-output-channel scale is one positive factor
          per 3x3 filter, so each filter is still proportional to the real one, but its values are not weights.
        The tensor's dtype stays the stored int8/uint8.
        """
        self.budget = MAX_CHAIN
        inputs = list(node.input) + [""] * 6
        label = label or node.name or node.op_type
        if node.op_type not in ("QLinearConv", "ConvInteger"):
            return self.resolve(inputs[1], scope)
        w_at, scale_at, zero_at = (3, 4, 5) if node.op_type == "QLinearConv" else (1, None, 3)
        w = self.resolve(inputs[w_at], scope)
        zero = self.resolve(inputs[zero_at], scope) if inputs[zero_at] else None
        if w is None or (zero is None and inputs[zero_at]):  # a named zero point must resolve too
            return None
        if len(w.shape) not in CHANNEL_FIRST:  # not a conv weight; read_onnx skips it
            return w
        where = f"{node.op_type} node {label}"
        zero = None if zero is None else self._per_channel(zero, w.shape[0], "w_zero_point", where)
        if scale_at is not None:
            scale = self.resolve(inputs[scale_at], scope) if inputs[scale_at] else None
            if scale is None:
                return None
            return self.dequantize(w, self._per_channel(scale, w.shape[0], "w_scale", where), zero, axis=0)
        scale, why = self._output_scale(node, scope, w.shape, where)
        if scale is None:
            self.notes.append(
                f"unscaled weight for node {label} (ConvInteger): no weight scale found ({why}); "
                f"its filters are w - w_zero_point in quantisation steps"
            )
        return self.dequantize(w, scale, zero, axis=0)


def read_onnx(path: Path) -> Checkpoint:
    """Open an ONNX model (external data read lazily, only from files inside the model's folder)."""
    model = onnx.load(str(path), load_external_data=False)
    files = {
        contained_file(path, {e.key: e.value for e in t.external_data}.get("location", ""))
        for t in _all_tensors(model.graph)
        if t.data_location == TensorProto.EXTERNAL
    }
    resolver, tensors, notes = _Resolver(path), [], []
    for index, (node, scope, level) in enumerate(_conv_nodes(model.graph, _Scope(model.graph))):
        label = node.name or f"#{index} ({node.op_type})"
        value = resolver.weight(node, scope, label)
        notes += resolver.notes
        resolver.notes.clear()
        if value is None:
            notes.append(f"unresolved weight for node {label}")
            continue
        if len(value.shape) not in CHANNEL_FIRST:
            continue
        attrs = _attrs(node)
        name = node.name or value.name.removesuffix(".weight") or f"{node.op_type}_{index}"
        dilation = tuple(int(d) for d in attrs.get("dilations") or [1] * (len(value.shape) - 2))
        load = guarded(
            path, f"tensor {name}", lambda v=value: np.ascontiguousarray(v.load(), dtype=np.float32)
        )
        tensors.append(
            ConvTensor(
                name,
                value.shape,
                value.dtype,
                CHANNEL_FIRST[len(value.shape)],
                load,
                "transposed" if node.op_type == "ConvTranspose" else "conv",
                int(attrs.get("group", 1)),
                dilation,
                level,
            )
        )
    notes += [
        f"unresolved weight for node {node.name or node.op_type} in local function {function.name}"
        for function in model.functions
        for node in function.node
        if node.op_type in WEIGHT_INPUT
    ]
    return Checkpoint(path, "onnx", [path, *sorted(files)], "onnx", tensors, "graph", notes)
