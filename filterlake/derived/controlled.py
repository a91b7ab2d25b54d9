"""The domain question with the confounders controlled: PERMANOVA on the model-by-model shift matrix with
permutations restricted within strata (architecture family; family and task kind), for the medical split and for
the domains themselves; every pair of domains tested, Holm-corrected; and the architecture-matched comparison
inside each family that holds medical and non-medical models (docs/methods/permanova.md).

The pooled medical vs non-medical test (comparisons.py) resamples models freely, so an architecture or a task
that only one group has passes for a domain effect. Here a model is only ever exchanged with models of its own
stratum; strata with one group only cannot be compared and are counted as such. Untrained baselines take no
part (their domain is not a training domain).
"""

from __future__ import annotations

import itertools
import math
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

CONTROLLED_TEST, FAMILY_CONTRASTS, DOMAIN_PAIRS = "controlled_test", "family_contrasts", "domain_pairs"
TABLES = (CONTROLLED_TEST, FAMILY_CONTRASTS, DOMAIN_PAIRS)
FACTORS = (MEDICAL, "domain")  # the group labels tested: the medical split, and the domains themselves
STRATA = {"none": (), "family": ("family",), "family and task kind": ("family", "task kind")}
NO_FAMILY = "(no architecture)"  # models without an architecture each form a stratum of their own


def model_design(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> dict[str, Any] | None:
    """The trained models with histograms: their shift matrix D, medical and domain labels, families and task
    kinds; None with fewer than two such models."""
    ids, labels, counts = model_counts(con, analysis.basis_id, analysis.spec, MEDICAL)
    keep = [i for i, g in enumerate(labels) if g in (MEDICAL, NON_MEDICAL)]
    if len(keep) < 2:
        return None
    meta = {
        m: (architecture_family(a, f), task_kind(t), d)
        for m, a, t, d, f in con.execute(
            "SELECT model_id, architecture, task, domain, json_extract_string(extra, '$.family') FROM models"
        ).fetchall()
    }
    kept = [ids[i] for i in keep]
    families = [meta[m][0] if meta[m][0] != UNKNOWN else f"{NO_FAMILY} {m[:12]}" for m in kept]
    return {
        "model_ids": kept,
        "d": shift_matrix(counts[keep], analysis.spec.edges, analysis.weights()),
        MEDICAL: np.array([labels[i] for i in keep]),
        "domain": np.array([meta[m][2] or UNKNOWN for m in kept]),
        "family": np.array(families),
        "task kind": np.array([meta[m][1] for m in kept]),
    }


def _as_float(count: int) -> float:
    """A count of labellings as float64: beyond its range (hundreds of models) it is infinite for our purpose."""
    return float(count) if count.bit_length() < 1024 else math.inf


def _test_row(design: dict[str, Any], factor: str, strata_name: str, permutations: int, seed: int) -> dict:
    """One PERMANOVA of ``factor`` with one stratification; null statistics when no stratum holds two groups."""
    columns = STRATA[strata_name]
    strata = np.column_stack([design[c] for c in columns]) if columns else None
    groups = design[factor]
    row: dict[str, Any] = {"factor": factor, "strata": strata_name, "n_groups": len(set(groups.tolist()))}
    try:
        result = permanova(design["d"], groups, strata, permutations, seed)
    except ValueError:  # no stratum holds two groups, or too few models in those that do
        keys = [tuple(r) for r in strata.tolist()] if strata is not None else [()] * len(groups)
        held: dict[tuple, set] = {}
        for key, group in zip(keys, groups.tolist(), strict=True):
            held.setdefault(key, set()).add(group)
        informative = sum(len(g) >= 2 for g in held.values())
        return {
            **row,
            "n_strata_excluded": len(held) - informative,
            "n_strata_informative": informative,
            "n_models": 0,
        }
    return {
        **row,
        "pseudo_f": result.pseudo_f,
        "p_value": result.p_value,
        "r_squared": result.r_squared,
        "n_models": result.n,
        "n_medical": result.n_per_group.get(MEDICAL) if factor == MEDICAL else None,
        "n_non_medical": result.n_per_group.get(NON_MEDICAL) if factor == MEDICAL else None,
        "n_strata_informative": result.n_strata_informative,
        "n_strata_excluded": result.n_strata_excluded,
        "informative_strata": "; ".join(
            " / ".join(map(str, np.atleast_1d(s))) for s in result.informative_strata
        ),
        "n_arrangements": _as_float(result.n_arrangements),
    }


def controlled_rows(
    design: dict[str, Any] | None, permutations: int, seed: int, shared: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The rows of `controlled_test` (per factor and stratification), `family_contrasts` (per family) and
    `domain_pairs` (per pair of domains); none without two trained models."""
    if design is None:
        return {table: [] for table in TABLES}
    tests = [
        {**_test_row(design, factor, name, permutations, seed), "n_permutations": permutations, "seed": seed}
        for factor in FACTORS
        if len(set(design[factor].tolist())) >= 2
        for name in STRATA
    ]
    return {
        CONTROLLED_TEST: [{**r, **shared} for r in tests],
        FAMILY_CONTRASTS: [{**r, **shared} for r in family_rows(design, permutations, seed)],
        DOMAIN_PAIRS: [{**r, **shared} for r in domain_pair_rows(design, permutations, seed)],
    }


def domain_pair_rows(design: dict[str, Any], permutations: int, seed: int) -> list[dict[str, Any]]:
    """Every pair of domains: PERMANOVA on their models, freely and within families, Holm-corrected over the
    pairs tested (each stratification separately)."""
    domains = sorted(set(design["domain"].tolist()))
    rows = []
    for a, b in itertools.combinations(domains, 2):
        inside = np.isin(design["domain"], [a, b])
        sub = {k: v[inside] if isinstance(v, np.ndarray) and v.ndim == 1 else v for k, v in design.items()}
        sub["d"] = design["d"][np.ix_(inside, inside)]
        row: dict[str, Any] = {"domain_a": a, "domain_b": b, "n_a": int((sub["domain"] == a).sum())}
        row["n_b"] = int((sub["domain"] == b).sum())
        for strata_name, prefix in (("none", ""), ("family", "family_")):
            if row["n_a"] + row["n_b"] > 2:
                test = _test_row(sub, "domain", strata_name, permutations, seed)
                row[f"{prefix}p_value"] = test.get("p_value")
                if strata_name == "family":
                    row["n_families_informative"] = test["n_strata_informative"]
        rows.append(row)
    for key in ("p_value", "family_p_value"):
        tested = [r for r in rows if r.get(key) is not None]
        for row, adjusted in zip(tested, holm(np.array([r[key] for r in tested])), strict=True):
            row[f"{key.removesuffix('p_value')}p_holm"] = float(adjusted)
    return rows


def family_rows(design: dict[str, Any], permutations: int, seed: int) -> list[dict[str, Any]]:
    """Each family with medical and non-medical models: mean D between the groups against within, an
    unrestricted PERMANOVA inside the family and Holm's correction over the families; one-group families listed."""
    rows = []
    for family in sorted(set(design["family"].tolist())):
        inside = design["family"] == family
        groups = design[MEDICAL][inside]
        row: dict[str, Any] = {
            "family": family,
            "n_medical": int((groups == MEDICAL).sum()),
            "n_non_medical": int((groups == NON_MEDICAL).sum()),
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
