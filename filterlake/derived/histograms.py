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

from filterlake.derived.layer_stats import iter_layer_columns, stats_table
from filterlake.derived.per_model import ModelMap, map_models, run_models, stored_fingerprint
from filterlake.lake.files import staging, write_table_atomic
from filterlake.lake.layout import committed_ids, extents_file, hist_file, stats_file
from filterlake.lake.rows import has_rows
from filterlake.lake.schema import arrow_schema
from filterlake.numeric.basis import Basis
from filterlake.numeric.histogram import bin_edges, outer_edges
from filterlake.numeric.histogram_kernel import histogram_pass
from filterlake.numeric.kernels import layer_row
from filterlake.numeric.params import SPARSITY_RULES, QualityParams


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


@dataclass(frozen=True)
class SpecArrays:
    """Histogram specs as the arrays `kernels.histogram_pass` takes (numpy's widened ranges, padded edges)."""

    los: np.ndarray
    his: np.ndarray
    bins: np.ndarray
    nonsparse: np.ndarray
    edges: np.ndarray

    @classmethod
    def of(cls, specs: list[HistSpec]) -> SpecArrays:
        ranges = np.array([outer_edges(s.lo, s.hi) for s in specs], np.float64).reshape(-1, 2)
        bins = np.array([s.bins for s in specs], np.int64)
        edges = np.zeros((len(specs), int(bins.max(initial=0)) + 1))
        for row, spec in enumerate(specs):
            edges[row, : spec.bins + 1] = spec.edges
        nonsparse = np.array([s.subset == "nonsparse" for s in specs], np.bool_)
        return cls(ranges[:, 0].copy(), ranges[:, 1].copy(), bins, nonsparse, edges)


class LayerHistograms:
    """Collects one model's per-layer histograms of every spec and its coefficient extents, layer by layer."""

    def __init__(self, basis: Basis, specs: list[HistSpec], params: QualityParams) -> None:
        self.basis, self.specs, self.params, self.arrays = basis, specs, params, SpecArrays.of(specs)
        self.parts: dict[HistSpec, list] = {spec: [] for spec in specs}
        self.extents: list[dict[str, np.ndarray]] = []

    def add(self, layer_idx: int, c_out: int, columns: np.ndarray) -> None:
        """Project and bin one layer's (9, n) columns (one compiled pass); a layer without filters is skipped."""
        p, a = self.params, self.arrays
        counts, extents = histogram_pass(
            columns, c_out, p.eps, SPARSITY_RULES.index(p.rule), p.zero_layer_value == 1.0,
            self.basis.mean, self.basis.components, a.los, a.his, a.bins, a.nonsparse, a.edges,
        )  # fmt: skip
        if not np.isfinite(extents[0, 0]):  # no used filter: as the reference, no rows at all
            return
        for row, spec in enumerate(self.specs):
            self.parts[spec].append(_long_rows(layer_idx, counts[row, :, : spec.bins]))
        self.extents.append(
            {
                "layer_idx": np.full(9, layer_idx, np.int32),
                "component": np.arange(9, dtype=np.int32),
                "min": extents[0],
                "max": extents[1],
            }
        )

    def tables(self, model_id: str) -> tuple[dict[HistSpec, pa.Table], pa.Table]:
        """The model's `histograms` table of each spec and its `extents` table."""
        return (
            {spec: _table(model_id, parts, "histograms") for spec, parts in self.parts.items()},
            _table(model_id, self.extents, "extents"),
        )


def model_histograms(
    lake: Path, model_id: str, basis: Basis, specs: list[HistSpec], params: QualityParams
) -> tuple[dict[HistSpec, pa.Table], pa.Table]:
    """One pass over a model: per-layer histograms for every spec and per-layer coefficient extents."""
    collected = LayerHistograms(basis, specs, params)
    for layer_idx, c_out, columns in iter_layer_columns(lake, model_id):
        collected.add(layer_idx, c_out, columns)
    return collected.tables(model_id)


def refresh_histograms(
    lake: Path,
    basis_id: str,
    basis: Basis,
    specs: list[HistSpec],
    params: QualityParams,
    on_model: Callable[[str], None] | None = None,
    model_map: ModelMap = map_models,
    model_ids: Collection[str] | None = None,
) -> dict[str, int]:
    """Compute the missing histogram/extent files of the models (default: all committed) for this basis."""
    models = committed_ids(lake) if model_ids is None else model_ids
    return refresh_in_one_read(lake, basis_id, basis, specs, params, (), models, on_model, model_map)[1]


def refresh_in_one_read(
    lake: Path,
    basis_id: str,
    basis: Basis,
    specs: list[HistSpec],
    params: QualityParams,
    stats_models: Collection[str],
    hist_models: Collection[str],
    on_model: Callable[[str], None] | None = None,
    model_map: ModelMap = map_models,
) -> tuple[dict[str, int], dict[str, int]]:
    """The layer_stats of `stats_models` and the histograms/extents of `hist_models` that are missing, from one
    read of each model's filters (a basis known before the statistics: `analyze --basis FILE`). Each model is
    staged by the process that computes it (`model_map` may run it in another one).

    Returns the {"computed", "reused"} counts of the statistics and of the histograms."""
    tag = params.fingerprint
    stats_for, hist_for = frozenset(stats_models), frozenset(hist_models)

    def compute(model_id: str) -> tuple[bool, bool]:
        """(statistics computed, histograms computed) of one model, its files written."""
        stats = (
            model_id in stats_for
            and stored_fingerprint(lake, stats_file(lake, model_id), "layer_stats") != tag
        )
        missing = [
            s
            for s in specs
            if model_id in hist_for and not has_rows(lake, hist_file(lake, basis_id, s.key, model_id))
        ]
        hist = model_id in hist_for and (
            bool(missing) or not has_rows(lake, extents_file(lake, basis_id, model_id))
        )
        if not (stats or hist):
            return stats, hist
        collected = LayerHistograms(basis, missing, params)
        index, rows = [], []
        for layer_idx, c_out, columns in iter_layer_columns(lake, model_id):
            if stats:
                index.append(layer_idx)
                rows.append(layer_row(columns, c_out, params))
            if hist:
                collected.add(layer_idx, c_out, columns)
        with staging(lake) as stage:
            if stats:
                table = stats_table(model_id, index, np.array(rows), params)
                write_table_atomic(table, stats_file(lake, model_id), "layer_stats", stage, {"params": tag})
            if hist:
                hists, extents = collected.tables(model_id)
                for spec, table in hists.items():
                    write_table_atomic(
                        table, hist_file(lake, basis_id, spec.key, model_id), "histograms", stage
                    )
                write_table_atomic(extents, extents_file(lake, basis_id, model_id), "extents", stage)
        return stats, hist

    done = run_models(stats_for | hist_for, compute, on_model, model_map)
    n_stats = sum(s for s, _h in done.values())
    n_hist = sum(h for _s, h in done.values())
    return (
        {"computed": n_stats, "reused": len(stats_for) - n_stats},
        {"computed": n_hist, "reused": len(hist_for) - n_hist},
    )
