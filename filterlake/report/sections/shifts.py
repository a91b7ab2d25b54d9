"""Pairwise distribution shifts: a heatmap per grouping and per architecture family (the medical
paper's Figure 3), read from the stored shifts and family_shifts tables."""

from __future__ import annotations

from filterlake.derived.comparisons import MIN_FAMILY_MODELS
from filterlake.report import figures
from filterlake.report.document import Page, Para, Section
from filterlake.report.facts import ReportData, ShiftMatrix
from filterlake.report.tables import Table, matrix_table
from filterlake.report.text import short, slug

ID, TITLE = "shifts", "Pairwise distribution shifts"
GUIDE = (
    "How far apart the filter distributions of two groups are: darker = more similar, brighter = more "
    "different (D = 0 on the diagonal); rows are sorted by ascending column mean, so outliers end up at "
    "the bottom right."
)


def _heatmap(
    page: Page,
    name: str,
    shown: list[str],
    m: ShiftMatrix,
    title: str,
    axis: str,
    caption: str,
    alt: str,
    note: str,
    table_title: str,
) -> list:
    """The figure and the matrix table of one heatmap."""
    path = figures.heatmap(page.out / f"fig_shift_{name}.png", shown, m.matrix, title, axis)
    return [
        page.figure(path, caption, alt),
        page.table(matrix_table(f"shift_{name}", table_title, m.labels, m.matrix, note)),
    ]


def _grouping(page: Page, column: str, m: ShiftMatrix | None, summary: list[list]) -> list:
    """The blocks of one grouping's heatmap (or why there is none); adds its row to ``summary``."""
    heading = Para(f"By {column}", "heading")
    if m is None:
        return [
            heading,
            Para(
                f"No model with 3x3 filters has a value for {column!r} (not a models column or metadata "
                "key of these models?): no heatmap.",
                "warning",
            ),
        ]
    if len(m.labels) < 2:
        return [heading, Para(f"Only {len(m.labels)} group for {column}: no pairs to compare.", "note")]
    if column == "depth_decile":  # depth stays in its natural order (as in the papers)
        shown, order = m.labels, "in depth order, unsorted as in the papers"
        axis = "relative depth decile (conv_depth_norm)"
    else:
        shown = [f"{g} ({m.sizes[g][0]})" if g in m.sizes else g for g in m.labels]
        order, axis = "sorted by ascending column mean; number of models in brackets", column
    summary.append([column, "all", len(m.labels), *m.spread()])
    return [
        heading,
        *_heatmap(
            page,
            slug(column),
            shown,
            m,
            f"Pairwise shift D by {column}",
            axis,
            f"Pairwise shift D between {column} groups ({order}); colour and cell value = D in nats.",
            f"heatmap of pairwise shifts by {column}",
            "Row order as in the figure.",
            f"Shift matrix by {column} (D, nats)",
        ),
    ]


def _family(page: Page, family: str, m: ShiftMatrix) -> list:
    return _heatmap(
        page,
        f"family_{slug(family)}",
        [short(n) for n in m.labels],
        m,
        f"Shift D between the {family} models",
        "model",
        f"Shift D between the {len(m.labels)} models of the {family} family (sorted by ascending column mean).",
        f"heatmap of pairwise shifts between {family} models",
        "Rows are model names; D between single models.",
        f"Shift matrix of the {family} models (D, nats)",
    )


def render(data: ReportData, page: Page, s: Section) -> None:
    """Fill the section: the heatmaps of the requested groupings and of the models within each family."""
    a = data.analysis
    s.add(
        Para(
            "D is the weighted sum over the 9 components of the symmetric KL divergence between the "
            f"groups' coefficient histograms ({a.spec.bins} bins over ({a.spec.lo:g}, {a.spec.hi:g}), "
            f"{a.preset.weights} weights, empty bins floored at float32 eps on the densities; methods §5). "
            "Filters are pooled per group. Values are read from the lake's stored shifts table."
        )
    )
    summary: list[list] = []
    for column in data.group_by:
        s.add(*_grouping(page, column, data.shifts[column], summary))
    families = sorted(data.families)
    s.add(Para("Models within each architecture family", "heading"))
    s.add(
        Para(
            "Within one family the architecture is (nearly) fixed, so these shifts show how much training "
            f"data, task and training run alone move the filter distribution. {len(families)} families have "
            f"at least {MIN_FAMILY_MODELS} models with 3x3 filters{': ' + ', '.join(families) if families else ''}."
        )
    )
    for family in families:
        s.add(*_family(page, family, data.families[family]))
        summary.append(
            [f"{family} models", "family", len(data.families[family].labels), *data.families[family].spread()]
        )
    s.add(
        page.table(
            Table(
                "shift_summary",
                "Shift summary: median and largest D per heatmap",
                ["heatmap", "kind", "groups", "median D", "max D"],
                summary,
                "Off-diagonal pairs only; compare the within-family values with the domain values.",
                {"median D": ".4f", "max D": ".4f"},
            )
        )
    )
