"""The stored comparisons the report shows: shifts between the models of each architecture family, the medical vs
non-medical permutation test, and the per-component divergence of medical vs non-medical.

`store_comparisons` runs at the end of `analyze` and writes one file per table, basis and preset
(`LAKE/<table>/basis=<id>/<preset>.parquet`); each row carries the basis, histogram spec, weights and a
fingerprint of the analysis's models, so a reader can tell which analysis it belongs to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from filterlake.derived.controlled import TABLES as CONTROLLED_TABLES
from filterlake.derived.controlled import controlled_rows, model_design
from filterlake.derived.groupings import MODEL, UNKNOWN, architecture_family
from filterlake.derived.shifts import GroupedCounts, grouped_counts, model_counts, pair_table, shift_table
from filterlake.errors import FilterlakeError
from filterlake.lake.files import conform, staging, write_table_atomic
from filterlake.lake.layout import comparison_file
from filterlake.lake.schema import arrow_schema
from filterlake.numeric.params import PERMUTATIONS, SEED, fingerprint
from filterlake.numeric.shift import shift
from filterlake.numeric.significance import PermutationResult, permutation_test
from filterlake.vocab import MEDICAL, NON_MEDICAL

if TYPE_CHECKING:
    from filterlake.derived.analyze import Analysis

FAMILY_SHIFTS, MEDICAL_TEST, MEDICAL_COMPONENTS = "family_shifts", "medical_test", "medical_components"
TABLES = (FAMILY_SHIFTS, MEDICAL_TEST, MEDICAL_COMPONENTS, *CONTROLLED_TABLES)
FAMILY_GROUPING = MODEL  # a family's matrix compares its models, one row per model (its unique label)
MIN_FAMILY_MODELS = 2

# Every model with 3x3 filters, with its unique label and architecture (its family comes from these).
MODELS_WITH_FILTERS = """
    SELECT ml.label, m.architecture, json_extract_string(m.extra, '$.family') FROM models AS m
    JOIN layers AS l USING (model_id)
    JOIN model_labels AS ml USING (model_id) GROUP BY ALL HAVING sum(l.n_filters) > 0"""


def snapshot_id(model_ids: Collection[str]) -> str:
    """A short fingerprint of a set of models (stored with every comparison row)."""
    return fingerprint({"models": sorted(model_ids)})


def context(analysis: Analysis, group_by: str) -> dict[str, Any]:
    """The columns that say which analysis a stored comparison belongs to."""
    spec = analysis.spec
    return {
        "group_by": group_by,
        "preset": analysis.preset.name,
        "basis_id": analysis.basis_id,
        "range_lo": spec.lo,
        "range_hi": spec.hi,
        "bins": spec.bins,
        "weights": analysis.preset.weights,
        "subset": spec.subset,
        "snapshot": snapshot_id(analysis.model_ids),
    }


def family_members(con: duckdb.DuckDBPyConnection, labels: list[str]) -> dict[str, list[str]]:
    """The model labels (among ``labels``) of each architecture family that has at least two of them (models
    without an architecture form no family)."""
    family_of = {
        label: architecture_family(architecture, family)
        for label, architecture, family in con.execute(MODELS_WITH_FILTERS).fetchall()
    }
    members: dict[str, list[str]] = defaultdict(list)
    for label in labels:
        if label in family_of and family_of[label] != UNKNOWN:
            members[family_of[label]].append(label)
    return {f: members[f] for f in sorted(members) if len(members[f]) >= MIN_FAMILY_MODELS}


def family_shift_rows(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> pa.Table:
    """The rows of `family_shifts`: each family's full pairwise shift matrix of its models, in heatmap order."""
    grouped = grouped_counts(con, analysis.basis_id, analysis.spec, FAMILY_GROUPING)
    index = {g: i for i, g in enumerate(grouped.labels)}
    shared = context(analysis, FAMILY_GROUPING)
    parts = []
    for family, names in family_members(con, grouped.labels).items():
        idx = [index[n] for n in names]
        sub = GroupedCounts(names, grouped.counts[idx], grouped.n_filters[idx], grouped.n_models[idx])
        labels, matrix = shift_table(sub, analysis.spec, analysis.weights())
        pairs = pair_table(labels, matrix, sub, **shared)
        parts.append(pairs.add_column(0, "family", pa.repeat(pa.scalar(family), pairs.num_rows)))
    schema = arrow_schema(FAMILY_SHIFTS)
    return pa.concat_tables([conform(p, FAMILY_SHIFTS) for p in parts]) if parts else schema.empty_table()


def medical_rows(
    con: duckdb.DuckDBPyConnection, analysis: Analysis, permutations: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of `medical_test` (one) and `medical_components` (nine); none without models in both groups.

    The test resamples models: it permutes the medical/non-medical labels of the trained models with
    histograms (untrained baselines, the grouping's third label, are left out).
    """
    _ids, labels, counts = model_counts(con, analysis.basis_id, analysis.spec, MEDICAL)
    trained = [i for i, g in enumerate(labels) if g in (MEDICAL, NON_MEDICAL)]
    labels, counts = [labels[i] for i in trained], counts[trained]
    is_medical = np.array([g == MEDICAL for g in labels], dtype=bool)
    if not is_medical.any() or is_medical.all():
        return [], []
    edges, weights = analysis.spec.edges, analysis.weights()
    result = permutation_test(counts, is_medical, edges, weights, n_permutations=permutations, seed=seed)
    pooled = [counts[is_medical].sum(axis=0), counts[~is_medical].sum(axis=0)]
    _total, per_component = shift(pooled[0], pooled[1], edges, weights)
    shared = {"group_a": MEDICAL, "group_b": NON_MEDICAL, **context(analysis, MEDICAL)}
    test = {f.name: getattr(result, f.name) for f in fields(PermutationResult) if f.name != "null"}
    test.update(
        shared,
        null_distribution=result.null.tolist(),
        n_models_a=int(is_medical.sum()),
        n_models_b=int((~is_medical).sum()),
        n_filters_a=int(pooled[0].sum(axis=1).max()),
        n_filters_b=int(pooled[1].sum(axis=1).max()),
    )
    components = [
        {
            "component": k,
            "kl_sym": float(per_component[k]),
            "weight": float(weights[k]),
            "contribution": float(per_component[k] * weights[k]),
            **shared,
        }
        for k in range(len(weights))
    ]
    return [test], components


def store_comparisons(
    analysis: Analysis, permutations: int = PERMUTATIONS, seed: int = SEED
) -> dict[str, Path]:
    """Compute and store every comparison of the analysis (replacing older files); returns table -> file.

    Reads the stored histograms through the analysis's snapshot of models. A table without rows (no family
    with two models, or no models in one of the medical groups) is stored empty, so that a reader never finds
    an older analysis's rows.
    """
    if permutations < 1:
        raise FilterlakeError("--permutations must be at least 1")
    con = analysis.connect()
    test, components = medical_rows(con, analysis, permutations, seed)
    tables = {
        FAMILY_SHIFTS: family_shift_rows(con, analysis),
        MEDICAL_TEST: test,
        MEDICAL_COMPONENTS: components,
        **controlled_rows(model_design(con, analysis), permutations, seed, context(analysis, MEDICAL)),
    }
    paths = {}
    with staging(analysis.lake) as stage:
        for name, rows in tables.items():
            paths[name] = comparison_file(analysis.lake, name, analysis.basis_id, analysis.preset.name)
            table = (
                rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=arrow_schema(name))
            )
            write_table_atomic(table, paths[name], name, stage)
    return paths
