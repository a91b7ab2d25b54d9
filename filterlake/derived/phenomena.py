"""The papers' phenomena, found in any lake without a human looking at plots (docs/methods/spikiness.md, dct.md):

- spikey coefficient distributions (P3's CompNet): a model whose summed histogram of some basis component peaks
  at least `SPIKY_THRESHOLD` times a same-variance Gaussian, and within it the layers that fill the peak;
- binary-like layers (P3's Figure 2): `layer_stats.binary_like`, with their scores;
- near-total sparsity (P3's ResNet-50 keeps about 1% non-sparse filters): models where structured pruning would
  keep under `NEAR_TOTAL_KEPT` of the 3x3 filters;
- frequency content: each layer's filter energy in the orthonormal 2-D DCT-II basis, low vs high, exactly from
  the stored sufficient statistics of its scaled filters (no filter is read).

`store_phenomena` runs at the end of `analyze`; both tables are keyed like the comparisons (basis, preset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from filterlake.derived.histograms import KDE_SPEC
from filterlake.lake.files import staging, write_table_atomic
from filterlake.lake.layout import comparison_file, hist_file
from filterlake.lake.rows import rows_of
from filterlake.lake.schema import arrow_schema, moment_columns
from filterlake.numeric.dct import LOW_CUTOFF, energy_from_outer, split_energy
from filterlake.numeric.moments import Moments
from filterlake.numeric.spikiness import SPIKY_THRESHOLD, peak_contributions, spikiness

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from filterlake.derived.analyze import Analysis

PHENOMENA, LAYER_FREQUENCY = "phenomena", "layer_frequency"
TABLES = (PHENOMENA, LAYER_FREQUENCY)
SPIKEY, SPIKEY_LAYER, BINARY_LIKE, NEAR_TOTAL_SPARSITY = (
    "spikey",
    "spikey_layer",
    "binary_like",
    "near_total_sparsity",
)
NEAR_TOTAL_KEPT = 0.05  # a model whose structured pruning keeps under 5% of its 3x3 filters
RESPONSIBLE_ENRICHMENT = (
    2.0  # a layer fills a spike when its share of the peak is >= 2x its share of the mass
)
MOMENTS = "sc"  # the layer_stats moments of the max-abs scaled filters (all of them)


def spikey_rows(model_id: str, counts: np.ndarray, edges: np.ndarray) -> list[dict[str, Any]]:
    """A model's spike, if any: its most spikey component and the layers that fill that component's peak.

    ``counts`` (L, 9, B) holds the model's per-layer histograms of one spec (`KDE_SPEC`: fine bins).
    """
    total = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(total.sum(axis=1) > 0, spikiness(total, edges), np.nan)
    if np.isnan(scores).all():
        return []
    component = int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))
    score = float(scores[component])
    if not score >= SPIKY_THRESHOLD:
        return []
    rows = [
        _row(SPIKEY, model_id, None, component, score, SPIKY_THRESHOLD, f"peak {score:.3g}x a Gaussian's")
    ]
    layers = counts[:, component, :]
    shares = peak_contributions(layers, edges)
    for layer_idx in np.flatnonzero(shares.enrichment >= RESPONSIBLE_ENRICHMENT):
        rows.append(
            _row(
                SPIKEY_LAYER,
                model_id,
                int(layer_idx),
                component,
                float(shares.enrichment[layer_idx]),
                RESPONSIBLE_ENRICHMENT,
                f"{shares.peak_share[layer_idx]:.1%} of the peak from {shares.mass_share[layer_idx]:.1%} of the mass",
            )
        )
    return rows


def _row(
    kind: str,
    model_id: str,
    layer_idx: int | None,
    component: int | None,
    score: float,
    threshold: float,
    detail: str,
) -> dict[str, Any]:
    return {
        "phenomenon": kind,
        "model_id": model_id,
        "layer_idx": layer_idx,
        "component": component,
        "score": score,
        "threshold": threshold,
        "detail": detail,
    }


def model_histograms(lake: Path, analysis: Analysis, model_id: str, layers: int) -> np.ndarray | None:
    """A model's per-layer histograms (L, 9, B) of the fine spec, from its stored file; None without one."""
    path = hist_file(lake, analysis.basis_id, KDE_SPEC.key, model_id)
    rows = rows_of(lake, path, ["layer_idx", "component", "bin", "count"])
    if rows is None:
        return None
    table = rows.to_pydict()
    counts = np.zeros((layers, 9, KDE_SPEC.bins), np.int64)
    np.add.at(counts, (table["layer_idx"], table["component"], table["bin"]), table["count"])
    return counts


def stats_rows(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> list[dict[str, Any]]:
    """Binary-like layers and near-totally sparse models, from layer_stats."""
    params = [analysis.params.fingerprint]
    rows = [
        _row(
            BINARY_LIKE,
            m,
            int(i),
            None,
            float(s),
            analysis.params.binary_threshold,
            f"{int(n)} distinct levels",
        )
        for m, i, s, n in con.execute(
            "SELECT model_id, layer_idx, binary_likeness, n_levels FROM layer_stats WHERE params = ? AND binary_like "
            "ORDER BY model_id, layer_idx",
            params,
        ).fetchall()
    ]
    for m, kept, n in con.execute(
        "SELECT model_id, sum(n_filters - n_sparse) / sum(n_filters), sum(n_filters) FROM layer_stats "
        "WHERE params = ? GROUP BY model_id HAVING sum(n_filters) > 0 ORDER BY model_id",
        params,
    ).fetchall():
        if kept < NEAR_TOTAL_KEPT:
            detail = f"structured pruning keeps {round(kept * n):,} of {int(n):,} filters"
            rows.append(_row(NEAR_TOTAL_SPARSITY, m, None, None, float(kept), NEAR_TOTAL_KEPT, detail))
    return rows


def frequency_rows(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> pa.Table:
    """Each layer's DCT energy, low (u + v <= LOW_CUTOFF) and high, of its scaled filters, from its moments."""
    columns = moment_columns(MOMENTS)
    got = con.execute(
        f"SELECT model_id, layer_idx, {', '.join(columns)} FROM layer_stats WHERE params = ? "
        "ORDER BY model_id, layer_idx",
        [analysis.params.fingerprint],
    ).fetchnumpy()
    flat = np.column_stack([got[c] for c in columns]) if len(got["model_id"]) else np.zeros((0, len(columns)))
    outer = np.stack([Moments.from_flat(v).outer for v in flat]) if len(flat) else np.zeros((0, 9, 9))
    low, high = split_energy(energy_from_outer(outer), LOW_CUTOFF)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(low + high > 0, high / (low + high), np.nan)
    return pa.table(
        {
            "model_id": got["model_id"].astype(str),
            "layer_idx": got["layer_idx"].astype(np.int32),
            "n_filters": flat[:, 0].astype(np.int64),
            "low_energy": low,
            "high_energy": high,
            "high_share": share,
            "cutoff": np.full(len(flat), LOW_CUTOFF, np.int64),
        }
    )


def store_phenomena(analysis: Analysis) -> dict[str, Path]:
    """Find and store the phenomena and the layers' frequency content of the analysis's models."""
    con = analysis.connect()
    rows = stats_rows(con, analysis)
    edges = KDE_SPEC.edges
    for model_id, layers in con.execute(
        "SELECT model_id, count(*) FROM layers GROUP BY model_id ORDER BY model_id"
    ).fetchall():
        counts = model_histograms(analysis.lake, analysis, model_id, int(layers))
        if counts is not None and counts.any():
            rows += spikey_rows(model_id, counts, edges)
    context = {"basis_id": analysis.basis_id, "preset": analysis.preset.name}
    tables = {
        PHENOMENA: pa.Table.from_pylist([{**r, **context} for r in rows], schema=arrow_schema(PHENOMENA)),
        LAYER_FREQUENCY: _with_context(frequency_rows(con, analysis), context),
    }
    paths = {}
    with staging(analysis.lake) as stage:
        for name, table in tables.items():
            paths[name] = comparison_file(analysis.lake, name, analysis.basis_id, analysis.preset.name)
            write_table_atomic(table, paths[name], name, stage)
    return paths


def _with_context(table: pa.Table, context: dict[str, Any]) -> pa.Table:
    for key, value in context.items():
        table = table.append_column(key, pa.repeat(pa.scalar(value), table.num_rows))
    return table
