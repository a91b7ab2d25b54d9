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
    """Yield (layer_idx, (9, n) float32 columns w0..w8) in layer order; `layer_sizes` are (layer_idx, n_filters).

    The layout of the compiled kernels (`numeric/kernels.py`): each batch's 9 weight columns are copied once
    into a growing (9, rows) buffer, and layers are cut from it by count as views (files hold each model's
    filters in layer order). A yielded array is valid until the next one is asked for; copy it to keep it.
    """
    parts = sorted(filters_dir(lake, model_id).glob("*.parquet"))
    buffer = np.empty((9, 0), np.float32)
    have = 0
    sizes = iter(layer_sizes)
    current = next(sizes, None)
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_rows, columns=list(WEIGHT_COLUMNS)):
            rows = batch.num_rows
            if have + rows > buffer.shape[1]:
                grown = np.empty((9, max(2 * buffer.shape[1], have + rows)), np.float32)
                grown[:, :have] = buffer[:, :have]
                buffer = grown
            for i in range(9):
                buffer[i, have : have + rows] = batch.column(i).to_numpy(zero_copy_only=False)
            have += rows
            start = 0
            while current is not None and have - start >= current[1]:
                yield current[0], buffer[:, start : start + current[1]]
                start += current[1]
                current = next(sizes, None)
            if start:
                buffer[:, : have - start] = buffer[:, start:have]
                have -= start
    while current is not None and current[1] == 0:
        yield current[0], np.empty((9, 0), np.float32)
        current = next(sizes, None)
    if current is not None or have:
        raise LakeError(
            f"model {model_id}: filter rows do not match its layers table (run `filterlake check`)"
        )
