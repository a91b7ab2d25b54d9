"""The peers, timed on the same lake as filterlake: CNN Filter DB's notebook path and torchconvquality.

* `peer-notebook`: the method of CNN-Filter-DB `main.ipynb` (methods.md §2-§5) in a few lines of numpy and
  sklearn: every filter of the lake loaded into one float32 (N, 9) array, divided by its max |w|, a 9-component
  `sklearn.decomposition.PCA` fitted on all of them and applied (``svd_solver="full"``, what sklearn 0.24, the
  notebook's pin, resolves to for 9 features), then per domain and component `np.histogram(..., 70,
  range=(-3, 3), density=True)` and the symmetric-KL matrix with the eps rule (the medical preset, as the
  `analyse` stage). Its clock starts before the filters are read, as filterlake's analysis reads them.
* `peer-tcq`: `torchconvquality.measure_quality` on one `torch.nn.Sequential` of `nn.Conv2d` per model, built
  from the lake's layers (before the clock; only `measure_quality` is timed, summed over the models).

The notebook path holds every filter in memory at once; `notebook_fits` estimates its peak from its arrays
(NOTEBOOK_BYTES_PER_FILTER) against the machine's available memory, and the runner skips it, saying so,
where it would not fit (it is never run into swap or the OOM killer).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# Bytes per filter alive at the notebook path's peak: the Arrow columns read (36), the float32 array (36),
# sklearn's centred copy and its U of the full SVD (2 x 36), and the transformed coefficients (36); the
# measured peak RSS at the CI scale is recorded beside it in every run (`peer_notebook.bytes_per_filter`).
NOTEBOOK_BYTES_PER_FILTER = 5 * 36
FIT_SHARE = 0.8  # of MemAvailable that a peer may plan to use


def available_bytes() -> int:
    """MemAvailable of /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) * 1024
    return 0


def notebook_fits(n_filters: int) -> dict[str, Any]:
    """Whether the notebook path's arrays for `n_filters` fit in FIT_SHARE of the available memory."""
    need, have = n_filters * NOTEBOOK_BYTES_PER_FILTER, available_bytes()
    return {"fits": need <= FIT_SHARE * have, "need_gb": need / 1e9, "available_gb": have / 1e9}


def _model_domains(lake: Path) -> dict[str, str]:
    """model_id -> domain ('' when none) of the models holding 3x3 filters."""
    from filterlake.lake.duck import connect

    rows = connect(lake).execute("SELECT model_id, coalesce(domain, '') FROM models WHERE n_filters_3x3 > 0")
    return dict(rows.fetchall())


def stage_peer_notebook(lake: str | Path) -> dict[str, Any]:
    """CNN Filter DB's notebook path on the lake's filters, grouped by domain (see the module docstring)."""
    import numpy as np
    import pyarrow.parquet as pq
    from sklearn.decomposition import PCA

    from filterlake.lake.layout import filters_dir
    from filterlake.lake.schema import WEIGHT_COLUMNS

    lake = Path(lake)
    domains = _model_domains(lake)
    labels = sorted(set(domains.values()))
    files = [
        (path, labels.index(domain))
        for model_id, domain in sorted(domains.items())
        for path in sorted(filters_dir(lake, model_id).glob("*.parquet"))
    ]
    start = time.perf_counter()
    tables = [(pq.read_table(p, columns=list(WEIGHT_COLUMNS)), g) for p, g in files]
    x = np.concatenate([np.column_stack([t.column(i).to_numpy() for i in range(9)]) for t, _ in tables])
    group = np.concatenate([np.full(t.num_rows, g, np.int32) for t, g in tables])
    del tables
    read_s = time.perf_counter() - start
    peak = np.abs(x).max(axis=1, keepdims=True)
    peak[peak == 0] = 1
    x /= peak
    pca = PCA(n_components=9, svd_solver="full")
    c = pca.fit_transform(x)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(labels) + 1))
    eps = np.finfo(np.float32).eps
    dens = np.empty((len(labels), 9, 70))
    for g in range(len(labels)):
        part = c[order[bounds[g] : bounds[g + 1]]]
        for k in range(9):
            v = np.histogram(part[:, k], 70, range=(-3, 3), density=True)[0].astype(np.float64)
            v[v == 0] = eps
            dens[g, k] = v / v.sum()
    kl = np.zeros((len(labels), len(labels)))
    for a in range(len(labels)):
        for b in range(len(labels)):
            p, q = dens[a], dens[b]
            kl[a, b] = ((p * np.log(p / q) + q * np.log(q / p)).sum(axis=1) / 9).sum()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "read_s": read_s,
        "filters": len(x),
        "groups": len(labels),
        "evr0": float(pca.explained_variance_ratio_[0]),
        "max_d": float(kl.max()),
    }


def stage_peer_tcq(lake: str | Path, max_filters: str | int = 0) -> dict[str, Any]:
    """torchconvquality.measure_quality on modules built from each model's layers (only the call is timed), on
    the models in id order until `max_filters` filters (0: all)."""
    import torch
    from torchconvquality import measure_quality

    from filterlake.derived.layer_stats import iter_layer_columns
    from filterlake.lake.layout import committed_ids

    lake = Path(lake)
    # torch's lazy LAPACK set-up happens off the clock, as filterlake's JIT does
    measure_quality(torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3)))
    seconds = 0.0
    layers = filters = 0
    for model_id in sorted(committed_ids(lake)):
        if int(max_filters) and filters >= int(max_filters):
            break
        convs = []
        for _idx, c_out, columns in iter_layer_columns(lake, model_id):
            if not c_out:
                continue
            weight = torch.from_numpy(columns.T.reshape(c_out, -1, 3, 3).copy())
            conv = torch.nn.Conv2d(weight.shape[1], c_out, 3, bias=False)
            conv.weight.data = weight
            convs.append(conv)
            filters += columns.shape[1]
        if not convs:
            continue
        model = torch.nn.Sequential(*convs)
        start = time.perf_counter()
        layers += len(measure_quality(model))
        seconds += time.perf_counter() - start
    return {
        "seconds": seconds,
        "layers": layers,
        "filters": filters,
        "torch_threads": torch.get_num_threads(),
    }
