"""Analysis -> ReportData: every fact the report states, read from the analysis's snapshot and its stored
tables (queries and statistics only: no prose, no plotting)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import duckdb
import numpy as np

from filterlake.derived.analyze import Analysis
from filterlake.derived.basis import DEFAULT_SELECTION
from filterlake.derived.comparisons import FAMILY_SHIFTS, MEDICAL_COMPONENTS, MEDICAL_TEST, snapshot_id
from filterlake.derived.controlled import CONTROLLED_TEST, DOMAIN_PAIRS, FAMILY_CONTRASTS
from filterlake.derived.groupings import MODEL, architecture_family, depth_decile_key, model_name, task_kind
from filterlake.derived.phenomena import LAYER_FREQUENCY, PHENOMENA
from filterlake.errors import FilterlakeError
from filterlake.numeric.params import QualityParams
from filterlake.numeric.significance import PermutationResult
from filterlake.report import queries
from filterlake.report.curves import component_std, kde_curves
from filterlake.report.facts import (
    BasisFacts,
    Distributions,
    GroupFacts,
    Layer,
    Medical,
    ModelInfo,
    ModelQuality,
    Quality,
    ReportData,
    ShiftMatrix,
    nan,
)
from filterlake.vocab import MEDICAL, NON_MEDICAL, is_untrained

REQUIRED_GROUPINGS = (MEDICAL, MODEL)  # the shifts the report reads besides its heatmaps' groupings
KDE_VIEW = (-3.0, 3.0)  # the coefficient range the density plots show, as in the medical paper
FIRST_FILTERS = 25  # filters drawn per binary-like layer (a 5x5 grid)
BINARY_DRAWN, BINARY_FALLBACK, BINARY_TABLE = 6, 3, 10  # layers drawn when some pass / none pass; table rows
SAME_DISTRIBUTION = 1e-12  # D at or below which two models count as identically distributed


def collect(analysis: Analysis, con: duckdb.DuckDBPyConnection, group_by: Sequence[str]) -> ReportData:
    """Read and compute everything the report shows from the analysis's connection (its snapshot)."""
    missing = [g for g in REQUIRED_GROUPINGS if g not in analysis.shifts and g not in analysis.unlabelled]
    if missing:
        raise FilterlakeError(
            f"the analysis has no shifts by {', '.join(missing)}: analyse with these groupings"
        )
    models = [_model(r) for r in queries.rows(con, queries.MODELS)]
    info = queries.rows(con, queries.BASIS, [analysis.basis_id])
    with_filters = [m for m in models if m.n_filters > 0]
    basis = BasisFacts(
        analysis.basis_id, *(info[0] if info else (DEFAULT_SELECTION, "all", len(with_filters)))
    )
    families = {
        f: ShiftMatrix(*m)
        for f, m in queries.family_shifts(con, _stored(con, analysis, FAMILY_SHIFTS)).items()
    }
    return ReportData(
        analysis,
        tuple(group_by),
        models,
        [tuple(r) for r in queries.rows(con, queries.SKIPPED)],
        [tuple(r) for r in queries.rows(con, queries.MESSAGES)],
        basis,
        _distributions(con, analysis, models),
        {c: _shift_matrix(con, analysis, c) for c in group_by},
        families,
        _medical(con, analysis, with_filters),
        _quality(con, analysis.params, models),
        _models_matrix(con, analysis),
        *_phenomena(con, analysis),
        _baselines(con, analysis),
    )


def _baselines(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> list[dict]:
    """Per trained model read against an untrained baseline: matched layers, median and largest D."""
    if analysis.baseline_shifts is None:
        return []
    found = con.execute(
        """SELECT ml.label AS model, m.domain, b.baseline_architecture, count(*) AS layers,
                  any_value(m.n_layers_3x3) AS of_layers, median(b.shift) AS median_shift, max(b.shift) AS max_shift,
                  arg_max(l.layer_name, b.shift) AS most_changed
           FROM read_parquet(?) AS b JOIN models AS m USING (model_id) JOIN model_labels AS ml USING (model_id)
           JOIN layers AS l USING (model_id, layer_idx)
           GROUP BY ALL ORDER BY median_shift DESC, model""",
        [str(analysis.baseline_shifts)],
    )
    names = [d[0] for d in found.description]
    return [dict(zip(names, r)) for r in found.fetchall()]


def _phenomena(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> tuple[list[dict], list[dict]]:
    """The stored phenomena with each model's label, domain and layer name; the frequency content per domain."""
    if not analysis.phenomena:
        return [], []
    found = con.execute(
        """SELECT p.phenomenon, ml.label AS model, m.domain, p.layer_idx, l.layer_name, p.component, p.score,
                  p.threshold, p.detail
           FROM read_parquet(?) AS p JOIN models AS m USING (model_id) JOIN model_labels AS ml USING (model_id)
           LEFT JOIN layers AS l ON l.model_id = p.model_id AND l.layer_idx = p.layer_idx
           ORDER BY p.phenomenon, p.score DESC, ml.label, p.layer_idx""",
        [str(analysis.phenomena[PHENOMENA])],
    )
    names = [d[0] for d in found.description]
    rows = [dict(zip(names, r)) for r in found.fetchall()]
    by_domain = con.execute(
        """SELECT coalesce(m.domain, '(unknown)') AS domain, count(DISTINCT f.model_id) AS models,
                  count(*) AS layers, sum(f.high_energy) / nullif(sum(f.low_energy + f.high_energy), 0) AS high_share
           FROM read_parquet(?) AS f JOIN models AS m USING (model_id) GROUP BY 1 ORDER BY high_share""",
        [str(analysis.phenomena[LAYER_FREQUENCY])],
    )
    names = [d[0] for d in by_domain.description]
    return rows, [dict(zip(names, r)) for r in by_domain.fetchall()]


def _models_matrix(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> ShiftMatrix | None:
    """The stored model-by-model shift matrix, when the analysis has the `model` grouping."""
    if MODEL not in analysis.shifts:
        return None
    labels, matrix, sizes = queries.stored_shifts(con, analysis.shifts[MODEL])
    return ShiftMatrix(labels, matrix, sizes)


def _model(r: tuple) -> ModelInfo:
    unknown = "(unknown)"
    return ModelInfo(
        r[0],
        model_name(r[1], r[0]),
        r[2] or unknown,
        r[3] or unknown,
        r[4] or "",
        architecture_family(r[4], r[12]),
        r[5] or unknown,
        int(r[6]),
        int(r[7]),
        int(r[8]),
        r[9] or model_name(r[1], r[0]),
        r[10],
        int(r[11]),
    )


def _stored(con: duckdb.DuckDBPyConnection, analysis: Analysis, table: str) -> Path:
    """The path of one stored comparison, after checking that it belongs to this analysis."""
    path = analysis.comparisons.get(table)
    if path is None or not path.is_file():
        raise FilterlakeError(f"the analysis stored no {table}; run `filterlake analyze` again")
    snapshot = snapshot_id(analysis.model_ids)
    for row in queries.rows(con, "SELECT DISTINCT basis_id, snapshot FROM read_parquet(?)", [str(path)]):
        if row != (analysis.basis_id, snapshot):
            raise FilterlakeError(f"{path} belongs to another analysis; run `filterlake analyze` again")
    return path


def _distributions(
    con: duckdb.DuckDBPyConnection, analysis: Analysis, models: list[ModelInfo]
) -> Distributions | None:
    spec = analysis.kde_spec
    ids, counts = queries.model_histograms(con, analysis.basis_id, spec)
    if not ids:
        return None
    by_id = {m.model_id: m for m in models}
    order = sorted(range(len(ids)), key=lambda i: (by_id[ids[i]].domain, by_id[ids[i]].label, ids[i]))
    counts = counts[order]
    chosen = [by_id[ids[i]] for i in order]
    centres, density, _ = kde_curves(counts, spec.edges)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(chosen):
        groups[m.domain].append(i)
    domains = sorted(groups)
    domain_counts = np.stack([counts[groups[d]].sum(axis=0) for d in domains])
    outside = counts[:, :, (centres < KDE_VIEW[0]) | (centres > KDE_VIEW[1])].sum() / max(counts.sum(), 1)
    return Distributions(
        chosen,
        counts,
        centres,
        density,
        domains,
        [len(groups[d]) for d in domains],
        domain_counts,
        kde_curves(domain_counts, spec.edges)[1],
        component_std(counts, spec.edges),
        component_std(domain_counts, spec.edges),
        float(outside),
    )


def _shift_matrix(con: duckdb.DuckDBPyConnection, analysis: Analysis, column: str) -> ShiftMatrix | None:
    """A grouping's stored matrix as shown: depth deciles in depth order, other groupings as stored."""
    if column not in analysis.shifts:
        return None
    stored = ShiftMatrix(*queries.stored_shifts(con, analysis.shifts[column]))
    if column != "depth_decile":
        return stored
    order = sorted(range(len(stored.labels)), key=lambda i: depth_decile_key(stored.labels[i]))
    return ShiftMatrix([stored.labels[i] for i in order], stored.matrix[np.ix_(order, order)], stored.sizes)


def _facts(models: list[ModelInfo]) -> GroupFacts:
    largest = max(models, key=lambda m: m.n_filters)
    total = sum(m.n_filters for m in models) or 1
    return GroupFacts(
        len(models),
        total,
        largest.label,
        largest.n_filters / total,
        dict(Counter(task_kind(m.task) for m in models)),
        dict(Counter(m.family for m in models)),
    )


def _medical(con: duckdb.DuckDBPyConnection, analysis: Analysis, with_filters: list[ModelInfo]) -> Medical:
    trained = [m for m in with_filters if not is_untrained(m.domain)]  # baselines are neither group
    medical = Medical([m for m in trained if m.medical], [m for m in trained if not m.medical])
    if not medical.medical or not medical.other:
        return medical
    medical.facts = (_facts(medical.medical), _facts(medical.other))
    labels, matrix, _ = queries.stored_shifts(con, analysis.shifts[MEDICAL])
    medical.stored = float(matrix[labels.index(MEDICAL), labels.index(NON_MEDICAL)])
    tests = queries.records(con, _stored(con, analysis, MEDICAL_TEST))
    if not tests:  # both groups have models, but one has no coefficient in the histogram range
        return medical
    names = {f.name for f in fields(PermutationResult)} - {"null"}
    medical.test = PermutationResult(
        null=np.asarray(tests[0]["null_distribution"], np.float64),
        **{k: v for k, v in tests[0].items() if k in names},
    )
    parts = sorted(
        queries.records(con, _stored(con, analysis, MEDICAL_COMPONENTS)), key=lambda r: r["component"]
    )
    medical.controlled = queries.records(con, _stored(con, analysis, CONTROLLED_TEST))
    medical.contrasts = queries.records(con, _stored(con, analysis, FAMILY_CONTRASTS))
    medical.domain_pairs = queries.records(con, _stored(con, analysis, DOMAIN_PAIRS))
    medical.per_component = np.array([r["kl_sym"] for r in parts], np.float64)
    medical.weights = np.array([r["weight"] for r in parts], np.float64)
    if MODEL in analysis.shifts:
        _, models_matrix, _ = queries.stored_shifts(con, analysis.shifts[MODEL])
        same = np.triu(models_matrix <= SAME_DISTRIBUTION, 1) & np.isfinite(models_matrix)
        medical.duplicates = int(np.count_nonzero(same))
    return medical


def _quality(
    con: duckdb.DuckDBPyConnection, params: QualityParams, models: list[ModelInfo]
) -> Quality | None:
    names = {m.model_id: m.label for m in models}
    every = [Layer(**r, model=names.get(r["model_id"], r["model_id"])) for r in queries.layer_quality(con)]
    baselines = [
        r for r in every if is_untrained(r.domain)
    ]  # random by construction: a reference, not a finding
    layers = [r for r in every if not is_untrained(r.domain)]
    if not layers:
        return None
    by_model: dict[str, list[Layer]] = defaultdict(list)
    for layer in layers:
        by_model[layer.model_id].append(layer)
    order = sorted(by_model, key=lambda mid: (names.get(mid, mid), mid))
    flagged = [r for r in layers if r.degenerated]
    sparse_low = sorted(
        (r for r in flagged if r.degeneration(params)[1]),
        key=lambda r: (-nan(r.sparsity), nan(r.variance_entropy)),
    )
    random_like = sorted(
        (r for r in flagged if not r.degeneration(params)[1]), key=lambda r: -nan(r.variance_entropy_norm)
    )
    scored = sorted(
        (r for r in layers if r.binary_likeness is not None and np.isfinite(r.binary_likeness)),
        key=lambda r: -r.binary_likeness,
    )
    passing = [r for r in scored if r.binary_like]
    shown = passing[:BINARY_DRAWN] if passing else scored[:BINARY_FALLBACK]
    return Quality(
        layers,
        [ModelQuality(mid, names.get(mid, mid), by_model[mid]) for mid in order],
        baselines,
        sparse_low,
        random_like,
        scored,
        passing,
        [(r, queries.first_filters(con, r.model_id, r.layer_idx, FIRST_FILTERS)) for r in shown],
    )
