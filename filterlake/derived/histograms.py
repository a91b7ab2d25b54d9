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

from filterlake.derived.layer_stats import iter_model_layers
from filterlake.derived.per_model import WORKERS, refresh_models
from filterlake.lake.files import staging, write_table_atomic
from filterlake.lake.layout import committed_ids, extents_file, hist_file
from filterlake.lake.schema import arrow_schema
from filterlake.numeric.basis import Basis, transform
from filterlake.numeric.histogram import bin_edges, histogram_counts
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
        """The spec's folder key in the lake and in the `histograms` view's `spec` column."""
        return f"{self.lo:.9g}_{self.hi:.9g}_{self.bins}_{self.subset}"

    @property
    def edges(self) -> np.ndarray:
        """The bins + 1 edges of every histogram of this spec."""
        return bin_edges(self.lo, self.hi, self.bins)

    @classmethod
    def from_key(cls, key: str) -> HistSpec:
        lo, hi, bins, subset = key.rsplit("_", 3)
        return cls(float(lo), float(hi), int(bins), subset)


# Fine histogram behind the KDE plots: |c| <= 3 + |mu| ~ 3.13 for max-abs scaled filters (methods.md §4).
KDE_SPEC = HistSpec(-3.5, 3.5, 350, "all")


def _long_rows(layer_idx: int, counts: np.ndarray) -> dict[str, np.ndarray]:
    comp, bins = np.nonzero(counts)
    return {
        "layer_idx": np.full(len(comp), layer_idx, np.int32),
        "component": comp.astype(np.int32),
        "bin": bins.astype(np.int32),
        "count": counts[comp, bins],
    }


def _table(model_id: str, parts: list[dict[str, np.ndarray]], name: str) -> pa.Table:
    """One model's rows of table `name`: the parts' columns concatenated, `model_id` repeated (built by Arrow,
    no Python strings)."""
    schema = arrow_schema(name)
    columns = {
        f.name: pa.array(np.concatenate([p[f.name] for p in parts]) if parts else [], f.type)
        for f in schema
        if f.name != "model_id"
    }
    n = len(columns["layer_idx"])
    return pa.table({"model_id": pa.repeat(pa.scalar(model_id, pa.string()), n), **columns}, schema=schema)


def model_histograms(
    lake: Path, model_id: str, basis: Basis, specs: list[HistSpec], params: QualityParams
) -> tuple[dict[HistSpec, pa.Table], pa.Table]:
    """One pass over a model: per-layer histograms for every spec and per-layer coefficient extents."""
    hist_parts: dict[HistSpec, list] = {spec: [] for spec in specs}
    extents = []
    for layer_idx, layer in iter_model_layers(lake, model_id):
        filters = layer.reshape(-1, 9)
        if not len(filters):
            continue
        coefficients = transform(basis, maxabs_scale(filters))
        kept = None
        for spec in specs:
            if spec.subset == "nonsparse" and kept is None:
                kept = ~sparse_mask(filters, params.eps, params.rule, params.zero_layer_value)
            chosen = coefficients if spec.subset == "all" else coefficients[kept]
            hist_parts[spec].append(
                _long_rows(layer_idx, histogram_counts(chosen, spec.lo, spec.hi, spec.bins))
            )
        extents.append(
            {
                "layer_idx": np.full(9, layer_idx, np.int32),
                "component": np.arange(9, dtype=np.int32),
                "min": coefficients.min(axis=0),
                "max": coefficients.max(axis=0),
            }
        )
    return (
        {spec: _table(model_id, parts, "histograms") for spec, parts in hist_parts.items()},
        _table(model_id, extents, "extents"),
    )


def refresh_histograms(
    lake: Path,
    basis_id: str,
    basis: Basis,
    specs: list[HistSpec],
    params: QualityParams,
    on_model: Callable[[str], None] | None = None,
    workers: int = WORKERS,
    model_ids: Collection[str] | None = None,
) -> dict[str, int]:
    """Compute the missing histogram/extent files of the models (default: all committed) for this basis."""
    with staging(lake) as stage:

        def compute(model_id: str) -> bool:
            missing = [s for s in specs if not hist_file(lake, basis_id, s.key, model_id).exists()]
            if not missing and extents_file(lake, basis_id, model_id).exists():
                return False
            hists, extents = model_histograms(lake, model_id, basis, missing, params)
            for spec, table in hists.items():
                write_table_atomic(table, hist_file(lake, basis_id, spec.key, model_id), "histograms", stage)
            write_table_atomic(extents, extents_file(lake, basis_id, model_id), "extents", stage)
            return True

        return refresh_models(
            committed_ids(lake) if model_ids is None else model_ids, compute, on_model, workers
        )
