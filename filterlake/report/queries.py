"""The SQL the report runs: small queries over the views of sql/ and reads of the stored analysis files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from filterlake.derived.histograms import HistSpec

MODELS = """
    SELECT m.model_id, m.name, m.domain, m.task, m.architecture, m.format,
           count(l.layer_idx)::BIGINT, coalesce(sum(l.n_filters), 0)::BIGINT, coalesce(m.file_bytes, 0),
           ml.label, m.depth_source, coalesce(count_if(l.trainable = false), 0)::BIGINT,
           json_extract_string(m.extra, '$.family')
    FROM models AS m JOIN model_labels AS ml USING (model_id) LEFT JOIN layers AS l USING (model_id)
    GROUP BY ALL ORDER BY m.domain, ml.label, m.model_id"""
SKIPPED = """
    SELECT ml.label, s.model_id, s.reason, s.n FROM skipped_layers AS s JOIN model_labels AS ml USING (model_id)
    ORDER BY s.reason, ml.label, s.model_id"""
MESSAGES = """
    SELECT ml.label, m.message FROM models AS m JOIN model_labels AS ml USING (model_id)
    WHERE m.message IS NOT NULL AND m.message <> '' ORDER BY ml.label"""
BASIS = "SELECT selection, subset, n_models FROM basis WHERE basis_id = ?"
MODEL_HISTOGRAMS = """
    SELECT model_id, component, bin, sum(count)::BIGINT AS n FROM histograms
    WHERE basis = ? AND spec = ? GROUP BY ALL"""
LAYER_COLUMNS = (
    "model_id",
    "name",
    "domain",
    "layer_idx",
    "layer_name",
    "conv_depth_norm",
    "n_filters",
    "n_sparse",
    "sparsity",
    "variance_entropy",
    "entropy_threshold",
    "variance_entropy_norm",
    "orthogonality",
    "binary_likeness",
    "binary_like",
    "n_levels",
    "degenerated",
    "out_channels",
)
LAYER_QUALITY = f"""
    SELECT {", ".join(f"l.{c}" if c == "out_channels" else f"q.{c}" for c in LAYER_COLUMNS)}
    FROM layer_quality AS q JOIN layers AS l USING (model_id, layer_idx)
    ORDER BY q.name, q.model_id, q.conv_depth_norm, q.layer_idx"""
FIRST_FILTERS = """
    SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? AND layer_idx = ?
    ORDER BY filter_idx LIMIT ?"""
STORED_PAIRS = "SELECT group_a, group_b, shift, n_models_a, n_filters_a FROM read_parquet(?)"
FAMILY_PAIRS = "SELECT family, group_a, group_b, shift FROM read_parquet(?)"


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """All rows of one query."""
    return con.execute(sql, params or []).fetchall()


def records(con: duckdb.DuckDBPyConnection, path: Path) -> list[dict[str, Any]]:
    """Every row of one stored derived file as a dict, in stored order."""
    result = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
    names = [d[0] for d in result.description]
    return [dict(zip(names, r)) for r in result.fetchall()]


def model_histograms(
    con: duckdb.DuckDBPyConnection, basis_id: str, spec: HistSpec
) -> tuple[list[str], np.ndarray]:
    """Per-model histogram counts (M, 9, B) summed over layers, with the model ids (sorted)."""
    data = con.execute(MODEL_HISTOGRAMS, [basis_id, spec.key]).fetchnumpy()
    ids = sorted(set(data["model_id"].tolist()))
    index = {m: i for i, m in enumerate(ids)}
    counts = np.zeros((len(ids), 9, spec.bins), np.int64)
    if ids:
        mi = np.array([index[m] for m in data["model_id"].tolist()], dtype=np.int64)
        np.add.at(counts, (mi, data["component"].astype(np.int64), data["bin"].astype(np.int64)), data["n"])
    return ids, counts


def pair_matrix(pairs: list[tuple]) -> tuple[list[str], np.ndarray]:
    """(labels in stored order, matrix) of stored ordered pairs (group_a, group_b, shift, ...)."""
    labels = list(dict.fromkeys(r[0] for r in pairs))
    where = {g: i for i, g in enumerate(labels)}
    matrix = np.full((len(labels), len(labels)), np.nan)
    for a, b, d, *_ in pairs:
        matrix[where[a], where[b]] = np.nan if d is None else d
    return labels, matrix


def stored_shifts(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[list[str], np.ndarray, dict]:
    """One grouping's stored pairs: (labels, matrix, {label: (n_models, n_filters)})."""
    pairs = rows(con, STORED_PAIRS, [str(path)])
    labels, matrix = pair_matrix(pairs)
    return labels, matrix, {a: (int(n_models), int(n_filters)) for a, _b, _d, n_models, n_filters in pairs}


def family_shifts(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """The stored family matrices: family -> (model names in heatmap order, matrix)."""
    by_family: dict[str, list[tuple]] = {}
    for family, *pair in rows(con, FAMILY_PAIRS, [str(path)]):
        by_family.setdefault(family, []).append(tuple(pair))
    return {family: pair_matrix(pairs) for family, pairs in by_family.items()}


def layer_quality(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One dict per layer with its quality metrics, depth and model, ordered by model name and depth."""
    return [dict(zip(LAYER_COLUMNS, r)) for r in rows(con, LAYER_QUALITY)]


def first_filters(con: duckdb.DuckDBPyConnection, model_id: str, layer_idx: int, n: int) -> np.ndarray:
    """The first n raw filters (by filter_idx) of one layer, (k, 9) float64 with k <= n."""
    data = rows(con, FIRST_FILTERS, [model_id, int(layer_idx), int(n)])
    return np.asarray(data, dtype=np.float64).reshape(-1, 9)
