"""Groupings of models, defined once: group keys in SQL, architecture family, task kind, the medical split.

A grouping is a `models` column (domain, task, training_dataset, architecture, name, ...), `medical` (domain
starting with "medical" vs the rest; untrained baselines, vocab.UNTRAINED, apart), `model` (one group per
model, labelled by the `model_labels` view), `task_kind` and `family` (the keyword and first-word rules below,
in Python and as generated SQL), `depth_decile` (layers by relative depth, P1 bins) or any key of the models'
extra metadata. The shifts, the stored comparisons and the report all take their groups from here.
"""

from __future__ import annotations

import re

import duckdb

from filterlake.errors import FilterlakeError
from filterlake.vocab import (
    GROUPABLE_COLUMNS,
    MEDICAL,
    NON_MEDICAL,
    UNTRAINED,
    is_medical,
    is_untrained,
    medical_label_sql,
)

# P1 relative-depth deciles: [0, .1] (first layer included), (.1, .2], ..., (.9, 1]
DEPTH_DECILE = (
    "CASE WHEN l.conv_depth_norm <= 0.1 THEN '[0.0, 0.1]' ELSE "
    "printf('(%.1f, %.1f]', ceil(round(l.conv_depth_norm * 10, 9)) / 10 - 0.1, "
    "ceil(round(l.conv_depth_norm * 10, 9)) / 10) END"
)
MODEL, TASK_KIND, FAMILY = "model", "task_kind", "family"
MODEL_LABEL = "(SELECT ml.label FROM model_labels AS ml WHERE ml.model_id = m.model_id)"
UNKNOWN = "(unknown)"
OTHER_TASK = "other"
# The task kind is the kind of the first keyword the lower-cased task contains.
TASK_KINDS = (
    ("segment", "segmentation"),
    ("detect", "detection"),
    ("super-res", "super-resolution"),
    ("super res", "super-resolution"),
    ("recogn", "recognition"),
    ("classif", "classification"),
)
# The architecture family is its first word (up to whitespace or one of FAMILY_END), without trailing
# FAMILY_TRAILING characters and without a trailing version or size (FAMILY_VERSION, as written for both
# Python's re and DuckDB's RE2).
SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
SPACE += "\u2028\u2029\u202f\u205f\u3000"  # what str.strip() strips (str.isspace)
FAMILY_END = "(;,:"
FAMILY_TRAILING = "+*'\""
FAMILY_VERSION = r"[-_]?[0-9]+(\.[0-9]+)?[dDxXsS]?$"  # a trailing size or depth: ResNet-20, VGG16, UNet2d
FAMILY_KEEP = r"[vV][0-9]+(\.[0-9]+)?$"  # a trailing version stays: ESPNetv2 is not ESPNet
FAMILY_KEY = "family"  # the catalog field (kept in models.extra) that names a model's family outright
# DuckDB's lower() differs from str.lower() on one character (U+0130 -> "i" instead of "i" + U+0307).
LOWER_FIXES = {"\u0130": "i\u0307"}


def sql_string(text: str) -> str:
    """A DuckDB string expression for ``text`` (characters outside printable ASCII as chr(n))."""
    parts = re.findall(r"[ -~]+|[^ -~]", text)
    quoted = [
        "'" + p.replace("'", "''") + "'" if p.isascii() and p.isprintable() else f"chr({ord(p)})"
        for p in parts
    ]
    return " || ".join(quoted) or "''"


def _not_in(chars: str, re2: bool) -> str:
    """A regex class matching any character but ``chars`` (RE2 escapes or Python's)."""
    body = "".join(f"\\x{{{ord(c):x}}}" for c in chars) if re2 else "".join(re.escape(c) for c in chars)
    return f"[^{body}]*"


def architecture_family(architecture: str | None, family: str | None = None) -> str:
    """A model's architecture family: the catalog's own `family` field (extra metadata) where given, else the
    first word of the free-text architecture without a trailing size, a version suffix kept.

    "ResNet-20 for CIFAR" -> "ResNet", "UNet2d (...)" -> "UNet", "VGG16" -> "VGG", "ESPNetv2 ..." -> "ESPNetv2"
    (a new version is another design), "MTCNN O-Net" -> "MTCNN" (name P-, R- and O-Net apart with `family`).
    An empty architecture gives "(unknown)". The SQL twin is family_sql.
    """
    given = (family or "").strip(SPACE)
    if given:
        return given
    text = (architecture or "").strip(SPACE)
    if not text:
        return UNKNOWN
    word = (re.match(_not_in(SPACE + FAMILY_END, False), text).group(0) or text).rstrip(FAMILY_TRAILING)
    if re.search(FAMILY_KEEP, word):
        return word
    return re.sub(FAMILY_VERSION, "", word, count=1) or word


def family_sql(column: str = "m.architecture", extra: str | None = None) -> str:
    """SQL of architecture_family over ``column`` (and the `family` key of the JSON ``extra`` column when given),
    generated from the same constants."""
    text = f"trim(coalesce({column}, ''), {sql_string(SPACE)})"
    first = sql_string("^" + _not_in(SPACE + FAMILY_END, True))
    word = (
        f"rtrim(coalesce(nullif(regexp_extract({text}, {first}), ''), {text}), {sql_string(FAMILY_TRAILING)})"
    )
    base = f"nullif(regexp_replace({word}, {sql_string(FAMILY_VERSION)}, ''), '')"
    rule = (
        f"CASE WHEN {text} = '' THEN {sql_string(UNKNOWN)} WHEN regexp_matches({word}, {sql_string(FAMILY_KEEP)}) "
        f"THEN {word} ELSE coalesce({base}, {word}) END"
    )
    if extra is None:
        return rule
    given = (
        f"nullif(trim(coalesce(json_extract_string({extra}, '$.{FAMILY_KEY}'), ''), {sql_string(SPACE)}), '')"
    )
    return f"coalesce({given}, {rule})"


def task_kind(task: str | None) -> str:
    """A coarse task label from the free-text task (keyword rule; first match wins). The SQL twin is task_kind_sql."""
    text = (task or "").lower()
    for key, kind in TASK_KINDS:
        if key in text:
            return kind
    return OTHER_TASK if text else UNKNOWN


def task_kind_sql(column: str = "m.task") -> str:
    """SQL of task_kind over ``column``, generated from TASK_KINDS."""
    text = f"coalesce({column}, '')"
    for char, fixed in LOWER_FIXES.items():
        text = f"replace({text}, {sql_string(char)}, {sql_string(fixed)})"
    cases = " ".join(
        f"WHEN contains(lower({text}), {sql_string(k)}) THEN {sql_string(v)}" for k, v in TASK_KINDS
    )
    return f"CASE {cases} WHEN {text} = '' THEN {sql_string(UNKNOWN)} ELSE {sql_string(OTHER_TASK)} END"


def group_expression(group_by: str) -> tuple[str, bool]:
    """SQL for a grouping's label and whether it is per layer (True) or per model (False)."""
    if group_by in GROUPABLE_COLUMNS:
        return f"m.{group_by}", False
    if group_by == MEDICAL:
        return medical_label_sql("m.domain"), False
    if group_by == MODEL:
        return MODEL_LABEL, False
    if group_by == TASK_KIND:
        return task_kind_sql(), False
    if group_by == FAMILY:
        return family_sql("m.architecture", "m.extra"), False
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
    """The `medical` grouping's label of a domain: 'untrained' (baselines), 'medical' or 'non-medical' (the twin
    of medical_label_sql)."""
    if is_untrained(domain):
        return UNTRAINED
    return MEDICAL if is_medical(domain) else NON_MEDICAL


def model_name(name: str | None, model_id: str) -> str:
    """A model's shown name: its catalogued name, or the first 12 characters of its id."""
    return name or model_id[:12]
