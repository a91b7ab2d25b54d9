"""Build small TFLite flatbuffers with `flatbuffers.Builder`, in the field layout of the TFLite schema."""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np

TYPES = {np.dtype("float32"): 0, np.dtype("float16"): 1, np.dtype("int32"): 2, np.dtype("uint8"): 3}
TYPES |= {np.dtype("int16"): 7, np.dtype("int8"): 9}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None  # a constant's values (buffer); None for activations
    dtype: str = "float32"
    quant: dict | None = None  # scale, zero_point, quantized_dimension
    sparsity: dict | None = None  # traversal_order, block_map, dims [(format, dense_size, segments, indices)]
    raw: bytes | None = None  # buffer bytes as written (sparse values), instead of `data`
    external: bool = False  # stored through Buffer.offset / size after the flatbuffer


@dataclass
class Op:
    code: int | str  # builtin code, or the custom code of a CUSTOM op
    inputs: list[int]
    outputs: list[int]
    options: tuple[int, dict[int, int]] | None = None  # (BuiltinOptions type, {field id: int32 value})
    deprecated: bool = False  # write the code in deprecated_builtin_code only


@dataclass
class Model:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    extra: list[str] = field(default_factory=list)


def _ints(b: flatbuffers.Builder, values, dtype=np.int32) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype))


def _tables(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _sparsity(b: flatbuffers.Builder, sp: dict) -> int:
    dims = []
    for fmt, dense, segments, indices in sp["dims"]:
        vecs = []
        for values in (segments, indices):
            if values is None:
                vecs.append(None)
                continue
            inner = _ints(b, values)
            b.StartObject(1)
            b.PrependUOffsetTRelativeSlot(0, inner, 0)
            vecs.append(b.EndObject())
        b.StartObject(6)
        b.PrependInt8Slot(0, fmt, 0)
        b.PrependInt32Slot(1, dense, 0)
        for (type_slot, value_slot), vec in zip(((2, 3), (4, 5)), vecs):
            if vec is not None:
                b.PrependUint8Slot(type_slot, 1, 0)  # Int32Vector
                b.PrependUOffsetTRelativeSlot(value_slot, vec, 0)
        dims.append(b.EndObject())
    order = _ints(b, sp["traversal_order"])
    block = _ints(b, sp["block_map"]) if sp.get("block_map") else None
    dim_vec = _tables(b, dims)
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(0, order, 0)
    if block is not None:
        b.PrependUOffsetTRelativeSlot(1, block, 0)
    b.PrependUOffsetTRelativeSlot(2, dim_vec, 0)
    return b.EndObject()


def _quant(b: flatbuffers.Builder, q: dict) -> int:
    scale = b.CreateNumpyVector(np.asarray(q["scale"], np.float32))
    zero = b.CreateNumpyVector(np.asarray(q.get("zero_point", []), np.int64))
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(2, scale, 0)
    b.PrependUOffsetTRelativeSlot(3, zero, 0)
    b.PrependInt32Slot(6, q.get("quantized_dimension", 0), 0)
    return b.EndObject()


def _build(model: Model, external_at: int) -> tuple[bytes, list[bytes]]:
    b = flatbuffers.Builder(1024)
    payloads: list[bytes | None] = [None]  # buffer 0: the empty sentinel
    external: list[bytes] = []
    tensor_buffers = []
    for t in model.tensors:
        data = (
            t.raw if t.raw is not None else None if t.data is None else np.asarray(t.data, t.dtype).tobytes()
        )
        tensor_buffers.append(0 if data is None else len(payloads))
        payloads.append(data) if data is not None else None
    buffers = []
    at = external_at
    for i, data in enumerate(payloads):
        owner = next((t for t, bi in zip(model.tensors, tensor_buffers) if bi == i and i), None)
        if data is not None and owner is not None and owner.external:
            b.StartObject(3)
            b.PrependUint64Slot(1, at, 0)
            b.PrependUint64Slot(2, len(data), 0)
            external.append(data)
            at += (len(data) + 15) // 16 * 16
        else:
            vec = b.CreateByteVector(data) if data else None
            b.StartObject(3)
            if vec is not None:
                b.PrependUOffsetTRelativeSlot(0, vec, 0)
        buffers.append(b.EndObject())
    tensors = []
    for t, bi in zip(model.tensors, tensor_buffers):
        name = b.CreateString(t.name)
        shape = _ints(b, t.shape)
        quant = _quant(b, t.quant) if t.quant else None
        sparsity = _sparsity(b, t.sparsity) if t.sparsity else None
        b.StartObject(7)
        b.PrependUOffsetTRelativeSlot(0, shape, 0)
        b.PrependInt8Slot(1, TYPES[np.dtype(t.dtype)], 0)
        b.PrependUint32Slot(2, bi, 0)
        b.PrependUOffsetTRelativeSlot(3, name, 0)
        if quant is not None:
            b.PrependUOffsetTRelativeSlot(4, quant, 0)
        if sparsity is not None:
            b.PrependUOffsetTRelativeSlot(6, sparsity, 0)
        tensors.append(b.EndObject())
    codes, code_index, ops = [], {}, []
    for op in model.ops:
        key = (op.code, op.deprecated)
        if key not in code_index:
            custom = b.CreateString(op.code) if isinstance(op.code, str) else None
            builtin = 32 if isinstance(op.code, str) else op.code
            b.StartObject(4)
            b.PrependInt8Slot(0, min(builtin, 127), 0)
            if custom is not None:
                b.PrependUOffsetTRelativeSlot(1, custom, 0)
            b.PrependInt32Slot(2, 1, 1)
            if not op.deprecated:
                b.PrependInt32Slot(3, builtin, 0)
            code_index[key] = len(codes)
            codes.append(b.EndObject())
        options = None
        if op.options is not None:
            b.StartObject(8)
            for slot, value in op.options[1].items():
                b.PrependInt32Slot(slot, value, 0)
            options = b.EndObject()
        inputs, outputs = _ints(b, op.inputs), _ints(b, op.outputs)
        b.StartObject(5)
        b.PrependUint32Slot(0, code_index[key], 0)
        b.PrependUOffsetTRelativeSlot(1, inputs, 0)
        b.PrependUOffsetTRelativeSlot(2, outputs, 0)
        if options is not None:
            b.PrependUint8Slot(3, op.options[0], 0)
            b.PrependUOffsetTRelativeSlot(4, options, 0)
        ops.append(b.EndObject())
    tensor_vec, op_vec = _tables(b, tensors), _tables(b, ops)
    inputs, outputs = _ints(b, model.inputs), _ints(b, model.outputs)
    sub_name = b.CreateString("main")
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, tensor_vec, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs, 0)
    b.PrependUOffsetTRelativeSlot(3, op_vec, 0)
    b.PrependUOffsetTRelativeSlot(4, sub_name, 0)
    subgraph = b.EndObject()
    code_vec, sub_vec, buf_vec = _tables(b, codes), _tables(b, [subgraph]), _tables(b, buffers)
    description = b.CreateString("filterlake test fixture")
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, code_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, sub_vec, 0)
    b.PrependUOffsetTRelativeSlot(3, description, 0)
    b.PrependUOffsetTRelativeSlot(4, buf_vec, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output()), external


def build(model: Model) -> bytes:
    """The file's bytes: the flatbuffer, then (16-aligned) the data of `external` tensors it points to."""
    head, _ = _build(model, 16)  # the offsets' values do not change the flatbuffer's length
    start = (len(head) + 15) // 16 * 16
    head, external = _build(model, start)
    out = bytearray(head)
    for data in external:
        out += b"\0" * (-len(out) % 16) + data
    return bytes(out)
