"""`weights_sha256`: one digest of a model's extracted 3x3 filters, whatever file format or layer order held them.

Byte-different files can hold the same weights (a PyTorch and an ONNX export, two copies of one frozen
backbone); the file hash (`model_id`) cannot see it, this digest can. Each layer is hashed as its shape
`"<out> <in>\n"` followed by its float32 filters in (out, in) order, little-endian, exactly as the lake stores
them; the model digest is the sha256 of the sorted layer digests, so two formats that list the layers in a
different order still agree. A model without 3x3 filters has no digest (None): it is nobody's duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np


class LayerDigest:
    """The running digest of one layer; filters may arrive in several blocks, in order."""

    def __init__(self, out_channels: int, in_channels: int):
        self._hash = hashlib.sha256(f"{int(out_channels)} {int(in_channels)}\n".encode())

    def update(self, filters: np.ndarray) -> None:
        """Add the next (n, 9) filters of the layer (any float dtype; hashed as the lake's float32)."""
        block = np.ascontiguousarray(filters, dtype="<f4").reshape(-1, 9)
        self._hash.update(memoryview(block).cast("B"))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def weights_sha256(layer_digests: Iterable[str]) -> str | None:
    """The model digest of its layers' hex digests (order-free); None when there are none."""
    ordered = sorted(layer_digests)
    if not ordered:
        return None
    return hashlib.sha256("\n".join(ordered).encode()).hexdigest()
