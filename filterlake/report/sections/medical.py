"""Medical vs non-medical: the stored shift, permutation test, bootstrap interval and per-component
divergence, with a plain-language verdict that names the confounders."""

from __future__ import annotations

from filterlake.report import figures
from filterlake.report.document import Bullets, Page, Para, Section
from filterlake.report.facts import Medical, ReportData
from filterlake.report.tables import Table
from filterlake.report.text import counted, plural
from filterlake.report.verdict import ALPHA, medical_verdict
from filterlake.vocab import MEDICAL, MEDICAL_RULE, NON_MEDICAL

ID, TITLE = "medical", "Medical vs non-medical"
GUIDE = (
    "Do medical-imaging models learn different filters? The shift between the two groups, whether it "
    "exceeds what shuffling the models' labels gives, and what that does and does not mean."
)


def verdict(m: Medical) -> tuple[str, list[str], list[str]]:
    """(headline, supported, not supported) of a tested comparison."""
    t = m.test
    return medical_verdict(
        m.stored,
        t.p_value,
        (t.ci_low, t.ci_high),
        t.null_mean,
        t.null_q95,
        t.n_permutations,
        *m.facts,
        m.duplicates,
    )


def _test_table(m: Medical) -> Table:
    t, (med, oth) = m.test, m.facts
    level = round(t.confidence * 100)
    return Table(
        "medical_test",
        "Medical vs non-medical: shift and tests",
        ["quantity", "value"],
        [
            ["shift D (stored, nats)", m.stored],
            ["shift D (test, nats)", t.observed],
            ["permutation p-value", t.p_value],
            ["permutations", t.n_permutations],
            [f"bootstrap {level}% interval low", t.ci_low],
            [f"bootstrap {level}% interval high", t.ci_high],
            ["null mean D", t.null_mean],
            ["null 95th percentile D", t.null_q95],
            ["medical models", len(m.medical)],
            ["non-medical models", len(m.other)],
            ["medical filters", med.n_filters],
            ["non-medical filters", oth.n_filters],
            ["identical-distribution model pairs", m.duplicates],
            ["significance level", ALPHA],
        ],
        "D (stored) is read from the shifts table; D (test) is recomputed from per-model histograms.",
    )


def _groups_table(m: Medical) -> Table:
    columns = [
        "group",
        "models",
        "filters",
        "largest model",
        "its share of filters %",
        "task kinds",
        "families",
    ]
    return Table(
        "medical_groups",
        "Who is in each group",
        columns,
        [
            [
                g,
                f.n_models,
                f.n_filters,
                f.largest_name,
                100 * f.largest_share,
                counted(f.task_kinds),
                counted(f.families),
            ]
            for g, f in zip((MEDICAL, NON_MEDICAL), m.facts)
        ],
        "The confounders: tasks and architectures are not balanced between the groups.",
        {"its share of filters %": ".1f"},
    )


def _components_table(m: Medical) -> Table:
    return Table(
        "medical_components",
        "Per-component divergence, medical vs non-medical",
        ["component", "KL_sym (nats)", "weight", "contribution to D"],
        [
            [
                f"c{k}",
                float(m.per_component[k]),
                float(m.weights[k]),
                float(m.per_component[k] * m.weights[k]),
            ]
            for k in range(len(m.weights))
        ],
        "",
        {"KL_sym (nats)": ".4f", "weight": ".4f", "contribution to D": ".4f"},
    )


def why_not(row: dict) -> str:
    """Why a stratified test could not run: no stratum with both groups, or too few models in those that have."""
    if not row["n_strata_informative"]:
        return f"none of its {row['n_strata_excluded']} architecture families has both medical and non-medical models"
    return (
        f"the {row['n_strata_informative']} architecture families with both medical and non-medical models hold "
        "too few models for a test (no variation within a group is left)"
    )


def controlled_verdict(m: Medical) -> str | None:
    """The answer with architecture controlled, in one sentence, or why the lake cannot give it."""
    family = m.controlled_by(MEDICAL).get("family")
    if family is None:
        return None
    if family["pseudo_f"] is None:
        return (
            f"With architecture controlled, this lake cannot answer: {why_not(family)}, so any difference below "
            "may be the architectures' as much as the domains'."
        )
    where = (
        f"labels permuted within the {family['n_strata_informative']} architecture families that hold both "
        f"groups, {family['n_models']} models"
    )
    if family["p_value"] < ALPHA:
        return (
            f"With architecture controlled ({where}), medical models differ from the others more than models "
            f"of one group differ from each other: PERMANOVA p = {family['p_value']:.3g}, R² = "
            f"{family['r_squared']:.3f}."
        )
    return (
        f"With architecture controlled ({where}), no evidence that medical models differ from the others more "
        f"than models of one group differ from each other: PERMANOVA p = {family['p_value']:.3g}, R² = "
        f"{family['r_squared']:.3f} (which is not evidence that they are the same)."
    )


def evidence_table(m: Medical) -> Table:
    """Every test of the question side by side: what it permutes, its statistic, p and the models it used."""
    t = m.test
    rows = [
        [
            "pooled D, models permuted freely",
            "D (nats)",
            t.observed,
            t.p_value,
            len(m.medical) + len(m.other),
            "",
        ]
    ]
    for r in m.controlled:
        strata = "freely" if r["strata"] == "none" else f"within {r['strata']}"
        what = "medical vs non-medical" if r["factor"] == MEDICAL else f"all {r['n_groups']} domains"
        rows.append(
            [
                f"PERMANOVA of {what} on model-by-model D, labels permuted {strata}",
                "pseudo-F",
                r["pseudo_f"],
                r["p_value"],
                r["n_models"],
                ""
                if r["strata"] == "none"
                else f"{r['n_strata_informative']} with two or more groups, {r['n_strata_excluded']} with one (left out)",
            ]
        )
    return Table(
        "medical_evidence",
        "The evidence: every test of medical vs non-medical",
        ["test", "statistic", "value", "p", "models", "strata"],
        rows,
        "The pooled test compares the two groups' pooled filter distributions (large models weigh most); "
        "PERMANOVA compares models with models (each model weighs once). Empty cells: the lake cannot make "
        "that comparison.",
        {"value": ".4g", "p": ".3g"},
    )


def _domain_pairs(m: Medical, page: Page) -> list:
    """Every pair of domains, Holm-corrected: which pairs differ, and how many the families let us compare."""
    pairs = m.domain_pairs
    if not pairs:
        return []
    tested = [r for r in pairs if r["p_holm"] is not None]
    within = [r for r in pairs if r["family_p_holm"] is not None]
    found = [r for r in tested if r["p_holm"] < ALPHA]
    text = (
        f"Every pair of the {len({r['domain_a'] for r in pairs} | {r['domain_b'] for r in pairs})} training "
        f"domains: {len(tested)} of {len(pairs)} pairs have enough models for a PERMANOVA, "
        f"{len(found)} of them differ after Holm's correction (p < {ALPHA}); within architecture families "
        f"{plural(len(within), 'pair')} can be compared at all"
        + (
            f", and {sum(r['family_p_holm'] < ALPHA for r in within)} of them differ."
            if within
            else " (no family holds two domains)."
        )
    )
    table = Table(
        "domain_pairs",
        "Pairs of domains, the smallest corrected p first",
        [
            "domain A",
            "domain B",
            "models A",
            "models B",
            "p",
            "p (Holm)",
            "p within families",
            "p (Holm)",
            "families",
        ],
        [
            [
                r["domain_a"],
                r["domain_b"],
                r["n_a"],
                r["n_b"],
                r["p_value"],
                r["p_holm"],
                r["family_p_value"],
                r["family_p_holm"],
                r["n_families_informative"],
            ]
            for r in sorted(
                pairs, key=lambda r: (r["p_holm"] is None, r["p_holm"] or 0, r["domain_a"], r["domain_b"])
            )
        ],
        "PERMANOVA on each pair's models; Holm over the pairs tested, separately for the free and the "
        "within-family permutations. Empty cells: too few models, or no family holds both domains.",
        {"p": ".3g", "p (Holm)": ".3g", "p within families": ".3g", "p within (Holm)": ".3g"},
        collapsed=True,
    )
    return [Para(text), page.table(table)]


def controlled_blocks(m: Medical, page: Page) -> list:
    """The test with the confounders controlled: PERMANOVA within strata and the per-family comparisons."""
    rows = m.controlled_by(MEDICAL)
    if not rows:
        return []
    free, family = rows.get("none"), rows.get("family")
    blocks: list = [Para("Models against models, with and without the architecture controlled", "heading")]
    text = (
        "A second test asks whether models of different groups differ more than models of the same group, "
        "on the model-by-model shift matrix (PERMANOVA, D as the squared distance, "
        "docs/methods/permanova.md), with the labels shuffled only among models of the same architecture "
        "family, so an architecture that only one group has cannot pass for a domain effect. "
    )
    if free and free["pseudo_f"] is not None:
        text += (
            f"Unrestricted, over all {free['n_models']} models: pseudo-F = {free['pseudo_f']:.3g}, "
            f"p = {free['p_value']:.3g}, R² = {free['r_squared']:.3f}. "
        )
    if family and family["pseudo_f"] is not None:
        text += (
            f"Within families ({family['n_strata_informative']} families hold both groups, "
            f"{family['n_models']} models; {family['n_strata_excluded']} families hold one group only and are left "
            f"out): pseudo-F = {family['pseudo_f']:.3g}, p = {family['p_value']:.3g}, R² = "
            f"{family['r_squared']:.3f}; "
            + (
                "the domain effect survives the control for architecture."
                if family["p_value"] < ALPHA
                else "no evidence of a domain effect once architecture is controlled (which is not evidence "
                "that there is none)."
            )
        )
    elif family:
        text += (
            f"The lake cannot make this comparison: {why_not(family)}, so the unrestricted result cannot be told "
            "apart from an architecture effect. More models of one family in both domains would answer it."
        )
    blocks.append(Para(text))
    blocks += _domain_pairs(m, page)
    both = [r for r in m.contrasts if r["n_medical"] and r["n_non_medical"]]
    if both:
        blocks.append(
            page.table(
                Table(
                    "family_contrasts",
                    "Architecture-matched comparisons: families with models of both groups",
                    ["family", "medical", "non-medical", "mean D between", "mean D within", "p", "p (Holm)"],
                    [
                        [
                            r["family"],
                            r["n_medical"],
                            r["n_non_medical"],
                            r["between_mean"],
                            r["within_mean"],
                            r["p_value"],
                            r["p_holm"],
                        ]
                        for r in both
                    ],
                    "Mean D between the family's medical and non-medical models against the mean within each "
                    "group; p from a PERMANOVA inside the family, Holm-corrected over the families tested.",
                    {"mean D between": ".4f", "mean D within": ".4f", "p": ".3g", "p (Holm)": ".3g"},
                )
            )
        )
    return blocks


def render(data: ReportData, page: Page, s: Section) -> None:
    """Fill the section: the test, its verdict, the null distribution and which components carry the shift."""
    m = data.medical
    if m.test is None:
        s.add(
            Para(
                f"The lake has {len(m.medical)} medical and {len(m.other)} non-medical models with 3x3 filters: "
                "the comparison needs both.",
                "warning",
            )
        )
        return
    t = m.test
    headline, supported, unsupported = verdict(m)
    s.add(Para("Do medical-imaging models learn different 3x3 filters than other models?", "heading"))
    if answer := controlled_verdict(m):
        s.add(Para(answer, "verdict"))
    s.add(page.table(evidence_table(m)))
    s.add(Para("The pooled distributions, models permuted freely", "heading"))
    s.add(Para(headline, "verdict" if answer is None else "text"))
    s.add(
        Para(
            f"Medical = {MEDICAL_RULE} ({', '.join(sorted({x.domain for x in m.medical}))}); "
            "non-medical = every other model with 3x3 filters. The permutation test shuffles the group "
            f"labels of the {len(m.medical) + len(m.other)} models ({t.n_permutations:,} permutations, "
            f"seed {t.seed}) and recomputes D from the pooled histograms; p = (1 + #{{D_perm ≥ D}}) / "
            "(1 + permutations). The interval resamples models with replacement within each group "
            f"({t.n_boot:,} draws, percentile interval)."
        )
    )
    s.add(*controlled_blocks(m, page))
    s.add(Para("What the data support", "heading"), Bullets(supported))
    s.add(Para("What they do not support", "heading"), Bullets(unsupported))
    s.add(
        page.figure(
            figures.null_distribution(
                page.out / "fig_medical_null.png",
                t.null,
                m.stored,
                (t.ci_low, t.ci_high),
                t.p_value,
                t.confidence,
            ),
            "Null distribution of D when the medical/non-medical labels are shuffled across models, with "
            "the observed D (red) and its bootstrap interval (black).",
            "histogram of the permutation null distribution of D with the observed value",
        )
    )
    s.add(page.table(_test_table(m)), page.table(_groups_table(m)))
    s.add(
        page.figure(
            figures.component_bars(page.out / "fig_medical_components.png", m.per_component, m.weights),
            "Which basis components carry the shift: symmetric KL per component between the medical and "
            f"non-medical coefficient histograms, and its weighted contribution (sum = D = {m.total:.4f}).",
            "bar chart of the per-component divergence",
        )
    )
    s.add(page.table(_components_table(m)))
