"""Groupings of models, defined once: group keys in SQL, architecture family, task kind, the medical split.

A grouping is a `models` column (domain, task, training_dataset, architecture, name, ...), `medical` (domain
starting with "medical" vs the rest), `depth_decile` (layers by relative depth, P1 bins) or any key of the
models' extra metadata. The shifts, the stored comparisons and the report all take their groups from here.
"""

from __future__ import annotations

import re

import duckdb

from filterlake.errors import FilterlakeError
from filterlake.vocab import GROUPABLE_COLUMNS, MEDICAL, NON_MEDICAL, is_medical, medical_label_sql

# P1 relative-depth deciles: [0, .1] (first layer included), (.1, .2], ..., (.9, 1]
DEPTH_DECILE = (
    "CASE WHEN l.conv_depth_norm <= 0.1 THEN '[0.0, 0.1]' ELSE "
    "printf('(%.1f, %.1f]', ceil(round(l.conv_depth_norm * 10, 9)) / 10 - 0.1, "
    "ceil(round(l.conv_depth_norm * 10, 9)) / 10) END"
)
UNKNOWN = "(unknown)"
TASK_KINDS = (
    ("segment", "segmentation"),
    ("detect", "detection"),
    ("super-res", "super-resolution"),
    ("super res", "super-resolution"),
    ("recogn", "recognition"),
    ("classif", "classification"),
)


def group_expression(group_by: str) -> tuple[str, bool]:
    """SQL for a grouping's label and whether it is per layer (True) or per model (False)."""
    if group_by in GROUPABLE_COLUMNS:
        return f"m.{group_by}", False
    if group_by == MEDICAL:
        return medical_label_sql("m.domain"), False
    if group_by == "depth_decile":
        return DEPTH_DECILE, True
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", group_by):
        raise FilterlakeError(f"--group-by {group_by!r}: not a column name or metadata key")
    return f"json_extract_string(m.extra, '$.{group_by}')", False


def n_labels(con: duckdb.DuckDBPyConnection, group_by: str) -> int:
    """How many distinct labels a grouping has among the models with 3x3 filters (0: nothing to compare)."""
    label, _ = group_expression(group_by)
    return con.execute(f"""
        SELECT count(DISTINCT {label}) FROM models AS m JOIN layers AS l USING (model_id)
        WHERE l.n_filters > 0 AND {label} IS NOT NULL""").fetchone()[0]


def depth_decile_key(label: str) -> float:
    """The lower bound of a `depth_decile` label, so that deciles sort in depth order."""
    found = re.findall(r"[\d.]+", label)
    return float(found[0]) if found else float("inf")


def medical_group(domain: str | None) -> str:
    """The `medical` grouping's label of a domain: 'medical' or 'non-medical' (the twin of medical_label_sql)."""
    return MEDICAL if is_medical(domain) else NON_MEDICAL


def model_name(name: str | None, model_id: str) -> str:
    """A model's shown name: its catalogued name, or the first 12 characters of its id."""
    return name or model_id[:12]


def architecture_family(architecture: str | None) -> str:
    """A coarse family from the free-text architecture: its first word, without a trailing version or size.

    "ResNet-20 for CIFAR" -> "ResNet", "UNet2d (...)" -> "UNet", "ESPNetv2 ..." -> "ESPNet", "MTCNN O-Net" ->
    "MTCNN", "VGG16" -> "VGG". An empty architecture gives "(unknown)".
    """
    if not architecture or not architecture.strip():
        return UNKNOWN
    word = re.split(r"[\s(;,:]+", architecture.strip())[0] or architecture.strip()
    word = word.rstrip("+*'\"")
    base = re.sub(r"(?i)[-_]?v?\d+(\.\d+)?(d|x|s)?$", "", word)
    return base or word


def task_kind(task: str | None) -> str:
    """A coarse task label from the free-text task (keyword rule; first match wins)."""
    text = (task or "").lower()
    for key, kind in TASK_KINDS:
        if key in text:
            return kind
    return "other" if text else UNKNOWN
