"""The plain-language reading of the medical vs non-medical test: what the data do and do not support."""

from __future__ import annotations

from filterlake.derived.groupings import UNKNOWN
from filterlake.report.facts import GroupFacts

__all__ = ["ALPHA", "GroupFacts", "medical_verdict"]

ALPHA = 0.05


def _mix(counts: dict[str, int], n: int) -> str:
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return ", ".join(f"{k} {v} of {n}" for k, v in top)


def _shared(medical: GroupFacts, other: GroupFacts) -> str:
    both = sorted((set(medical.families) & set(other.families)) - {UNKNOWN})  # no architecture is no family
    if not both:
        return (
            "No architecture family has models in both groups, so architecture and domain cannot be told "
            "apart."
        )
    return f"Only {', '.join(both)} {'has' if len(both) == 1 else 'have'} models in both groups."


def medical_verdict(
    observed: float,
    p_value: float,
    ci: tuple[float, float],
    null_mean: float,
    null_q95: float,
    n_permutations: int,
    medical: GroupFacts,
    other: GroupFacts,
    duplicate_pairs: int = 0,
    alpha: float = ALPHA,
) -> tuple[str, list[str], list[str]]:
    """(headline, what the data support, what they do not support) for the medical vs non-medical test."""
    n = medical.n_models + other.n_models
    share = f"{p_value * 100:.1f}%"
    if p_value < alpha:
        headline = (
            f"p = {p_value:.3g} < {alpha}: on these {n} models, the filter distributions of medical models "
            "differ from the others more than the model-to-model variation explains."
        )
        supported = [
            (
                f"The pooled coefficient distributions of the {medical.n_models} medical and "
                f"{other.n_models} non-medical models are D = {observed:.4f} nats apart. Randomly "
                f"relabelling models gave a D at least as large in only {share} of {n_permutations:,} "
                f"permutations (null mean {null_mean:.4f}, 95th percentile {null_q95:.4f})."
            ),
            (
                f"Resampling models within each group gives a {ci[0]:.4f} to {ci[1]:.4f} interval for D, so "
                "the size of the shift depends on which models are in the sample."
            ),
        ]
    else:
        headline = (
            f"p = {p_value:.3g} ≥ {alpha}: no evidence, on these {n} models, that the medical models' pooled "
            "filter distribution differs from the others' more than the model-to-model variation explains "
            "(which is not evidence that they are the same)."
        )
        supported = [
            (
                f"The observed shift D = {observed:.4f} nats between the {medical.n_models} medical and "
                f"{other.n_models} non-medical models is typical of random relabelling: {share} of "
                f"{n_permutations:,} permutations gave a D at least as large (null mean {null_mean:.4f}, "
                f"95th percentile {null_q95:.4f})."
            ),
            f"Resampling models within each group gives a {ci[0]:.4f} to {ci[1]:.4f} interval for D.",
        ]
    not_supported = [
        (
            "Not a causal claim: the test compares these two sets of models, and they differ in more than "
            f"the image domain. Tasks: medical {_mix(medical.task_kinds, medical.n_models)}; non-medical "
            f"{_mix(other.task_kinds, other.n_models)}. Architecture families: medical "
            f"{_mix(medical.families, medical.n_models)}; non-medical "
            f"{_mix(other.families, other.n_models)}. {_shared(medical, other)} Architecture, task, "
            "training recipe or checkpoint format may explain any difference as well as the domain."
        ),
        (
            f"Only {n} models: the test has little power, so a non-significant p does not show that the "
            "filters are the same, and a significant one need not hold for other models."
        ),
        (
            f"Filters are pooled per group, so large models dominate: {medical.largest_name} holds "
            f"{medical.largest_share * 100:.0f}% of the {medical.n_filters:,} medical filters and "
            f"{other.largest_name} {other.largest_share * 100:.0f}% of the {other.n_filters:,} non-medical "
            "ones."
        ),
    ]
    if duplicate_pairs:
        not_supported.append(
            f"{duplicate_pairs} pair(s) of models have identical filter distributions (D = 0, e.g. the same "
            "weights saved in two formats). They count as separate models here, so the effective number of "
            "independent models is smaller than shown."
        )
    return headline, supported, not_supported
