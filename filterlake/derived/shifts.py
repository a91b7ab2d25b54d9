"""Pairwise distribution shifts D between groups of models or layers, from stored histograms (no filter reads).

The groupings themselves (a `models` column, `medical`, `depth_decile`, a metadata key) are defined in
`filterlake.derived.groupings`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from filterlake.derived.groupings import group_expression
from filterlake.derived.histograms import HistSpec
from filterlake.errors import FilterlakeError
from filterlake.lake.files import staging, write_table_atomic
from filterlake.lake.layout import hist_dir, shifts_file
from filterlake.lake.rows import folder_select
from filterlake.numeric.shift import shift_matrix, sort_by_column_mean
from filterlake.numeric.significance import PermutationResult, permutation_test


@dataclass
class GroupedCounts:
    """Summed histogram counts per group: labels (G,), counts (G, 9, B), filters and models per group."""

    labels: list[str]
    counts: np.ndarray
    n_filters: np.ndarray
    n_models: np.ndarray


def grouped_counts(
    con: duckdb.DuckDBPyConnection, basis_id: str, spec: HistSpec, group_by: str
) -> GroupedCounts:
    """Sum the stored per-layer histograms over each group (groups with a missing label are left out).

    The group of every model (or layer) is resolved once into a temporary table, and only the histogram files
    of this basis and spec are read (`LAKE/histograms/basis=<id>/spec=<key>/`), so the cost depends on the
    number of models and layers, never on the number of filters.
    """
    label, per_layer = group_expression(group_by)
    keys = (
        f"SELECT m.model_id, l.layer_idx, {label} AS g FROM models AS m JOIN layers AS l USING (model_id)"
        if per_layer
        else f"SELECT m.model_id, {label} AS g FROM models AS m"
    )
    table = f"_filterlake_groups_{uuid.uuid4().hex[:8]}"
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT *, dense_rank() OVER (ORDER BY g) - 1 AS gid "
        f"FROM ({keys}) WHERE g IS NOT NULL"
    )
    try:
        names = [g for g, _gid in con.execute(f"SELECT DISTINCT g, gid FROM {table} ORDER BY gid").fetchall()]
        lake = Path(con.execute("SELECT getvariable('lake')").fetchone()[0])
        source, params = folder_select(lake, hist_dir(lake, basis_id, spec.key))
        if source is not None:
            rows = con.execute(
                f"""
                SELECT k.gid, h.component, h.bin, sum(h.count)::BIGINT AS n
                FROM ({source}) AS h JOIN {table} AS k USING (model_id{", layer_idx" if per_layer else ""})
                GROUP BY ALL""",
                params,
            ).fetchnumpy()
        else:
            rows = {
                "gid": np.zeros(0, np.int64),
                "component": np.zeros(0, np.int64),
                "bin": np.zeros(0, np.int64),
                "n": np.zeros(0, np.int64),
            }
        models_rows = con.execute(
            f"SELECT gid, count(DISTINCT model_id) FROM {table} GROUP BY gid"
        ).fetchall()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    label_of = {int(i): names[i] for i in np.unique(np.asarray(rows["gid"], np.int64))}
    labels = sorted(label_of.values())
    where = {g: j for j, g in enumerate(labels)}
    position = np.zeros(len(names), np.int64)
    for gid, g in label_of.items():
        position[gid] = where[g]
    counts = np.zeros((len(labels), 9, spec.bins), np.int64)
    gi = position[np.asarray(rows["gid"], np.int64)]
    np.add.at(
        counts,
        (gi, np.asarray(rows["component"], np.int64), np.asarray(rows["bin"], np.int64)),
        np.asarray(rows["n"], np.int64),
    )
    models = np.zeros(len(labels), np.int64)
    for gid, n in models_rows:
        if gid in label_of:
            models[where[label_of[gid]]] = n
    # every filter lands in exactly one bin per component unless it falls outside the range: use the max
    return GroupedCounts(labels, counts, counts.sum(axis=2).max(axis=1), models)


def shift_table(
    grouped: GroupedCounts, spec: HistSpec, weights: np.ndarray, sort: bool = True
) -> tuple[list[str], np.ndarray]:
    """The full pairwise shift matrix of a grouping (rows sorted by ascending column mean, as in the papers)."""
    edges = spec.edges
    matrix = shift_matrix(grouped.counts, edges, weights)
    if sort and len(grouped.labels) > 1:
        matrix, labels = sort_by_column_mean(matrix, grouped.labels)
        return list(labels), matrix
    return list(grouped.labels), matrix


def pair_table(labels: list[str], matrix: np.ndarray, grouped: GroupedCounts, **context: Any) -> pa.Table:
    """One row per ordered pair of groups (the `shifts` table and `--format csv` layout), built column-wise:
    `context` values are repeated on every row (a 1,000 x 1,000 matrix is a million rows)."""
    where = np.array([grouped.labels.index(g) for g in labels], dtype=np.int64)
    n = len(labels)
    a, b = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    columns: dict[str, Any] = {
        "group_a": pa.array(labels, pa.string()).take(pa.array(a)),
        "group_b": pa.array(labels, pa.string()).take(pa.array(b)),
        "shift": np.asarray(matrix, np.float64).reshape(-1),
        "n_filters_a": grouped.n_filters[where][a],
        "n_filters_b": grouped.n_filters[where][b],
        "n_models_a": grouped.n_models[where][a],
        "n_models_b": grouped.n_models[where][b],
    }
    columns.update({key: pa.repeat(pa.scalar(value), n * n) for key, value in context.items()})
    return pa.table(columns)


def store_shifts(lake: Path, pairs: pa.Table, group_by: str, preset: str, basis_id: str) -> Path:
    """Write one grouping's pairs to its `shifts` file (replacing an older one)."""
    target = shifts_file(lake, basis_id, preset, group_by)
    with staging(lake) as stage:
        write_table_atomic(pairs, target, "shifts", stage)
    return target


def model_counts(
    con: duckdb.DuckDBPyConnection, basis_id: str, spec: HistSpec, group_by: str
) -> tuple[list[str], list[str], np.ndarray]:
    """Per-model summed counts (M, 9, B) with each model's group label, for tests that resample models."""
    label, per_layer = group_expression(group_by)
    if per_layer:
        raise FilterlakeError("the permutation test resamples models: use a per-model grouping, not depth")
    rows = con.execute(
        f"""
        SELECT h.model_id, {label} AS g, h.component, h.bin, sum(h.count)::BIGINT AS n
        FROM histograms AS h JOIN models AS m USING (model_id)
        WHERE h.basis = ? AND h.spec = ? AND {label} IS NOT NULL GROUP BY ALL""",
        [basis_id, spec.key],
    ).fetchnumpy()
    ids = sorted(set(rows["model_id"].tolist()))
    index = {m: i for i, m in enumerate(ids)}
    labels = [""] * len(ids)
    for m, g in zip(rows["model_id"].tolist(), rows["g"].tolist()):
        labels[index[m]] = g
    counts = np.zeros((len(ids), 9, spec.bins), np.int64)
    mi = np.array([index[m] for m in rows["model_id"].tolist()], dtype=np.int64)
    np.add.at(counts, (mi, rows["component"].astype(np.int64), rows["bin"].astype(np.int64)), rows["n"])
    return ids, labels, counts


def permutation(
    con: duckdb.DuckDBPyConnection,
    basis_id: str,
    spec: HistSpec,
    group_by: str,
    group_a: str,
    group_b: str | None,
    weights: np.ndarray,
    n_permutations: int = 2000,
    seed: int = 0,
) -> PermutationResult:
    """Permutation test (models resampled) of D between `group_a` and `group_b` (None: all other models)."""
    _, labels, counts = model_counts(con, basis_id, spec, group_by)
    keep = [i for i, g in enumerate(labels) if g == group_a or group_b is None or g == group_b]
    is_a = np.array([labels[i] == group_a for i in keep])
    if is_a.all() or not is_a.any():
        raise FilterlakeError(
            f"--group-by {group_by}: need models in both {group_a!r} and "
            f"{group_b or 'the rest'} for a permutation test"
        )
    edges = spec.edges
    return permutation_test(counts[keep], is_a, edges, weights, n_permutations=n_permutations, seed=seed)
