"""`histograms/` and `extents/`: per-layer coefficient histograms in a stored basis, in one scan per model.

Counts add up, so the distribution of any grouping (domain, model, depth decile, ...) is a sum over layers and
every later regrouping reads no filters.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from filterlake.derived.layer_stats import finite_channels
from filterlake.derived.store import WORKERS, blas_threads, map_models, staging, write_atomic
from filterlake.lake.files import read_table
from filterlake.lake.layout import committed_ids, layers_file
from filterlake.lake.scan import iter_layers
from filterlake.numeric.basis import Basis, transform
from filterlake.numeric.histogram import histogram_counts
from filterlake.numeric.normalise import maxabs_scale
from filterlake.numeric.params import QualityParams
from filterlake.numeric.quality import sparse_mask


@dataclass(frozen=True)
class HistSpec:
    """Histogram range, bin count and filter subset ("all" or "nonsparse")."""

    lo: float
    hi: float
    bins: int = 70
    subset: str = "all"

    @property
    def key(self) -> str:
        return f"{self.lo:.9g}_{self.hi:.9g}_{self.bins}_{self.subset}"

    @classmethod
    def from_key(cls, key: str) -> HistSpec:
        lo, hi, bins, subset = key.rsplit("_", 3)
        return cls(float(lo), float(hi), int(bins), subset)


# Fine histogram behind the KDE plots: |c| <= 3 + |mu| ~ 3.13 for max-abs scaled filters (methods.md §4).
KDE_SPEC = HistSpec(-3.5, 3.5, 350, "all")


def hist_file(lake: Path, basis_id: str, spec: HistSpec, model_id: str) -> Path:
    return lake / "histograms" / f"basis={basis_id}" / f"spec={spec.key}" / f"{model_id}.parquet"


def extents_file(lake: Path, basis_id: str, model_id: str) -> Path:
    return lake / "extents" / f"basis={basis_id}" / f"{model_id}.parquet"


def _long_rows(layer_idx: int, counts: np.ndarray) -> dict[str, np.ndarray]:
    comp, bins = np.nonzero(counts)
    return {"layer_idx": np.full(len(comp), layer_idx, np.int32), "component": comp.astype(np.int32),
            "bin": bins.astype(np.int32), "count": counts[comp, bins]}


HIST_SCHEMA = pa.schema([("model_id", pa.string()), ("layer_idx", pa.int32()), ("component", pa.int32()),
                         ("bin", pa.int32()), ("count", pa.int64())])
EXTENT_SCHEMA = pa.schema([("model_id", pa.string()), ("layer_idx", pa.int32()), ("component", pa.int32()),
                           ("min", pa.float64()), ("max", pa.float64())])


def _table(model_id: str, parts: list[dict[str, np.ndarray]], schema: pa.Schema) -> pa.Table:
    """One model's rows: the parts' columns concatenated, `model_id` repeated (built by Arrow, no Python strings)."""
    columns = {f.name: pa.array(np.concatenate([p[f.name] for p in parts]) if parts else [], f.type)
               for f in schema if f.name != "model_id"}
    n = len(columns["layer_idx"])
    return pa.table({"model_id": pa.repeat(pa.scalar(model_id, pa.string()), n), **columns}, schema=schema)


def model_histograms(lake: Path, model_id: str, basis: Basis, specs: list[HistSpec],
                     params: QualityParams) -> tuple[dict[HistSpec, pa.Table], pa.Table]:
    """One pass over a model: per-layer histograms for every spec and per-layer coefficient extents."""
    layers = read_table(layers_file(lake, model_id),
                           columns=["layer_idx", "n_filters", "out_channels", "in_channels"]).to_pylist()
    shapes = {row["layer_idx"]: (row["out_channels"], row["in_channels"], 9) for row in layers}
    hist_parts: dict[HistSpec, list] = {spec: [] for spec in specs}
    extents = []
    for layer_idx, filters in iter_layers(lake, model_id, [(r["layer_idx"], r["n_filters"]) for r in layers]):
        filters = finite_channels(filters.reshape(shapes[layer_idx])).reshape(-1, 9)
        if not len(filters):
            continue
        coefficients = transform(basis, maxabs_scale(filters))
        kept = None
        for spec in specs:
            if spec.subset == "nonsparse" and kept is None:
                kept = ~sparse_mask(filters, params.eps, params.rule, params.zero_layer_value)
            chosen = coefficients if spec.subset == "all" else coefficients[kept]
            hist_parts[spec].append(_long_rows(layer_idx, histogram_counts(chosen, spec.lo, spec.hi, spec.bins)))
        extents.append({"layer_idx": np.full(9, layer_idx, np.int32), "component": np.arange(9, dtype=np.int32),
                        "min": coefficients.min(axis=0), "max": coefficients.max(axis=0)})
    return ({spec: _table(model_id, parts, HIST_SCHEMA) for spec, parts in hist_parts.items()},
            _table(model_id, extents, EXTENT_SCHEMA))


def refresh_histograms(lake: Path, basis_id: str, basis: Basis, specs: list[HistSpec], params: QualityParams,
                       on_model: Callable[[str], None] | None = None, workers: int = WORKERS,
                       model_ids: Collection[str] | None = None) -> dict[str, int]:
    """Compute the missing histogram/extent files of the models (default: all committed) for this basis."""
    computed = reused = 0
    with blas_threads(1), staging(lake) as stage:

        def one(model_id: str) -> bool:
            """Compute and store one model's missing files; False when it has them all."""
            missing = [s for s in specs if not hist_file(lake, basis_id, s, model_id).exists()]
            if not missing and extents_file(lake, basis_id, model_id).exists():
                return False
            hists, extents = model_histograms(lake, model_id, basis, missing, params)
            for spec, table in hists.items():
                write_atomic(table, hist_file(lake, basis_id, spec, model_id), lake, stage)
            write_atomic(extents, extents_file(lake, basis_id, model_id), lake, stage)
            return True

        order = sorted(committed_ids(lake) if model_ids is None else model_ids)
        for model_id, done in zip(order, map_models(one, order, workers)):
            computed += done
            reused += not done
            if on_model:
                on_model(model_id)
    return {"computed": computed, "reused": reused}
