"""The project's words, defined once: outcome statuses, skip reasons, orientations, model fields, "medical".

Every module, the SQL views, the report's prose and the flows import these instead of spelling them again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

# What happened to one source in an ingest (the flows add "cached": served from Prefect's task cache).
INGESTED, PRESENT, UPDATED, FAILED, CACHED = "ingested", "present", "updated", "failed", "cached"
STATUSES = (INGESTED, CACHED, PRESENT, UPDATED, FAILED)
STATUS_WORDS = {
    INGESTED: "ingested",
    CACHED: "cached",
    PRESENT: "already present",
    UPDATED: "metadata updated",
    FAILED: "failed",
}

# Why a conv weight gave no 3x3 filters; `models` has one `skipped_<reason>` count column per reason.
SKIP_REASONS: Mapping[str, str] = {
    "1x1": "1x1 kernel (pointwise conv)",
    "other_kernel": "other square kernel (2x2, 5x5, 7x7, ...)",
    "non_square": "non-square kernel (e.g. 1x3, 3x7)",
    "1d": "1-D convolution",
    "3d": "3-D convolution",
    "transposed": "transposed convolution",
    "unresolved": "weight layout could not be resolved",
}
SKIP_COLUMNS = tuple(f"skipped_{reason}" for reason in SKIP_REASONS)

# How a weight's orientation is known, per tensor (readers) and per layer (`layers.orientation`).
KIND_CONV, KIND_TRANSPOSED, KIND_UNKNOWN = "conv", "transposed", "unknown"
# Per model (`models.orientation`): "known" when the format tells convs from transposed convs.
ORIENTATION_KNOWN, ORIENTATION_UNKNOWN = "known", "unknown"

# How conv depth was decided (`models.depth_source`).
DEPTH_GRAPH, DEPTH_DEFINITION_ORDER = "graph", "definition_order"
# State dicts: depth from the chain of matching channel counts when it holds (filterlake.extract.conv_levels).
DEPTH_CHANNEL_CHAIN = "channel_chain"

# The descriptive metadata of a model: catalog and sidecar fields, `models` columns, `--group-by` keys.
MODEL_FIELDS = ("name", "architecture", "task", "domain", "modality", "training_dataset", "license")
# Other `models` columns a grouping may use.
GROUPABLE_COLUMNS = (*MODEL_FIELDS, "format")

# "Medical" is a domain whose label starts with this prefix ("medical mri", "medical histology", ...).
MEDICAL_PREFIX = "medical"
MEDICAL, NON_MEDICAL = "medical", "non-medical"
MEDICAL_RULE = f"domain starting with '{MEDICAL_PREFIX}'"


def is_medical(domain: str | None) -> bool:
    """True for a medical domain (the Python twin of `medical_sql`)."""
    return (domain or "").startswith(MEDICAL_PREFIX)


def medical_sql(column: str = "domain") -> str:
    """SQL predicate of a medical domain over `column` (the SQL twin of `is_medical`)."""
    return f"coalesce(starts_with({column}, '{MEDICAL_PREFIX}'), false)"


# Untrained baselines (`filterlake baseline`) have this domain: their own group everywhere, and a third label
# of the `medical` grouping, so the medical vs non-medical test compares trained models only.
UNTRAINED = "untrained"


def is_untrained(domain: str | None) -> bool:
    """True for the domain of untrained baselines (the Python twin of `untrained_sql`)."""
    return domain == UNTRAINED


def untrained_sql(column: str = "domain") -> str:
    """SQL predicate of the untrained baselines' domain over `column` (the SQL twin of `is_untrained`)."""
    return f"coalesce({column} = '{UNTRAINED}', false)"


def medical_label_sql(column: str = "domain") -> str:
    """SQL of the `medical` grouping's label: 'untrained', 'medical' or 'non-medical' (every model has one)."""
    return (
        f"CASE WHEN {untrained_sql(column)} THEN '{UNTRAINED}' "
        f"WHEN {medical_sql(column)} THEN '{MEDICAL}' ELSE '{NON_MEDICAL}' END"
    )


# CNN Filter DB's published dataset.h5 (`filterlake import cnn-filter-db`): `models.format` of its models.
CNN_FILTER_DB = "cnn-filter-db"
# A model imported with --meta-only has its models and layers rows but no filters: `extra` holds this key set
# to true and `models.message` says so. `filterlake check` accepts it, `analyze` leaves it out.
META_ONLY = "meta_only"
META_ONLY_MESSAGE = "metadata only (imported with --meta-only): no filters in the lake"


def is_meta_only(extra: str | None) -> bool:
    """True for a models row whose `extra` JSON marks it as imported without its filters."""
    try:
        return json.loads(extra or "{}").get(META_ONLY) is True
    except (ValueError, AttributeError):
        return False
