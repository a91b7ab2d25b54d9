"""The medical question with the confounders controlled: PERMANOVA on the model-by-model shift matrix with
permutations restricted within strata (architecture family; family and task kind), and the architecture-matched
comparison inside each family that holds both groups, Holm-corrected (docs/methods/permanova.md).

The pooled medical vs non-medical test (comparisons.py) resamples models freely, so an architecture or a task
that only one group has passes for a domain effect. Here a model is only ever exchanged with models of its own
stratum; strata with one group only cannot be compared and are counted as such. Untrained baselines take no
part (they are neither group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from filterlake.derived.groupings import UNKNOWN, architecture_family, task_kind
from filterlake.derived.shifts import model_counts
from filterlake.numeric.permanova import holm, matched_contrast, permanova
from filterlake.numeric.shift import shift_matrix
from filterlake.vocab import MEDICAL, NON_MEDICAL

if TYPE_CHECKING:
    from filterlake.derived.analyze import Analysis

CONTROLLED_TEST, FAMILY_CONTRASTS = "controlled_test", "family_contrasts"
STRATA = {"none": (), "family": ("family",), "family and task kind": ("family", "task kind")}
NO_FAMILY = "(no architecture)"  # models without an architecture each form a stratum of their own


def model_design(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> dict[str, Any] | None:
    """The medical and non-medical models with histograms: their shift matrix D, group labels, families and task
    kinds; None when either group is empty."""
    ids, labels, counts = model_counts(con, analysis.basis_id, analysis.spec, MEDICAL)
    keep = [i for i, g in enumerate(labels) if g in (MEDICAL, NON_MEDICAL)]
    groups = np.array([labels[i] for i in keep])
    if len(set(groups.tolist())) < 2:
        return None
    meta = {
        m: (architecture_family(a, f), t)
        for m, a, t, f in con.execute(
            "SELECT model_id, architecture, task, json_extract_string(extra, '$.family') FROM models"
        ).fetchall()
    }
    kept = [ids[i] for i in keep]
    families = [meta[m][0] for m in kept]
    families = [f if f != UNKNOWN else f"{NO_FAMILY} {m[:12]}" for f, m in zip(families, kept, strict=True)]
    return {
        "model_ids": kept,
        "d": shift_matrix(counts[keep], analysis.spec.edges, analysis.weights()),
        "groups": groups,
        "family": np.array(families),
        "task kind": np.array([task_kind(meta[m][1]) for m in kept]),
    }


def controlled_rows(
    design: dict[str, Any] | None, permutations: int, seed: int, shared: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of `controlled_test` (one per stratification) and `family_contrasts` (one per family)."""
    if design is None:
        return [], []
    tests = []
    for name, columns in STRATA.items():
        strata = np.column_stack([design[c] for c in columns]) if columns else None
        row: dict[str, Any] = {"strata": name, "n_permutations": permutations, "seed": seed, **shared}
        try:
            result = permanova(design["d"], design["groups"], strata, permutations, seed)
        except ValueError:  # no stratum holds both groups
            n_strata = len({tuple(r) for r in strata.tolist()}) if strata is not None else 1
            row.update(n_strata_excluded=n_strata, n_strata_informative=0, n_models=0)
            tests.append(row)
            continue
        row.update(
            pseudo_f=result.pseudo_f,
            p_value=result.p_value,
            r_squared=result.r_squared,
            n_models=result.n,
            n_medical=result.n_per_group.get(MEDICAL, 0),
            n_non_medical=result.n_per_group.get(NON_MEDICAL, 0),
            n_strata_informative=result.n_strata_informative,
            n_strata_excluded=result.n_strata_excluded,
            informative_strata="; ".join(
                " / ".join(map(str, np.atleast_1d(s))) for s in result.informative_strata
            ),
            n_arrangements=float(result.n_arrangements),
        )
        tests.append(row)
    return tests, family_rows(design, permutations, seed, shared)


def family_rows(
    design: dict[str, Any], permutations: int, seed: int, shared: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each family with models of both groups: mean D between the groups against within, an unrestricted
    PERMANOVA inside the family and Holm's correction over the families; one-group families listed as such."""
    rows = []
    for family in sorted(set(design["family"].tolist())):
        inside = design["family"] == family
        groups = design["groups"][inside]
        row: dict[str, Any] = {
            "family": family,
            "n_medical": int((groups == MEDICAL).sum()),
            "n_non_medical": int((groups == NON_MEDICAL).sum()),
            **shared,
        }
        if row["n_medical"] and row["n_non_medical"]:
            block = design["d"][np.ix_(inside, inside)]
            contrast = matched_contrast(block, groups)
            row.update(between_mean=contrast.between_mean, within_mean=contrast.within_mean)
            if len(groups) > 2:
                row["p_value"] = permanova(block, groups, None, permutations, seed).p_value
        rows.append(row)
    tested = [r for r in rows if r.get("p_value") is not None]
    for row, adjusted in zip(tested, holm(np.array([r["p_value"] for r in tested])), strict=True):
        row["p_holm"] = float(adjusted)
    return rows
