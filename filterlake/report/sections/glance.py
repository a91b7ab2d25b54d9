"""The lake at a glance: models, layers and filters per domain, task, format and family; what was
skipped and why."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from filterlake.derived.groupings import TASK_KINDS, task_kind
from filterlake.report.document import Page, Para, Section
from filterlake.report.facts import ModelInfo, ReportData
from filterlake.report.tables import Table
from filterlake.report.text import plural
from filterlake.vocab import SKIP_REASONS

COUNT_COLUMNS = ["models", "3x3 layers", "filters", "filters %"]
COUNT_FORMATS = {"filters %": ".1f"}


ID, TITLE = "glance", "The lake at a glance"
GUIDE = (
    "What the lake holds: how many models, 3x3 layers and filters per domain, task, format and "
    "architecture family, and what was left out; click a column header to sort a table."
)


def count_rows(models: list[ModelInfo], key: Callable[[ModelInfo], str]) -> list[list]:
    """Models, layers, filters and share of filters per group of ``key``, largest groups first."""
    groups: dict[str, list[ModelInfo]] = defaultdict(list)
    for m in models:
        groups[key(m)].append(m)
    total = sum(m.n_filters for m in models) or 1
    out = [
        [
            g,
            len(ms),
            sum(m.n_layers for m in ms),
            sum(m.n_filters for m in ms),
            100.0 * sum(m.n_filters for m in ms) / total,
        ]
        for g, ms in groups.items()
    ]
    return sorted(out, key=lambda r: (-r[1], -r[3], r[0]))


def _counts(name: str, title: str, column: str, rows: list[list], note: str = "") -> Table:
    return Table(name, title, [column, *COUNT_COLUMNS], rows, note, COUNT_FORMATS)


def _models_table(models: list[ModelInfo]) -> Table:
    columns = ["model", "domain", "task", "architecture family", "format", "3x3 layers", "frozen", "filters"]
    columns.append("file MB")
    return Table(
        "models",
        "Models",
        [*columns, "model_id"],
        [
            [
                m.label,
                m.domain,
                m.task,
                m.family,
                m.format,
                m.n_layers,
                m.n_frozen,
                m.n_filters,
                m.file_bytes / 1e6,
                m.model_id[:12],
            ]
            for m in models
        ],
        "One row per model; 3x3 layers and filters are counted in the layers table. Frozen: 3x3 layers "
        "marked trainable = false in the checkpoint's own config (Keras records it; other formats do not).",
        {"file MB": ".2f"},
    )


def _group_tables(models: list[ModelInfo]) -> list[Table]:
    task_rows = [[task_kind(r[0]), *r] for r in count_rows(models, lambda m: m.task)]
    task_rows.sort(key=lambda r: (r[0], -r[2], r[1]))
    keywords = ", ".join(dict.fromkeys(key for key, _ in TASK_KINDS if key != "super res"))
    archs = defaultdict(set)
    for m in models:
        archs[m.family].add(m.architecture)
    families = [[*r, "; ".join(sorted(archs[r[0]]))] for r in count_rows(models, lambda m: m.family)]
    return [
        _counts("by_domain", "Models by domain", "domain", count_rows(models, lambda m: m.domain)),
        Table(
            "by_task",
            "Models by task",
            ["task kind", "task", *COUNT_COLUMNS],
            task_rows,
            f"Task as catalogued (free text); the task kind is a keyword rule ({keywords}) used again in "
            "section 5.",
            COUNT_FORMATS,
        ),
        _counts("by_format", "Models by checkpoint format", "format", count_rows(models, lambda m: m.format)),
        Table(
            "by_architecture",
            "Models by architecture family",
            ["family", *COUNT_COLUMNS, "architectures"],
            families,
            "The family is the catalog's own `family` field where it gives one (MTCNN's P-, R- and O-Net are "
            "three networks), else the first word of the catalogued architecture without its size (ResNet-20 and "
            "ResNet-56 are ResNet; UNet2d is UNet) but with its version (ESPNetv2 is not ESPNet).",
            COUNT_FORMATS,
        ),
    ]


def _skipped_tables(data: ReportData) -> list:
    by_reason: dict[str, list] = defaultdict(list)
    for name, _model_id, reason, n in data.skipped:
        by_reason[reason].append((name, n))
    return [
        Para(
            f"Only 2-D convolutions with a 3x3 kernel are stored. {sum(r[3] for r in data.skipped):,} other "
            f"conv layers in {len({r[1] for r in data.skipped})} models were counted and left out."
        ),
        Table(
            "skipped_by_reason",
            "Skipped conv layers by reason",
            ["reason", "what", "models", "layers"],
            [
                [
                    reason.removeprefix("skipped_"),
                    SKIP_REASONS.get(reason.removeprefix("skipped_"), reason),
                    len(items),
                    sum(n for _, n in items),
                ]
                for reason, items in sorted(by_reason.items())
            ],
        ),
        Table(
            "skipped_layers",
            "Skipped conv layers per model",
            ["model", "reason", "layers"],
            [[name, reason.removeprefix("skipped_"), n] for name, _, reason, n in data.skipped],
            "From the skipped_layers view.",
            collapsed=True,
        ),
        Table(
            "model_messages",
            "Models with an ingest message (models.message)",
            ["model", "message"],
            [list(r) for r in data.messages],
            "Models recorded with zero filters stay in the lake (and in the counts above) but take no "
            "part in the analysis.",
        ),
    ]


def frozen_note(models: list[ModelInfo]) -> Para | None:
    """Which models hold frozen 3x3 layers: their filters come from a pretraining, not their own data."""
    frozen = [m for m in models if m.n_frozen]
    if not frozen:
        return None
    named = "; ".join(f"{m.label} ({m.n_frozen} of {m.n_layers} 3x3 layers)" for m in frozen)
    return Para(
        f"Frozen 3x3 layers (trainable = false in the checkpoint's own config) in {plural(len(frozen), 'model')}: "
        f"{named}. Those filters are a pretrained backbone's, never updated on the model's own training "
        "data: they show what the pretraining learned, whatever the model's task, and the domain label says "
        "which data the filters saw where the catalog knows it (layers.trainable in SQL)."
    )


def duplicates_blocks(data: ReportData) -> list:
    """The weight sets counted once, as the analysis merged them (derived/duplicates.py)."""
    sets = data.analysis.duplicates
    if not sets:
        return []
    merged = sum(len(d.merged) for d in sets)
    differ = [d for d in sets if d.labels_differ]
    return [
        Para(
            f"Identical weights count once: {plural(len(sets), 'set')} of models hold identical 3x3 filters (the same "
            f"models.weights_sha256, whatever the file format or bytes), so the analysis keeps one model of "
            f"each set (the smallest model_id) and leaves the other {plural(merged, 'model')} out of the basis, the "
            f"histograms, the shifts and the tests; `--keep-duplicates` counts every model."
            + (
                f" {len(differ)} of the sets carry different domain labels: check their catalog."
                if differ
                else ""
            )
        ),
        Table(
            "duplicate_weights",
            "Models merged because their 3x3 filters are identical",
            ["kept model", "merged models", "formats", "filters", "labels differ"],
            [
                [
                    d.names[0],
                    "; ".join(d.names[1:]),
                    ", ".join(sorted(set(d.formats))),
                    d.n_filters,
                    "yes" if d.labels_differ else "no",
                ]
                for d in sets
            ],
            "From the duplicate_weights view; the merged models stay in the lake and in SQL.",
        ),
    ]


def render(data: ReportData, page: Page, s: Section) -> None:
    """Fill the section: what the lake holds."""
    models = data.models
    s.add(
        Para(
            f"{len(models)} models ({len(data.with_filters)} with 3x3 conv layers, "
            f"{sum(m.medical for m in models)} medical) in {len({m.domain for m in models})} domains: "
            f"{sum(m.n_layers for m in models):,} 3x3 conv layers holding {sum(m.n_filters for m in models):,} "
            f"3x3 filters, from {sum(m.file_bytes for m in models) / 1e6:,.1f} MB of checkpoints in "
            f"{len({m.format for m in models})} formats."
        )
    )
    s.add(*(page.table(b) if isinstance(b, Table) else b for b in duplicates_blocks(data)))
    if note := frozen_note(models):
        s.add(note)
    s.add(page.table(_models_table(models)), *map(page.table, _group_tables(models)))
    s.add(Para("What was skipped and why", "heading"))
    s.add(*(page.table(b) if isinstance(b, Table) else b for b in _skipped_tables(data)))
