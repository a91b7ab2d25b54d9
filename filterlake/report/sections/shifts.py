"""Pairwise distribution shifts: a heatmap per grouping and per architecture family (the medical
paper's Figure 3), read from the stored shifts and family_shifts tables; a grouping with more groups than a
heatmap shows legibly is listed as a table of its pairs instead."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.colors import to_hex

from filterlake.derived.comparisons import MIN_FAMILY_MODELS
from filterlake.derived.groupings import MODEL, UNKNOWN
from filterlake.report import figures
from filterlake.report.document import Page, Para, Section
from filterlake.report.facts import ReportData, ShiftMatrix
from filterlake.report.figures import HEATMAP_MAX
from filterlake.report.tables import Table, matrix_table
from filterlake.report.text import depth_sources, slug

ID, TITLE = "shifts", "Pairwise distribution shifts"
GUIDE = (
    "How far apart the filter distributions of two groups are: darker = more similar, brighter = more "
    "different (D = 0 on the diagonal); rows are sorted by ascending column mean, so outliers end up at "
    "the bottom right."
)


def pairs_table(name: str, title: str, axis: str, m: ShiftMatrix, note: str) -> Table:
    """Every unordered pair of groups once, the largest D first (what replaces a too large heatmap)."""
    n = len(m.labels)
    pairs = [(m.labels[i], m.labels[j], float(m.matrix[i, j])) for i in range(n) for j in range(i + 1, n)]
    pairs.sort(key=lambda p: (-p[2] if p[2] == p[2] else float("inf"), p[0], p[1]))
    models = {g: m.sizes[g][0] if g in m.sizes else None for g in m.labels}
    return Table(
        f"{name}_pairs",
        title,
        [f"{axis} A", f"{axis} B", "D (nats)", "models A", "models B"],
        [[a, b, d, models[a], models[b]] for a, b, d in pairs],
        note,
        {"D (nats)": ".4f"},
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
    scale: float,
) -> list:
    """The figure (or, above HEATMAP_MAX groups, the sorted table of pairs) and the matrix table of one heatmap,
    drawn on the page's one colour scale (0 to ``scale``)."""
    if len(m.labels) > HEATMAP_MAX:
        shown_as = [
            Para(
                f"{len(m.labels)} groups are more than a heatmap shows legibly (at most {HEATMAP_MAX}): "
                "instead of a heatmap, every pair is listed below, the largest D first.",
                "note",
            ),
            page.table(
                pairs_table(
                    f"shift_{name}",
                    f"{title}: every pair, largest D first",
                    axis,
                    m,
                    "D in nats; models = the models of each group. The full matrix is in the table below.",
                )
            ),
        ]
    else:
        path = figures.heatmap(page.out / f"fig_shift_{name}.png", shown, m.matrix, title, axis, vmax=scale)
        shown_as = [page.figure(path, caption, alt)]
    return [*shown_as, page.table(matrix_table(f"shift_{name}", table_title, m.labels, m.matrix, note))]


def _all_models(data: ReportData, page: Page, scale: float) -> list:
    """Every pair of models, clustered, with a domain and a family colour bar: which models sit together?"""
    m = data.models_matrix
    if m is None or len(m.labels) < 3:
        return []
    info = {x.label: x for x in data.models}
    domains = [info[g].domain if g in info else UNKNOWN for g in m.labels]
    families = [info[g].family if g in info else UNKNOWN for g in m.labels]
    palette = matplotlib.colormaps["tab20"].colors
    family_colours = {f: to_hex(palette[i % len(palette)]) for i, f in enumerate(sorted(set(families)))}
    bars = {
        "domain": (domains, figures.domain_colours(sorted(set(domains)))),
        "family": (families, family_colours),
    }
    path = figures.clustered_heatmap(
        page.out / "fig_shift_models_clustered.png", m.labels, m.matrix, bars, scale
    )
    return [
        Para("Every model against every other, clustered", "heading"),
        page.figure(
            path,
            f"Shift D between every pair of the {len(m.labels)} models, rows and columns in the order of an "
            "average-linkage hierarchical clustering of D, with each model's domain and architecture family as "
            "colour bars: models that cluster by domain across families point to a domain effect, models that "
            "cluster by family to an architecture effect. The matrix is the `model` rows of the shifts table"
            + (
                "."
                if len(m.labels) <= figures.LABELLED_ROWS
                else f" (model names left off past {figures.LABELLED_ROWS} models; that table names them)."
            ),
            "clustered heatmap of the pairwise shifts between models with domain and family colour bars",
        ),
    ]


def page_scale(data: ReportData) -> float:
    """The top of the one colour scale every heatmap of the page shares: the largest D any of them shows."""
    shown = (*data.shifts.values(), *data.families.values(), data.models_matrix)
    matrices = [m.matrix for m in shown if m is not None]
    finite = [float(np.nanmax(np.where(np.isfinite(x), x, np.nan))) for x in matrices if np.isfinite(x).any()]
    return max(finite, default=1.0) or 1.0


def _grouping(
    data: ReportData, page: Page, column: str, m: ShiftMatrix | None, summary: list[list], scale: float
) -> list:
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
    extra = ""
    if column == "depth_decile":  # depth stays in its natural order (as in the papers)
        shown, order = m.labels, "in depth order, unsorted as in the papers"
        axis = "relative depth decile (conv_depth_norm)"
        extra = " " + depth_sources(x.depth_source for x in data.with_filters)
    elif column == MODEL:  # one model per group: no counts in brackets
        shown, order, axis = m.labels, "sorted by ascending column mean", column
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
            f"Pairwise shift D between {column} groups ({order}); colour and cell value = D in nats.{extra}",
            f"heatmap of pairwise shifts by {column}",
            "Row order as in the figure.",
            f"Shift matrix by {column} (D, nats)",
            scale,
        ),
    ]


def _family(page: Page, family: str, m: ShiftMatrix, scale: float) -> list:
    return _heatmap(
        page,
        f"family_{slug(family)}",
        m.labels,
        m,
        f"Shift D between the {family} models",
        "model",
        f"Shift D between the {len(m.labels)} models of the {family} family (sorted by ascending column mean).",
        f"heatmap of pairwise shifts between {family} models",
        "Rows are model names; D between single models.",
        f"Shift matrix of the {family} models (D, nats)",
        scale,
    )


def render(data: ReportData, page: Page, s: Section) -> None:
    """Fill the section: the heatmaps of the requested groupings and of the models within each family."""
    a = data.analysis
    s.add(
        Para(
            "D is the weighted sum over the 9 components of the symmetric KL divergence between the "
            f"groups' coefficient histograms ({a.spec.bins} bins over ({a.spec.lo:g}, {a.spec.hi:g}), "
            f"{a.preset.weights} weights, empty bins floored at float32 eps on the densities; methods §5). "
            "Filters are pooled per group. Values are read from the lake's stored shifts table. A heatmap "
            f"shows at most {HEATMAP_MAX} groups; a grouping with more is listed as a table of its pairs."
        )
    )
    summary: list[list] = []
    scale = page_scale(data)
    s.add(
        Para(
            f"Every heatmap on this page shares one colour scale, from 0 to {scale:.3g} nats (the largest D any "
            "of them shows), so equal colours mean equal D in every figure.",
            "note",
        )
    )
    for column in data.group_by:
        s.add(*_grouping(data, page, column, data.shifts[column], summary, scale))
    s.add(*_all_models(data, page, scale))
    families = sorted(f for f in data.families if f != UNKNOWN)
    s.add(Para("Models within each architecture family", "heading"))
    s.add(
        Para(
            "Within one family the architecture is (nearly) fixed, so these shifts show how much training "
            f"data, task and training run alone move the filter distribution. {len(families)} families have "
            f"at least {MIN_FAMILY_MODELS} models with 3x3 filters{': ' + ', '.join(families) if families else ''}."
        )
    )
    unknown = sum(m.family == UNKNOWN for m in data.with_filters)
    if unknown:
        s.add(
            Para(
                f"{unknown} model{' has' if unknown == 1 else 's have'} no architecture in the metadata: not a "
                "family, so no within-family heatmap is drawn for them.",
                "note",
            )
        )
    for family in families:
        s.add(*_family(page, family, data.families[family], scale))
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
