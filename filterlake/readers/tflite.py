"""TensorFlow Lite flatbuffers: conv weights read with `struct` on a memory map (no TensorFlow, no flatbuffers).

Only the tables needed are parsed (Model, SubGraph, Tensor, Buffer, Operator, OperatorCode,
QuantizationParameters, SparsityParameters, DimensionMetadata, Conv2DOptions, DepthwiseConv2DOptions), with every
offset and length checked against the file size: a truncated or hostile file is a one-line CheckpointError.

- CONV_2D weights (input 1) are OHWI ``[O, H, W, I]`` with I = in/groups; groups = the op's input channels / I
  when the input tensor's shape is known.
- DEPTHWISE_CONV_2D weights ``[1, H, W, O]`` are O filters of one input channel: the ConvTensor has shape
  ``(O, H, W, 1)`` (layout OHWI) and groups = input channels (O / depth_multiplier when the input is unknown).
- TRANSPOSE_CONV and custom transposed convs (``Convolution2DTransposeBias``) are kind "transposed".
- Weights are followed through DEQUANTIZE (fp16 -> float32, exact) and DENSIFY (block-free CSR sparse constants);
  int8/uint8/int16 constants are ``(q - zero_point) * scale`` per tensor or along ``quantized_dimension``.
- Layer names are the weight constant's name without a trailing ``/Kernel`` (the conv's output tensor name is
  often a ";"-joined list of fused ops in newer converters; the weight name is stable and one per weight).
- ``level`` is the operator's longest path from the (first) subgraph's inputs; convs in other subgraphs get none.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Callable
from pathlib import Path

import numpy as np

from filterlake.errors import CheckpointError
from filterlake.readers.base import Checkpoint, ConvTensor, ResolvedWeight, graph_levels
from filterlake.readers.detect import describe, guarded
from filterlake.readers.tflite_flat import (
    CONV2D_OPTIONS,
    CONV_2D,
    CUSTOM,
    DENSIFY,
    DEPTHWISE_CONV_2D,
    DEPTHWISE_OPTIONS,
    DEQUANTIZE,
    DTYPES,
    MAX_CHAIN,
    OP_NAMES,
    QUANTIZED,
    TRANSPOSE_CONV,
    _Flat,
    _is_transposed_custom,
    _Op,
    _read_span,
    _Refused,
    _Table,
    _Tensor,
)


class _Graph:
    """One subgraph with the model's buffers and opcodes: resolves weight inputs to lazy float32 values."""

    def __init__(self, flat: _Flat, path: Path, sub: _Table, codes: list[tuple[int, str]], buffers: list):
        self.flat, self.path, self.buffers = flat, path, buffers
        self.tensors = [self._tensor(t) for t in sub.tables(0, "tensor")]
        self.inputs = self._indices(sub.vector(1, "i"), "subgraph input")
        self.outputs = sub.vector(2, "i")
        self.ops = []
        for i, op in enumerate(sub.tables(3, "operator")):
            code_index = int(op.scalar(0, "<I"))
            if code_index >= len(codes):
                raise flat.fail(f"operator {i} has opcode index {code_index} of {len(codes)} opcodes")
            code, custom = codes[code_index]
            inputs = self._indices(op.vector(1, "i"), f"input of operator {i}")
            outputs = self._indices(op.vector(2, "i"), f"output of operator {i}")
            kind = int(op.scalar(3, "<B"))
            self.ops.append(
                _Op(i, code, custom, inputs, outputs, kind, op.table(4, f"options of operator {i}"))
            )
        self.producer = {t: op for op in self.ops for t in op.outputs if t >= 0}

    def _indices(self, values: tuple, what: str) -> tuple[int, ...]:
        for v in values:
            if not -1 <= v < len(self.tensors):
                raise self.flat.fail(f"{what} refers to tensor {v} of {len(self.tensors)}")
        return tuple(values)

    def _tensor(self, t: _Table) -> _Tensor:
        shape = tuple(int(d) for d in t.vector(0, "i"))
        buffer = int(t.scalar(2, "<I"))
        if buffer >= len(self.buffers):
            raise self.flat.fail(f"{t.what} refers to buffer {buffer} of {len(self.buffers)}")
        return _Tensor(
            shape,
            int(t.scalar(1, "<b")),
            buffer,
            t.string(3),
            t.table(4, f"quantization of {t.what}"),
            t.table(6, f"sparsity of {t.what}"),
        )

    def levels(self) -> dict[int, int]:
        """Longest-path level of each operator from the subgraph inputs (constant-fed ops have none)."""
        feeds = {i for i in self.inputs if i >= 0}
        preds = [{self.producer[t].index for t in op.inputs if t in self.producer} for op in self.ops]
        return graph_levels(preds, {i for i, op in enumerate(self.ops) if feeds.intersection(op.inputs)})

    # --- constants -------------------------------------------------------------------------------------------

    def _buffer_span(self, index: int) -> tuple[int, int]:
        """(absolute start, length) of a buffer's bytes: inline `data`, or `offset`/`size` (over 2 GB)."""
        buf = self.buffers[index]
        if index == 0 or buf is None:
            return 0, 0
        start, count = buf.span(0, 1)
        if count:
            return start, count
        offset, size = int(buf.scalar(1, "<Q")), int(buf.scalar(2, "<Q"))
        if offset > 1 and size:
            self.flat.check(offset, size, f"data of buffer {index}")
            return offset, size
        return 0, 0

    def _dequantize(self, t: _Tensor, shape: tuple[int, ...], load: Callable[[], np.ndarray]):
        """(q - zero_point) * scale for an integer constant, per tensor or along quantized_dimension."""
        q = t.quant
        scale = np.asarray(q.vector(2, "f") if q else (), np.float32)
        zero = np.asarray(q.vector(3, "q") if q else (), np.float64)
        axis = int(q.scalar(6, "<i")) if q else 0
        if not scale.size:
            raise _Refused(f"integer weight tensor {t.name!r} has no quantization scale")
        if scale.size > 1 and (not 0 <= axis < len(shape) or shape[axis] != scale.size):
            raise CheckpointError(
                self.path,
                f"tensor {t.name!r}: {scale.size} scales along quantized_dimension {axis} do not match "
                f"its shape {list(shape)}",
            )
        if zero.size not in (0, 1, scale.size):
            raise CheckpointError(
                self.path, f"tensor {t.name!r}: {zero.size} zero points for {scale.size} scales"
            )
        along = [1] * len(shape)
        if scale.size > 1:
            along[axis] = -1
        s = scale.reshape(along) if scale.size > 1 else scale.reshape(())
        z = np.float32(0) if not zero.size else (zero.reshape(along) if zero.size > 1 else zero.reshape(()))

        def run() -> np.ndarray:
            return ((load().astype(np.float64) - z) * s).astype(np.float32)

        return run

    def constant(self, t: _Tensor) -> ResolvedWeight | None:
        """The value of a constant tensor (densified and dequantized), None when it has no data."""
        start, length = self._buffer_span(t.buffer)
        if not length:
            return None
        dtype_name = DTYPES.get(t.type)
        if dtype_name is None:
            raise _Refused(f"weight tensor {t.name!r} has TensorType {t.type}, not a float or integer type")
        dtype = np.dtype(dtype_name).newbyteorder("<")
        shape = t.shape
        if any(d < 0 for d in shape):
            raise CheckpointError(self.path, f"tensor {t.name!r} has a negative dimension in {list(shape)}")
        if t.sparsity is not None:
            load = self._densify(t, dtype, start, length)
        else:
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes != length:
                raise CheckpointError(
                    self.path,
                    f"tensor {t.name!r}: buffer {t.buffer} holds {length} bytes, {list(shape)} {dtype_name} "
                    f"needs {nbytes}",
                )
            path = self.path

            def load() -> np.ndarray:
                return np.frombuffer(_read_span(path, start, length), dtype).reshape(shape)

        if dtype_name in QUANTIZED:
            load = self._dequantize(t, shape, load)
        return ResolvedWeight(shape, dtype_name, t.name, load)

    def _densify(self, t: _Tensor, dtype: np.dtype, start: int, length: int) -> Callable[[], np.ndarray]:
        """A loader that rebuilds a block-free sparse constant (DENSE and SPARSE_CSR dimensions) as dense."""
        sp, shape, rank = t.sparsity, t.shape, len(t.shape)
        order = tuple(int(v) for v in sp.vector(0, "i"))
        if sp.vector(1, "i"):
            raise _Refused(f"sparse weight tensor {t.name!r} uses block sparsity, which is not supported")
        dims = sp.tables(2, f"dim_metadata of {t.name!r}")
        if sorted(order) != list(range(rank)) or len(dims) != rank:
            raise _Refused(
                f"sparse weight tensor {t.name!r}: traversal order {list(order)} and {len(dims)} dimension "
                f"records do not describe its {rank} dimensions"
            )
        if length % dtype.itemsize:
            raise CheckpointError(self.path, f"sparse tensor {t.name!r}: {length} bytes of {dtype.name}")
        total = math.prod(shape)
        vectors = {1: "i", 2: "H", 3: "B"}
        levels = []
        for k, dim in enumerate(dims):
            if int(dim.scalar(0, "<b")) == 0:
                size = int(dim.scalar(1, "<i"))
                if size != shape[order[k]]:
                    raise _Refused(
                        f"sparse weight tensor {t.name!r}: dense size {size} of level {k} is not "
                        f"dimension {order[k]} ({shape[order[k]]})"
                    )
                levels.append((size, None, None))
                continue
            found = []
            for kind_field, field in ((2, 3), (4, 5)):
                fmt = vectors.get(int(dim.scalar(kind_field, "<B")))
                vec = dim.table(field, f"sparse index vector of {t.name!r}")
                if fmt is None or vec is None:
                    raise _Refused(f"sparse weight tensor {t.name!r}: level {k} has no CSR index vectors")
                found.append(np.asarray(vec.vector(0, fmt), np.int64))
            levels.append((shape[order[k]], found[0], found[1]))
        path = self.path

        def load() -> np.ndarray:
            values = np.frombuffer(_read_span(path, start, length), dtype)
            coords = np.zeros((1, rank), np.int64)
            parent = np.zeros(1, np.int64)
            for k, (size, segments, indices) in enumerate(levels):
                if segments is None:
                    coords = np.repeat(coords, size, axis=0)
                    here = np.tile(np.arange(size), len(parent))
                    parent = np.repeat(parent, size) * size + here
                else:
                    if parent.max(initial=0) + 1 >= len(segments):
                        raise ValueError(f"level {k}: {len(segments)} array segments for {len(parent)} rows")
                    if segments[0] < 0 or (np.diff(segments) < 0).any() or segments[-1] > len(indices):
                        raise ValueError(f"level {k}: array segments out of order or past the indices")
                    lo, counts = segments[parent], segments[parent + 1] - segments[parent]
                    coords = np.repeat(coords, counts, axis=0)
                    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
                    parent = starts + np.arange(len(coords))
                    here = indices[parent]
                    if (here < 0).any() or (here >= size).any():
                        raise ValueError(f"level {k}: an array index is outside 0..{size - 1}")
                if len(coords) > total:
                    raise ValueError(f"level {k} addresses {len(coords)} of {total} elements")
                coords[:, order[k]] = here
            if len(coords) != len(values):
                raise ValueError(f"{len(coords)} sparse positions for {len(values)} stored values")
            dense = np.zeros(shape, dtype)
            dense[tuple(coords.T)] = values
            return dense

        return load

    def resolve(self, index: int, depth: int = 0) -> ResolvedWeight | None:
        """The constant value behind tensor `index`, through DEQUANTIZE and DENSIFY; None when computed."""
        if index < 0 or depth > MAX_CHAIN:
            return None
        value = self.constant(self.tensors[index])
        if value is not None:
            return value
        op = self.producer.get(index)
        if op is None or op.code not in (DEQUANTIZE, DENSIFY) or not op.inputs:
            return None
        src = self.resolve(op.inputs[0], depth + 1)
        if src is None or op.code == DENSIFY:
            return src
        return ResolvedWeight(src.shape, src.dtype, src.name, lambda: src.load().astype(np.float32))


def _channels(graph: _Graph, index: int) -> int | None:
    """Channels (last dim) of an NHWC activation tensor when its shape is known."""
    if index < 0:
        return None
    shape = graph.tensors[index].shape
    return shape[-1] if len(shape) == 4 and shape[-1] > 0 else None


def _dilation(op: _Op) -> tuple[int, int] | None:
    """(h, w) dilation from Conv2DOptions / DepthwiseConv2DOptions (1 when the field is absent)."""
    fields = {CONV2D_OPTIONS: (5, 4), DEPTHWISE_OPTIONS: (6, 5)}.get(op.options_type)
    if op.options is None or fields is None:
        return None
    return int(op.options.scalar(fields[0], "<i", 1)), int(op.options.scalar(fields[1], "<i", 1))


def _conv_tensor(
    graph: _Graph, op: _Op, value: ResolvedWeight, name: str, level: int | None, path: Path
) -> ConvTensor | None:
    """The ConvTensor of a conv-like op with a 4-D weight, None for other ranks (not a 2-D conv)."""
    if len(value.shape) != 4:
        return None
    load: Callable[[], np.ndarray]
    if op.code == DEPTHWISE_CONV_2D:
        one, h, w, out = value.shape
        if one != 1:
            raise _Refused(f"depthwise weight {value.name!r} has shape {list(value.shape)}, not [1, H, W, O]")
        shape = (out, h, w, 1)
        multiplier = op.options.scalar(3, "<i", 1) if op.options and op.options_type == 2 else 1
        channels = _channels(graph, op.inputs[0])
        groups = channels if channels and out % channels == 0 else max(out // max(int(multiplier), 1), 1)

        def load(v=value, s=(h, w, out)) -> np.ndarray:
            return np.ascontiguousarray(v.load().reshape(s).transpose(2, 0, 1)[:, None], dtype=np.float32)

    else:
        shape = value.shape
        channels = _channels(graph, op.inputs[0] if op.code == CONV_2D else -1)
        groups = channels // shape[3] if channels and shape[3] and channels % shape[3] == 0 else None
        groups = 1 if op.code != CONV_2D else groups

        def load(v=value) -> np.ndarray:
            return np.ascontiguousarray(v.load().transpose(0, 3, 1, 2), dtype=np.float32)

    kind = "conv" if op.code in (CONV_2D, DEPTHWISE_CONV_2D) else "transposed"
    load = guarded(path, f"tensor {name}", load)
    return ConvTensor(name, shape, value.dtype, "OHWI", load, kind, groups, _dilation(op), level)


def _weight_input(op: _Op) -> int | None:
    """Which input holds a conv-like op's weights; None for ops that are not convs."""
    if op.code in (CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV):
        return 1
    if op.code == CUSTOM and _is_transposed_custom(op.custom):
        return 1
    return None


def _parse(path: Path, flat: _Flat) -> list[_Graph]:
    if flat.size < 8:
        raise flat.fail(f"only {flat.size} bytes")
    if bytes(flat.data[4:8]) != b"TFL3":
        raise flat.fail("no TFL3 file identifier at bytes 4..8")
    model = flat.table(int(flat.read("<I", 0, "root offset")), "model")
    codes = []
    for oc in model.tables(1, "operator code"):
        code = max(int(oc.scalar(0, "<b")), int(oc.scalar(3, "<i")))
        codes.append((code, oc.string(1) if code == CUSTOM else ""))
    buffers: list = model.tables(4, "buffer")
    return [_Graph(flat, path, sub, codes, buffers) for sub in model.tables(2, "subgraph")]


def read_tflite(path: Path) -> Checkpoint:
    """Open a TFLite flatbuffer: its conv weights (lazy float32 OIHW loaders), graph levels and notes."""
    path = Path(path)
    with open(path, "rb") as fh:
        if path.stat().st_size == 0:
            raise CheckpointError(path, "corrupt TFLite flatbuffer: empty file")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            try:
                return _read(path, _Flat(path, mm))
            except CheckpointError:
                raise
            except Exception as exc:  # untrusted bytes: any other failure is a one-line error too
                raise CheckpointError(path, f"corrupt TFLite flatbuffer: {describe(exc)}") from exc


def _read(path: Path, flat: _Flat) -> Checkpoint:
    graphs = _parse(path, flat)
    tensors: list[ConvTensor] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    for g_index, graph in enumerate(graphs):
        levels = graph.levels() if g_index == 0 else {}
        for op in graph.ops:
            at = _weight_input(op)
            if at is None:
                continue
            op_name = OP_NAMES.get(op.code) or f"CUSTOM {op.custom}"
            where = f"operator {op.index} ({op_name})" + (f" of subgraph {g_index}" if g_index else "")
            if len(op.inputs) <= at or op.inputs[at] < 0:
                notes.append(f"unresolved weight for {where}: no weight input")
                continue
            out = graph.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] >= 0 else ""
            try:
                value = graph.resolve(op.inputs[at])
                if value is None:
                    notes.append(f"unresolved weight for {where}: input {at} is not a constant")
                    continue
                base = (
                    value.name.removesuffix("/Kernel").removesuffix("/kernel")
                    or out
                    or f"{op_name}_{op.index}"
                )
                seen[base] = seen.get(base, 0) + 1
                name = base if seen[base] == 1 else f"{base}#{seen[base]}"
                tensor = _conv_tensor(graph, op, value, name, levels.get(op.index), path)
            except _Refused as exc:
                notes.append(f"unresolved weight for {where}: {exc}")
                continue
            if tensor is not None:
                tensors.append(tensor)
    if len(graphs) > 1 and any(t.level is None for t in tensors):
        notes.append("convs in subgraphs other than the first have no graph level")
    return Checkpoint(path, "tflite", [path], "tflite-flatbuffer", tensors, "graph", notes)
