"""An independent form of "the same weights" for tests: each layer as its (out, in) shape and the exact float32
bytes of its filters in filter order, hashed with hashlib (not with filterlake's own digest)."""

from __future__ import annotations

import hashlib
from collections import Counter

import duckdb
import numpy as np


def layer_key(filters: np.ndarray, out_channels: int, in_channels: int) -> str:
    """A layer's key: equal for two reads exactly when every bit of every filter agrees."""
    data = np.ascontiguousarray(filters, dtype="<f4").reshape(-1, 9)
    return hashlib.sha256(f"{out_channels} {in_channels}\n".encode() + data.tobytes()).hexdigest()


def stored_layers(con: duckdb.DuckDBPyConnection, model_id: str) -> Counter:
    """The multiset of layer keys of one model as the lake stores it."""
    out: Counter = Counter()
    for layer_idx, o, i in con.execute(
        "SELECT layer_idx, out_channels, in_channels FROM layers WHERE model_id = ? ORDER BY layer_idx",
        [model_id],
    ).fetchall():
        w = con.execute(
            "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? AND layer_idx = ? "
            "ORDER BY filter_idx",
            [model_id, layer_idx],
        ).fetchnumpy()
        out[layer_key(np.column_stack([w[f"w{k}"] for k in range(9)]), o, i)] += 1
    return out
