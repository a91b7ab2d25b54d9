"""What the report reads from the lake: small SQL queries over the views of sql/ and the stored analysis."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from filterlake.derived.histograms import HistSpec
from filterlake.derived.shifts import group_expression
from filterlake.numeric.kde import binned_kde, histogram_quantile, silverman_bandwidth

SKIP_REASONS = {
    "skipped_1x1": "1x1 kernel (pointwise conv)",
    "skipped_other_kernel": "other square kernel (2x2, 5x5, 7x7, ...)",
    "skipped_non_square": "non-square kernel (e.g. 1x3, 3x7)",
    "skipped_1d": "1-D convolution",
    "skipped_3d": "3-D convolution",
    "skipped_transposed": "transposed convolution",
    "skipped_unresolved": "weight layout could not be resolved",
}
MEDICAL_SQL = "domain LIKE 'medical%'"


def architecture_family(architecture: str | None) -> str:
    """A coarse family from the free-text architecture: its first word, without a trailing version or size.

    "ResNet-20 for CIFAR" -> "ResNet", "UNet2d (...)" -> "UNet", "ESPNetv2 ..." -> "ESPNet", "MTCNN O-Net" ->
    "MTCNN", "VGG16" -> "VGG". An empty architecture gives "(unknown)".
    """
    if not architecture or not architecture.strip():
        return "(unknown)"
    word = re.split(r"[\s(;,:]+", architecture.strip())[0] or architecture.strip()
    word = word.rstrip("+*'\"")
    base = re.sub(r"(?i)[-_]?v?\d+(\.\d+)?(d|x|s)?$", "", word)
    return base or word


def task_kind(task: str | None) -> str:
    """A coarse task label from the free-text task (keyword rule; first match wins)."""
    text = (task or "").lower()
    for key, kind in (
        ("segment", "segmentation"),
        ("detect", "detection"),
        ("super-res", "super-resolution"),
        ("super res", "super-resolution"),
        ("recogn", "recognition"),
        ("classif", "classification"),
    ):
        if key in text:
            return kind
    return "other" if text else "(unknown)"


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


@dataclass
class ModelInfo:
    model_id: str
    name: str
    domain: str
    task: str
    architecture: str
    family: str
    format: str
    n_layers: int
    n_filters: int
    file_bytes: int

    @property
    def medical(self) -> bool:
        return (self.domain or "").startswith("medical")


def models(con: duckdb.DuckDBPyConnection) -> list[ModelInfo]:
    """Every model with its counted 3x3 layers and filters (from the layers table), sorted by domain, name."""
    out = []
    for r in rows(
        con,
        """
            SELECT m.model_id, m.name, m.domain, m.task, m.architecture, m.format,
                   count(l.layer_idx)::BIGINT, coalesce(sum(l.n_filters), 0)::BIGINT,
                   coalesce(m.file_bytes, 0)
            FROM models AS m LEFT JOIN layers AS l USING (model_id)
            GROUP BY ALL ORDER BY m.domain, m.name, m.model_id""",
    ):
        out.append(
            ModelInfo(
                r[0],
                r[1] or r[0][:12],
                r[2] or "(unknown)",
                r[3] or "(unknown)",
                r[4] or "",
                architecture_family(r[4]),
                r[5] or "(unknown)",
                int(r[6]),
                int(r[7]),
                int(r[8]),
            )
        )
    return out


def n_labels(con: duckdb.DuckDBPyConnection, group_by: str) -> int:
    """How many distinct labels a grouping has among the models with 3x3 filters (0: nothing to compare)."""
    label, _ = group_expression(group_by)
    return con.execute(f"""
        SELECT count(DISTINCT {label}) FROM models AS m JOIN layers AS l USING (model_id)
        WHERE l.n_filters > 0 AND {label} IS NOT NULL""").fetchone()[0]


def short(text: str, width: int = 34) -> str:
    """Shortened to ``width`` characters with an ellipsis in the middle, keeping the distinctive ends."""
    if len(text) <= width:
        return text
    tail = max(width // 3, 1)
    return text[: width - tail - 1].rstrip() + "…" + text[-tail:].lstrip()


# ---------------------------------------------------------------- coefficient distributions (KDE)


def kde_counts(con: duckdb.DuckDBPyConnection, basis_id: str, spec: HistSpec) -> tuple[list[str], np.ndarray]:
    """Per-model fine histogram counts (M, 9, B) summed over layers, with the model ids."""
    data = con.execute(
        """
        SELECT model_id, component, bin, sum(count)::BIGINT AS n FROM histograms
        WHERE basis = ? AND spec = ? GROUP BY ALL""",
        [basis_id, spec.key],
    ).fetchnumpy()
    ids = sorted(set(data["model_id"].tolist()))
    index = {m: i for i, m in enumerate(ids)}
    counts = np.zeros((len(ids), 9, spec.bins), np.int64)
    if ids:
        mi = np.array([index[m] for m in data["model_id"].tolist()], dtype=np.int64)
        np.add.at(counts, (mi, data["component"].astype(np.int64), data["bin"].astype(np.int64)), data["n"])
    return ids, counts


def kde_curves(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian KDE (Silverman bandwidth, at least one bin width) of each (group, component) histogram.

    counts: (G, 9, B). Returns (bin centres (B,), densities (G, 9, B), bandwidths (G, 9)); a histogram with
    fewer than 2 counts gives a NaN curve.
    """
    centres = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    dens = np.full(counts.shape, np.nan)
    bws = np.full(counts.shape[:2], np.nan)
    for g in range(counts.shape[0]):
        for k in range(counts.shape[1]):
            c = counts[g, k].astype(np.float64)
            n = c.sum()
            if n < 2:
                continue
            mean = (c * centres).sum() / n
            std = float(np.sqrt((c * (centres - mean) ** 2).sum() / (n - 1)))
            q25, q75 = histogram_quantile(c, edges, [0.25, 0.75])
            try:
                h = silverman_bandwidth(std, float(q75 - q25), int(n))
            except ValueError:
                h = width
            h = max(h, width)
            bws[g, k] = h
            dens[g, k] = binned_kde(c, edges, h)
    return centres, dens, bws


def component_std(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Standard deviation of each (group, component) histogram from its bin centres, (G, 9)."""
    centres = (edges[:-1] + edges[1:]) / 2
    n = counts.sum(axis=2).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (counts * centres).sum(axis=2) / n
        var = (counts * (centres[None, None, :] - mean[..., None]) ** 2).sum(axis=2) / (n - 1)
    return np.sqrt(var)


# ---------------------------------------------------------------- stored shifts


def stored_shift_matrix(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[list[str], np.ndarray, dict]:
    """The stored pairs of one grouping as (labels in stored order, matrix, "
    "{label: (n_models, n_filters)})."""
    data = rows(
        con, "SELECT group_a, group_b, shift, n_models_a, n_filters_a FROM read_parquet(?)", [str(path)]
    )
    labels = list(dict.fromkeys(r[0] for r in data))
    where = {g: i for i, g in enumerate(labels)}
    matrix = np.full((len(labels), len(labels)), np.nan)
    sizes = {}
    for a, b, d, n_models, n_filters in data:
        matrix[where[a], where[b]] = np.nan if d is None else d
        sizes[a] = (int(n_models), int(n_filters))
    return labels, matrix, sizes


# ---------------------------------------------------------------- layer quality

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


def layer_quality(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """One dict per layer with its quality metrics, depth and model, ordered by model name and depth."""
    result = con.execute("""
        SELECT q.model_id, q.name, q.domain, q.layer_idx, q.layer_name, q.conv_depth_norm, q.n_filters,
               q.n_sparse, q.sparsity, q.variance_entropy, q.entropy_threshold, q.variance_entropy_norm,
               q.orthogonality, q.binary_likeness, q.binary_like, q.n_levels, q.degenerated, l.out_channels
        FROM layer_quality AS q JOIN layers AS l USING (model_id, layer_idx)
        ORDER BY q.name, q.model_id, q.conv_depth_norm, q.layer_idx""")
    return [dict(zip(LAYER_COLUMNS, r)) for r in result.fetchall()]


def first_filters(con: duckdb.DuckDBPyConnection, model_id: str, layer_idx: int, n: int = 25) -> np.ndarray:
    """The first n raw filters (by filter_idx) of one layer, (k, 9) float64 with k <= n."""
    data = rows(
        con,
        "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? AND layer_idx = ? ORDER "
        "BY filter_idx LIMIT ?",
        [model_id, int(layer_idx), int(n)],
    )
    return np.asarray(data, dtype=np.float64).reshape(-1, 9)
