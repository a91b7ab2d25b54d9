"""Stream the filters of one model layer by layer, with memory bounded by one batch plus the largest layer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from filterlake.errors import LakeError
from filterlake.lake.layout import filters_dir
from filterlake.lake.schema import WEIGHT_COLUMNS

BATCH_ROWS = 1 << 20


def iter_layers(
    lake: Path, model_id: str, layer_sizes: Sequence[tuple[int, int]], batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (layer_idx, (n, 9) float32 filters) in layer order; `layer_sizes` are (layer_idx, n_filters).

    Files hold each model's filters in layer order, so layers are cut from consecutive batches by count.
    """
    parts = sorted(filters_dir(lake, model_id).glob("*.parquet"))
    pending: list[np.ndarray] = []
    have = 0
    sizes = iter(layer_sizes)
    current = next(sizes, None)
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_rows, columns=list(WEIGHT_COLUMNS)):
            block = np.column_stack([batch.column(i).to_numpy(zero_copy_only=False) for i in range(9)])
            pending.append(block)
            have += len(block)
            while current is not None and have >= current[1]:
                data = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield current[0], data[: current[1]]
                rest = data[current[1] :]
                pending, have = ([rest] if len(rest) else []), len(rest)
                current = next(sizes, None)
    while current is not None and current[1] == 0:
        yield current[0], np.empty((0, 9), np.float32)
        current = next(sizes, None)
    if current is not None or have:
        raise LakeError(
            f"model {model_id}: filter rows do not match its layers table (run `filterlake check`)"
        )
