"""`build`: run the incremental analysis, then write index.html, summary.md, figures, tables."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from filterlake import __version__
from filterlake.derived.analyze import Analysis, analyze
from filterlake.derived.histograms import KDE_SPEC
from filterlake.derived.shifts import GroupedCounts, grouped_counts, permutation, shift_table
from filterlake.errors import FilterlakeError
from filterlake.lake.duck import connect
from filterlake.numeric.params import DEFAULT_QUALITY, QualityParams
from filterlake.numeric.shift import shift
from filterlake.report import data, figures
from filterlake.report.document import Bullets, Figure, Para, Section, render_html, render_markdown
from filterlake.report.tables import Table, matrix_table
from filterlake.report.verdict import ALPHA, GroupFacts, medical_verdict

TITLE = "filterlake report: trained 3x3 convolution filters"
SHIFT_LABEL = "shift D (symmetric KL, nats)"
BINARY_TOP = 3


@dataclass
class Report:
    """What was written, plus the key numbers for a one-screen summary."""

    index: Path
    summary: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Context:
    con: duckdb.DuckDBPyConnection
    analysis: Analysis
    out: Path
    models: list[data.ModelInfo]
    colours: dict[str, str]
    permutations: int
    seed: int
    group_by: tuple[str, ...]
    figures: list[Path] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def figure(self, path: Path, caption: str, alt: str) -> Figure:
        self.figures.append(path)
        return Figure(path.name, caption, alt)

    def table(self, table: Table) -> Table:
        if any(t.name == table.name for t in self.tables):
            raise ValueError(f"duplicate table name {table.name}")
        self.tables.append(table)
        return table

    @property
    def with_filters(self) -> list[data.ModelInfo]:
        return [m for m in self.models if m.n_filters > 0]


def build(
    lake: Path,
    out: Path,
    group_by: tuple[str, ...] | list[str] = ("domain",),
    preset: str = "medical",
    permutations: int = 2000,
    *,
    basis_on: str | None = None,
    params: QualityParams = DEFAULT_QUALITY,
    seed: int = 0,
    on_stage: Callable[[str, int], None] | None = None,
    on_model: Callable[[str], None] | None = None,
) -> Report:
    """Write OUT/index.html (PNG figures beside it), OUT/summary.md and OUT/tables/*.csv.

    Runs `refresh` first (incremental: an unchanged lake reuses its stored statistics, basis and histograms)
    for the groupings in ``group_by`` plus ``medical`` and ``name``, which the report always shows. Returns
    the written files and the key numbers.
    """
    start = time.perf_counter()
    lake, out = Path(lake), Path(out)
    if not (lake / "models").is_dir():
        raise FilterlakeError(f"{lake}: not a lake (no models/ folder); ingest some models first")
    if permutations < 1:
        raise FilterlakeError("--permutations must be at least 1")
    group_by = tuple(dict.fromkeys(group_by or ("domain",)))
    # a grouping without any label among the models with filters has nothing to compare (and refresh
    # cannot store an empty matrix): leave it out and say so in section 4
    base = connect(lake)
    wanted = tuple(dict.fromkeys((*group_by, "medical", "name")))
    usable = tuple(c for c in wanted if data.n_labels(base, c) > 0)
    analysis = analyze(
        lake,
        preset,
        usable,
        basis_on,
        params,
        on_stage,
        on_model,
    )
    if on_stage:
        on_stage("report", 6)
    con = connect(lake)
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    models = data.models(con)
    colours = figures.domain_colours([m.domain for m in models if m.n_filters], [m.domain for m in models])
    ctx = Context(con, analysis, out, models, colours, permutations, seed, group_by)
    sections = []
    for make in (
        section_glance,
        section_basis,
        section_distributions,
        section_shifts,
        section_medical,
        section_quality,
    ):
        sections.append(make(ctx))
        if on_model:
            on_model(make.__name__)
    meta = _meta(lake, analysis, ctx)
    index = out / "index.html"
    index.write_text(render_html(TITLE, meta, sections), encoding="utf-8")
    summary = out / "summary.md"
    summary.write_text(render_markdown(TITLE, meta, sections), encoding="utf-8")
    csvs = [t.write_csv(out / "tables") for t in ctx.tables]
    return Report(index, summary, ctx.figures, csvs, ctx.numbers, time.perf_counter() - start)


def _clean(out: Path) -> None:
    """Remove the figures and tables of an earlier report in OUT (nothing else)."""
    for old in [*out.glob("fig_*.png"), *(out / "tables").glob("*.csv")]:
        old.unlink()


def _meta(lake: Path, analysis: Analysis, ctx: Context) -> list[str]:
    spec, basis = analysis.spec, analysis.basis
    return [
        (
            f"Lake {lake.resolve()} · generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · filterlake "
            f"{__version__}"
        ),
        (
            f"{len(ctx.models)} models · basis {analysis.basis_id} fitted on N = {basis.n:,} filters · "
            f"preset {analysis.preset.name}: {spec.bins} bins over ({spec.lo:g}, {spec.hi:g}), "
            f"{analysis.preset.weights} component weights, {spec.subset} filters"
        ),
        (
            f"Analysis: layer statistics {analysis.stats.get('computed', 0)} models computed / "
            f"{analysis.stats.get('reused', 0)} reused; histograms {analysis.histograms.get('computed', 0)} "
            f"computed / {analysis.histograms.get('reused', 0)} reused"
        ),
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def _labels_with_models(labels: list[str], sizes: dict[str, tuple[int, int]]) -> list[str]:
    return [f"{g} ({sizes[g][0]})" if g in sizes else g for g in labels]


# ================================================================ 1. the lake at a glance


def _count_rows(models: list[data.ModelInfo], key: Callable[[data.ModelInfo], str]) -> list[list]:
    groups: dict[str, list[data.ModelInfo]] = defaultdict(list)
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


def section_glance(ctx: Context) -> Section:
    models = ctx.models
    n_layers = sum(m.n_layers for m in models)
    n_filters = sum(m.n_filters for m in models)
    n_bytes = sum(m.file_bytes for m in models)
    domains = {m.domain for m in models}
    s = Section(
        "glance",
        "1. The lake at a glance",
        "What the lake holds: how many models, 3x3 layers and filters per domain, task, format and "
        "architecture family, and what was left out; click a column header to sort a table.",
    )
    ctx.numbers.update(models=len(models), layers=n_layers, filters=n_filters)
    s.add(
        Para(
            f"{len(models)} models ({len(ctx.with_filters)} with 3x3 conv layers, "
            f"{sum(m.medical for m in models)} medical) in {len(domains)} domains: {n_layers:,} 3x3 conv "
            f"layers holding {n_filters:,} 3x3 filters, from {n_bytes / 1e6:,.1f} MB of checkpoints in "
            f"{len({m.format for m in models})} formats."
        )
    )
    s.add(
        ctx.table(
            Table(
                "models",
                "Models",
                [
                    "model",
                    "domain",
                    "task",
                    "architecture family",
                    "format",
                    "3x3 layers",
                    "filters",
                    "file MB",
                    "model_id",
                ],
                [
                    [
                        m.name,
                        m.domain,
                        m.task,
                        m.family,
                        m.format,
                        m.n_layers,
                        m.n_filters,
                        m.file_bytes / 1e6,
                        m.model_id[:12],
                    ]
                    for m in models
                ],
                "One row per model; 3x3 layers and filters are counted in the layers table.",
                {"file MB": ".2f"},
            )
        )
    )
    columns = ["models", "3x3 layers", "filters", "filters %"]
    fmt = {"filters %": ".1f"}
    s.add(
        ctx.table(
            Table(
                "by_domain",
                "Models by domain",
                ["domain", *columns],
                _count_rows(models, lambda m: m.domain),
                "",
                fmt,
            )
        )
    )
    kinds = {m.task: data.task_kind(m.task) for m in models}
    task_rows = [[kinds[r[0]], *r] for r in _count_rows(models, lambda m: m.task)]
    task_rows.sort(key=lambda r: (r[0], -r[2], r[1]))
    s.add(
        ctx.table(
            Table(
                "by_task",
                "Models by task",
                ["task kind", "task", *columns],
                task_rows,
                "Task as catalogued (free text); the task kind is a keyword rule (segment, detect, "
                "super-res, recogn, classif) used again in section 5.",
                fmt,
            )
        )
    )
    s.add(
        ctx.table(
            Table(
                "by_format",
                "Models by checkpoint format",
                ["format", *columns],
                _count_rows(models, lambda m: m.format),
                "",
                fmt,
            )
        )
    )
    fam_rows = _count_rows(models, lambda m: m.family)
    archs = defaultdict(set)
    for m in models:
        archs[m.family].add(m.architecture)
    s.add(
        ctx.table(
            Table(
                "by_architecture",
                "Models by architecture family",
                ["family", *columns, "architectures"],
                [[*r, "; ".join(sorted(archs[r[0]]))] for r in fam_rows],
                "The family is the first word of the catalogued architecture without its version or size "
                "(ResNet-20 and ResNet-56 are ResNet; UNet2d is UNet; ESPNetv2 is ESPNet).",
                fmt,
            )
        )
    )
    # what was skipped
    s.add(Para("What was skipped and why", "heading"))
    skipped = data.rows(ctx.con, "SELECT name, model_id, reason, n FROM skipped_layers ORDER BY reason, name")
    by_reason: dict[str, list] = defaultdict(list)
    for name, model_id, reason, n in skipped:
        by_reason[reason].append((name, n))
    s.add(
        Para(
            f"Only 2-D convolutions with a 3x3 kernel are stored. {sum(r[3] for r in skipped):,} other conv "
            f"layers in {len({r[1] for r in skipped})} models were counted and left out."
        )
    )
    s.add(
        ctx.table(
            Table(
                "skipped_by_reason",
                "Skipped conv layers by reason",
                ["reason", "what", "models", "layers"],
                [
                    [
                        reason.removeprefix("skipped_"),
                        data.SKIP_REASONS.get(reason, reason),
                        len(items),
                        sum(n for _, n in items),
                    ]
                    for reason, items in sorted(by_reason.items())
                ],
            )
        )
    )
    s.add(
        ctx.table(
            Table(
                "skipped_layers",
                "Skipped conv layers per model",
                ["model", "reason", "layers"],
                [[name, reason.removeprefix("skipped_"), n] for name, _, reason, n in skipped],
                "From the skipped_layers view.",
                collapsed=True,
            )
        )
    )
    messages = data.rows(
        ctx.con, "SELECT name, message FROM models WHERE message IS NOT NULL AND message <> '' ORDER BY name"
    )
    s.add(
        ctx.table(
            Table(
                "model_messages",
                "Models with an ingest message (models.message)",
                ["model", "message"],
                [list(r) for r in messages],
                "Models recorded with zero filters stay in the lake (and in the counts above) but take no "
                "part in the analysis.",
            )
        )
    )
    return s


# ================================================================ 2. the basis


def section_basis(ctx: Context) -> Section:
    basis = ctx.analysis.basis
    info = data.rows(
        ctx.con, "SELECT selection, subset, n_models FROM basis WHERE basis_id = ?", [ctx.analysis.basis_id]
    )
    selection, subset, n_models = info[0] if info else ("all models", "all", len(ctx.with_filters))
    s = Section(
        "basis",
        "2. The basis",
        "The 9 principal directions of the filters (each filter divided by its own max |w|): bars show how "
        "much of the variance each direction explains, the images what each direction looks like.",
    )
    cum = np.cumsum(basis.evr)
    s.add(
        Para(
            f"Basis {ctx.analysis.basis_id}: a centred PCA fitted on N = {basis.n:,} filters of {n_models} "
            f"models (selection: {selection}; filters: {subset}). The first component explains "
            f"{basis.evr[0] * 100:.1f}% of the variance, the first three {cum[2] * 100:.1f}%. Sign rule: "
            f"{basis.sign_rule} (each component is flipped so that its largest-|loading| entry is positive; "
            "signs do not affect D)."
        )
    )
    s.add(
        ctx.figure(
            figures.evr_chart(ctx.out / "fig_basis_evr.png", basis.evr),
            "Explained-variance ratio of each basis component (bars, %) and the cumulative share (line); N "
            f"= {basis.n:,} filters.",
            "bar chart of explained variance per component",
        )
    )
    s.add(
        ctx.figure(
            figures.basis_images(ctx.out / "fig_basis_vectors.png", basis.components, basis.evr, basis.mean),
            "The mean filter μ and the basis vectors v0…v8 as 3x3 images (row-major), diverging colour map "
            "with symmetric limits; a coefficient c_k = (f̃ − μ)·v_k measures how much of v_k a scaled "
            "filter f̃ contains.",
            "the nine basis vectors drawn as 3x3 images",
        )
    )
    rows = [["mean μ", None, None, None, *basis.mean.tolist()]]
    rows += [
        [
            f"v{k}",
            float(basis.evr[k]),
            float(cum[k]),
            float(basis.explained_variance[k]),
            *basis.components[k].tolist(),
        ]
        for k in range(9)
    ]
    weights = [f"w{j} (r{j // 3}c{j % 3})" for j in range(9)]
    s.add(
        ctx.table(
            Table(
                "basis",
                "Basis vectors and explained variance",
                ["component", "EVR", "cumulative EVR", "explained variance", *weights],
                rows,
                "Loadings in row-major order (w0 = top left, w4 = centre, w8 = bottom right).",
                {
                    "EVR": ".4f",
                    "cumulative EVR": ".4f",
                    "explained variance": ".5f",
                    **{w: ".3f" for w in weights},
                },
            )
        )
    )
    ctx.numbers["basis_n"] = basis.n
    ctx.numbers["evr"] = basis.evr.tolist()
    return s


# ================================================================ 3. coefficient distributions


def section_distributions(ctx: Context) -> Section:
    spec = KDE_SPEC
    edges = np.linspace(spec.lo, spec.hi, spec.bins + 1)
    s = Section(
        "distributions",
        "3. Coefficient distributions",
        "How the filters of each model and each domain spread along each basis direction: one ridge per "
        "model or domain in each of the 9 component panels; ridges of different shape mean different "
        "filters.",
    )
    ids, counts = data.kde_counts(ctx.con, ctx.analysis.basis_id, spec)
    if not ids:
        s.add(Para("No stored histograms for this basis: nothing to draw.", "warning"))
        return s
    by_id = {m.model_id: m for m in ctx.models}
    order = sorted(range(len(ids)), key=lambda i: (by_id[ids[i]].domain, by_id[ids[i]].name, ids[i]))
    counts = counts[order]
    chosen = [by_id[ids[i]] for i in order]
    centres, dens, _bws = data.kde_curves(counts, edges)
    domains_used = list(dict.fromkeys(m.domain for m in chosen))
    legend = {d: ctx.colours[d] for d in domains_used}
    total = counts[:, 0].sum()
    outside = counts[:, :, (centres < -3) | (centres > 3)].sum() / max(counts.sum(), 1)
    s.add(
        Para(
            f"Kernel density estimates from the stored fine histograms ({spec.bins} bins over ({spec.lo:g}, "
            f"{spec.hi:g}), bin width {edges[1] - edges[0]:.3f}) by a binned Gaussian KDE with Silverman's "
            "bandwidth (KDEpy's rule; at least one bin width). Drawn over (−3, 3) as in the medical paper; "
            f"{outside * 100:.3f}% of all {total:,} × 9 coefficients lie outside it. The x axis is the "
            "coefficient (dimensionless: filters are scaled to max |w| = 1)."
        )
    )
    s.add(
        ctx.figure(
            figures.ridges(
                ctx.out / "fig_kde_models.png",
                [data.short(m.name) for m in chosen],
                [ctx.colours[m.domain] for m in chosen],
                centres,
                dens,
                ctx.analysis.basis.evr,
                legend,
            ),
            f"Coefficient distributions per model ({len(chosen)} models with 3x3 filters, sorted by "
            "domain): one ridge per model, one panel per component c0…c8; each ridge is scaled to its own "
            "peak; colour = domain.",
            "ridge plots of coefficient densities per model",
        )
    )
    groups = defaultdict(list)
    for i, m in enumerate(chosen):
        groups[m.domain].append(i)
    dom = sorted(groups)
    dom_counts = np.stack([counts[groups[d]].sum(axis=0) for d in dom])
    _, dom_dens, _ = data.kde_curves(dom_counts, edges)
    s.add(
        ctx.figure(
            figures.ridges(
                ctx.out / "fig_kde_domains.png",
                [f"{d} ({len(groups[d])})" for d in dom],
                [ctx.colours[d] for d in dom],
                centres,
                dom_dens,
                ctx.analysis.basis.evr,
                {d: ctx.colours[d] for d in dom},
            ),
            "Coefficient distributions per domain (all filters of the domain's models pooled; the number of "
            "models in brackets); each ridge scaled to its own peak.",
            "ridge plots of coefficient densities per domain",
        )
    )
    std = data.component_std(dom_counts, edges)
    comp = [f"std c{k}" for k in range(9)]
    s.add(
        ctx.table(
            Table(
                "coefficient_spread_by_domain",
                "Spread of the coefficients per domain",
                ["domain", "models", "filters", *comp],
                [
                    [d, len(groups[d]), int(dom_counts[i, 0].sum()), *std[i].tolist()]
                    for i, d in enumerate(dom)
                ],
                "Standard deviation of each coefficient (from the fine histogram); a larger spread in the "
                "minor components c3…c8 means more varied, less smooth filters.",
                {c: ".3f" for c in comp},
            )
        )
    )
    std_m = data.component_std(counts, edges)
    s.add(
        ctx.table(
            Table(
                "coefficient_spread_by_model",
                "Spread of the coefficients per model",
                ["model", "domain", "filters", *comp],
                [
                    [m.name, m.domain, int(counts[i, 0].sum()), *std_m[i].tolist()]
                    for i, m in enumerate(chosen)
                ],
                "",
                {c: ".3f" for c in comp},
                collapsed=True,
            )
        )
    )
    return s


# ================================================================ 4. pairwise shifts


def _offdiag(matrix: np.ndarray) -> np.ndarray:
    values = matrix[np.triu_indices(len(matrix), 1)]
    return values[np.isfinite(values)]


def _decile_key(label: str) -> float:
    found = re.findall(r"[\d.]+", label)
    return float(found[0]) if found else float("inf")


def section_shifts(ctx: Context) -> Section:
    a = ctx.analysis
    s = Section(
        "shifts",
        "4. Pairwise distribution shifts",
        "How far apart the filter distributions of two groups are: darker = more similar, brighter = more "
        "different (D = 0 on the diagonal); rows are sorted by ascending column mean, so outliers end up at "
        "the bottom right.",
    )
    s.add(
        Para(
            "D is the weighted sum over the 9 components of the symmetric KL divergence between the "
            f"groups' coefficient histograms ({a.spec.bins} bins over ({a.spec.lo:g}, {a.spec.hi:g}), "
            f"{a.preset.weights} weights, empty bins floored at float32 eps on the densities; methods §5). "
            "Filters are pooled per group. Values are read from the lake's stored shifts table."
        )
    )
    summary = []
    for column in ctx.group_by:
        if column not in a.shifts:
            s.add(Para(f"By {column}", "heading"))
            s.add(
                Para(
                    f"No model with 3x3 filters has a value for {column!r} (not a models column or metadata "
                    "key of these models?): no heatmap.",
                    "warning",
                )
            )
            continue
        labels, matrix, sizes = data.stored_shift_matrix(ctx.con, a.shifts[column])
        if column == "depth_decile":  # depth stays in its natural order (as in the papers)
            order = sorted(range(len(labels)), key=lambda i: _decile_key(labels[i]))
            labels, matrix = [labels[i] for i in order], matrix[np.ix_(order, order)]
            shown = labels
            sorted_note = "in depth order, unsorted as in the papers"
        else:
            shown = _labels_with_models(labels, sizes)
            sorted_note = "sorted by ascending column mean; number of models in brackets"
        slug = _slug(column)
        s.add(Para(f"By {column}", "heading"))
        if len(labels) < 2:
            s.add(Para(f"Only {len(labels)} group for {column}: no pairs to compare.", "note"))
            continue
        axis = "relative depth decile (conv_depth_norm)" if column == "depth_decile" else column
        s.add(
            ctx.figure(
                figures.heatmap(
                    ctx.out / f"fig_shift_{slug}.png", shown, matrix, f"Pairwise shift D by {column}", axis
                ),
                f"Pairwise shift D between {column} groups ({sorted_note}); colour and cell value = D in "
                "nats.",
                f"heatmap of pairwise shifts by {column}",
            )
        )
        s.add(
            ctx.table(
                matrix_table(
                    f"shift_{slug}",
                    f"Shift matrix by {column} (D, nats)",
                    labels,
                    matrix,
                    "Row order as in the figure.",
                )
            )
        )
        off = _offdiag(matrix)
        summary.append([column, "all", len(labels), float(np.median(off)), float(off.max())])
        if column == "domain":
            ctx.numbers["domain_shift_max"] = float(off.max())
    # architecture families with >= 2 models: the per-model (name) shifts of that family
    grouped = grouped_counts(ctx.con, a.basis_id, a.spec, "name")
    family_of: dict[str, set[str]] = defaultdict(set)
    for m in ctx.with_filters:
        family_of[m.name].add(m.family)
    members: dict[str, list[str]] = defaultdict(list)
    for name in grouped.labels:
        if len(family_of.get(name, ())) == 1:
            members[next(iter(family_of[name]))].append(name)
    families = sorted(f for f, names in members.items() if len(names) >= 2)
    s.add(Para("Models within each architecture family", "heading"))
    s.add(
        Para(
            "Within one family the architecture is (nearly) fixed, so these shifts show how much training "
            f"data, task and training run alone move the filter distribution. {len(families)} families have "
            f"at least 2 models with 3x3 filters{': ' + ', '.join(families) if families else ''}."
        )
    )
    index = {g: i for i, g in enumerate(grouped.labels)}
    for family in families:
        idx = [index[n] for n in members[family]]
        sub = GroupedCounts(
            [grouped.labels[i] for i in idx],
            grouped.counts[idx],
            grouped.n_filters[idx],
            grouped.n_models[idx],
        )
        labels, matrix = shift_table(sub, a.spec, a.weights())
        slug = f"family_{_slug(family)}"
        s.add(
            ctx.figure(
                figures.heatmap(
                    ctx.out / f"fig_shift_{slug}.png",
                    [data.short(n) for n in labels],
                    matrix,
                    f"Shift D between the {family} models",
                    "model",
                ),
                f"Shift D between the {len(labels)} models of the {family} family (sorted by ascending "
                "column mean).",
                f"heatmap of pairwise shifts between {family} models",
            )
        )
        s.add(
            ctx.table(
                matrix_table(
                    f"shift_{slug}",
                    f"Shift matrix of the {family} models (D, nats)",
                    labels,
                    matrix,
                    "Rows are model names; D between single models.",
                )
            )
        )
        off = _offdiag(matrix)
        summary.append([f"{family} models", "family", len(labels), float(np.median(off)), float(off.max())])
    s.add(
        ctx.table(
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
    return s


# ================================================================ 5. medical vs non-medical


def _facts(models: list[data.ModelInfo]) -> GroupFacts:
    largest = max(models, key=lambda m: m.n_filters)
    total = sum(m.n_filters for m in models) or 1
    return GroupFacts(
        len(models),
        total,
        largest.name,
        largest.n_filters / total,
        dict(Counter(data.task_kind(m.task) for m in models)),
        dict(Counter(m.family for m in models)),
    )


def _duplicate_pairs(ctx: Context) -> int:
    if "name" not in ctx.analysis.shifts:
        return 0
    _labels, matrix, _ = data.stored_shift_matrix(ctx.con, ctx.analysis.shifts["name"])
    return int(np.count_nonzero(np.triu(matrix <= 1e-12, 1) & np.isfinite(matrix)))


def section_medical(ctx: Context) -> Section:
    a = ctx.analysis
    s = Section(
        "medical",
        "5. Medical vs non-medical",
        "Do medical-imaging models learn different filters? The shift between the two groups, whether it "
        "exceeds what shuffling the models' labels gives, and what that does and does not mean.",
    )
    medical = [m for m in ctx.with_filters if m.medical]
    other = [m for m in ctx.with_filters if not m.medical]
    if not medical or not other:
        s.add(
            Para(
                f"The lake has {len(medical)} medical and {len(other)} non-medical models with 3x3 filters: "
                "the comparison needs both.",
                "warning",
            )
        )
        return s
    labels, matrix, _sizes = data.stored_shift_matrix(ctx.con, a.shifts["medical"])
    stored = float(matrix[labels.index("medical"), labels.index("non-medical")])
    result = permutation(
        ctx.con,
        a.basis_id,
        a.spec,
        "medical",
        "medical",
        "non-medical",
        a.weights(),
        ctx.permutations,
        ctx.seed,
    )
    ci = (result.ci_low, result.ci_high)
    med_f, oth_f = _facts(medical), _facts(other)
    duplicates = _duplicate_pairs(ctx)
    headline, supported, unsupported = medical_verdict(
        stored,
        result.p_value,
        ci,
        result.null_mean,
        result.null_q95,
        result.n_permutations,
        med_f,
        oth_f,
        duplicates,
    )
    ctx.numbers.update(
        medical_shift=stored,
        medical_p=result.p_value,
        medical_ci=ci,
        medical_models=len(medical),
        other_models=len(other),
        verdict=headline,
    )
    s.add(Para(headline, "verdict"))
    s.add(
        Para(
            f"Medical = domain starting with 'medical' ({', '.join(sorted({m.domain for m in medical}))}); "
            "non-medical = every other model with 3x3 filters. The permutation test shuffles the group "
            f"labels of the {len(medical) + len(other)} models ({result.n_permutations:,} permutations, "
            f"seed {result.seed}) and recomputes D from the pooled histograms; p = (1 + #{{D_perm ≥ D}}) / "
            "(1 + permutations). The interval resamples models with replacement within each group "
            f"({result.n_boot:,} draws, percentile interval)."
        )
    )
    s.add(Para("What the data support", "heading"), Bullets(supported))
    s.add(Para("What they do not support", "heading"), Bullets(unsupported))
    s.add(
        ctx.figure(
            figures.null_distribution(
                ctx.out / "fig_medical_null.png", result.null, stored, ci, result.p_value, result.confidence
            ),
            "Null distribution of D when the medical/non-medical labels are shuffled across models, with "
            "the observed D (red) and its bootstrap interval (black).",
            "histogram of the permutation null distribution of D with the observed value",
        )
    )
    s.add(
        ctx.table(
            Table(
                "medical_test",
                "Medical vs non-medical: shift and tests",
                ["quantity", "value"],
                [
                    ["shift D (stored, nats)", stored],
                    ["shift D (test, nats)", result.observed],
                    ["permutation p-value", result.p_value],
                    ["permutations", result.n_permutations],
                    [f"bootstrap {round(result.confidence * 100)}% interval low", result.ci_low],
                    [f"bootstrap {round(result.confidence * 100)}% interval high", result.ci_high],
                    ["null mean D", result.null_mean],
                    ["null 95th percentile D", result.null_q95],
                    ["medical models", len(medical)],
                    ["non-medical models", len(other)],
                    ["medical filters", med_f.n_filters],
                    ["non-medical filters", oth_f.n_filters],
                    ["identical-distribution model pairs", duplicates],
                    ["significance level", ALPHA],
                ],
                "D (stored) is read from the shifts table; D (test) is recomputed from per-model histograms.",
            )
        )
    )
    s.add(
        ctx.table(
            Table(
                "medical_groups",
                "Who is in each group",
                [
                    "group",
                    "models",
                    "filters",
                    "largest model",
                    "its share of filters %",
                    "task kinds",
                    "families",
                ],
                [
                    [
                        g,
                        f.n_models,
                        f.n_filters,
                        f.largest_name,
                        100 * f.largest_share,
                        ", ".join(
                            f"{k} {v}"
                            for k, v in sorted(f.task_kinds.items(), key=lambda kv: (-kv[1], kv[0]))
                        ),
                        ", ".join(
                            f"{k} {v}" for k, v in sorted(f.families.items(), key=lambda kv: (-kv[1], kv[0]))
                        ),
                    ]
                    for g, f in (("medical", med_f), ("non-medical", oth_f))
                ],
                "The confounders: tasks and architectures are not balanced between the groups.",
                {"its share of filters %": ".1f"},
            )
        )
    )
    grouped = grouped_counts(ctx.con, a.basis_id, a.spec, "medical")
    i, j = grouped.labels.index("medical"), grouped.labels.index("non-medical")
    edges = np.linspace(a.spec.lo, a.spec.hi, a.spec.bins + 1)
    total, per_component = shift(grouped.counts[i], grouped.counts[j], edges, a.weights())
    weights = a.weights()
    s.add(
        ctx.figure(
            figures.component_bars(ctx.out / "fig_medical_components.png", per_component, weights),
            "Which basis components carry the shift: symmetric KL per component between the medical and "
            f"non-medical coefficient histograms, and its weighted contribution (sum = D = {total:.4f}).",
            "bar chart of the per-component divergence",
        )
    )
    s.add(
        ctx.table(
            Table(
                "medical_components",
                "Per-component divergence, medical vs non-medical",
                ["component", "KL_sym (nats)", "weight", "contribution to D"],
                [
                    [
                        f"c{k}",
                        float(per_component[k]),
                        float(weights[k]),
                        float(per_component[k] * weights[k]),
                    ]
                    for k in range(9)
                ],
                "",
                {"KL_sym (nats)": ".4f", "weight": ".4f", "contribution to D": ".4f"},
            )
        )
    )
    return s


# ================================================================ 6. layer quality


def _reason(layer: dict, params: dict[str, Any]) -> str:
    h, th, sp = layer["variance_entropy"], layer["entropy_threshold"], layer["sparsity"]
    reasons = []
    if h is not None and th is not None and h >= th - params["entropy_margin"]:
        reasons.append(f"random-like (H ≥ TH(n) − {params['entropy_margin']:g})")
    if h is not None and sp is not None and h < params["low_entropy"] and sp >= params["sparsity_threshold"]:
        reasons.append(
            f"sparse, low diversity (H < {params['low_entropy']:g}, S ≥ {params['sparsity_threshold']:g})"
        )
    return "; ".join(reasons) or "flagged"


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def section_quality(ctx: Context) -> Section:
    params = ctx.analysis.params.as_dict()
    s = Section(
        "quality",
        "6. Layer quality",
        "Signs of degenerated layers: many near-zero filters (sparsity), filters that are too alike or "
        "random-like (variance entropy H vs its random reference TH(n)), correlated output channels "
        "(orthogonality), and filters collapsed onto a few values (binary-like).",
    )
    layers = data.layer_quality(ctx.con)
    if not layers:
        s.add(Para("No layer statistics: nothing to show.", "warning"))
        return s
    by_model: dict[str, list[dict]] = defaultdict(list)
    for layer in layers:
        by_model[layer["model_id"]].append(layer)
    names = {m.model_id: m.name for m in ctx.models}
    order = sorted(by_model, key=lambda mid: (names.get(mid, mid), mid))
    series = []
    for mid in order:
        ls = sorted(by_model[mid], key=lambda r: (_nan(r["conv_depth_norm"]), r["layer_idx"]))
        series.append(
            (
                data.short(names.get(mid, mid), 40),
                np.array([_nan(r["conv_depth_norm"]) for r in ls]),
                np.array([_nan(r["sparsity"]) for r in ls]),
                np.array([_nan(r["variance_entropy_norm"]) for r in ls]),
                np.array([_nan(r["orthogonality"]) for r in ls]),
            )
        )
    n_deg = sum(bool(r["degenerated"]) for r in layers)
    ctx.numbers["degenerated_layers"] = n_deg
    s.add(
        Para(
            f"{len(layers):,} layers of {len(order)} models. Sparsity: share of filters whose every |w| is "
            f"below {params['eps']:g} × the layer's max |w|. H: base-10 entropy of the variance spectrum of "
            "the layer's raw filters (0 = all filters alike, log10 9 = 0.954 = all directions equal); "
            "TH(n): the entropy of n random filters, so H/TH(n) ≥ 1 means random-like. Orthogonality: 1 − "
            "mean |cosine| between output channels (1 = orthogonal). A layer is flagged degenerated when H "
            f"≥ TH(n) − {params['entropy_margin']:g} or (H < {params['low_entropy']:g} and S ≥ "
            f"{params['sparsity_threshold']:g}) (methods §6.6): {n_deg} of {len(layers)} layers."
        )
    )
    s.add(
        ctx.figure(
            figures.quality_by_depth(ctx.out / "fig_quality_depth.png", series),
            "Per-layer sparsity, H/TH(n) and orthogonality against relative depth; one line per model "
            "(legend below). The dashed line marks H = TH(n).",
            "line plots of layer quality metrics against relative depth per model",
        )
    )
    # per-model summary
    summary = []
    for mid in order:
        ls = by_model[mid]
        n = sum(r["n_filters"] for r in ls)
        summary.append(
            [
                names.get(mid, mid),
                len(ls),
                n,
                sum(r["n_sparse"] for r in ls) / n if n else float("nan"),
                float(np.nanmedian([_nan(r["variance_entropy_norm"]) for r in ls])),
                float(np.nanmedian([_nan(r["orthogonality"]) for r in ls])),
                sum(bool(r["degenerated"]) for r in ls),
            ]
        )
    s.add(
        ctx.table(
            Table(
                "quality_by_model",
                "Layer quality per model",
                [
                    "model",
                    "3x3 layers",
                    "filters",
                    "sparsity (all filters)",
                    "median H/TH(n)",
                    "median orthogonality",
                    "degenerated layers",
                ],
                summary,
                "Sparsity pooled over the model's filters; medians over its layers.",
                {"sparsity (all filters)": ".4f", "median H/TH(n)": ".3f", "median orthogonality": ".3f"},
            )
        )
    )
    # most degenerated layers
    flagged = [r for r in layers if r["degenerated"]]
    sparse_low = [r for r in flagged if "sparse" in _reason(r, params)]
    random_like = [r for r in flagged if "sparse" not in _reason(r, params)]
    sparse_low.sort(key=lambda r: (-_nan(r["sparsity"]), _nan(r["variance_entropy"])))
    random_like.sort(key=lambda r: -_nan(r["variance_entropy_norm"]))
    s.add(Para("The most degenerated layers", "heading"))
    s.add(
        ctx.table(
            Table(
                "degenerated_layers",
                f"Degenerated layers ({len(flagged)} of {len(layers)})",
                ["model", "layer", "n", "sparsity", "H", "TH(n)", "H/TH(n)", "orthogonality", "reason"],
                [
                    [
                        names.get(r["model_id"], r["model_id"]),
                        r["layer_name"],
                        r["n_filters"],
                        _nan(r["sparsity"]),
                        _nan(r["variance_entropy"]),
                        _nan(r["entropy_threshold"]),
                        _nan(r["variance_entropy_norm"]),
                        _nan(r["orthogonality"]),
                        _reason(r, params),
                    ]
                    for r in sparse_low + random_like
                ],
                "Sparse low-diversity layers first (by sparsity), then random-like layers (by H/TH(n)). n = "
                "filters in the layer.",
                {"sparsity": ".3f", "H": ".3f", "TH(n)": ".3f", "H/TH(n)": ".3f", "orthogonality": ".3f"},
            )
        )
    )
    # structured pruning
    s.add(Para("Structured pruning: how many filters are not near zero", "heading"))
    prune = []
    for mid in order:
        ls = by_model[mid]
        total = sum(r["n_filters"] for r in ls)
        kept = total - sum(r["n_sparse"] for r in ls)
        prune.append([names.get(mid, mid), total, kept, total - kept, 100.0 * kept / total if total else 0.0])
    prune.sort(key=lambda r: (r[4], r[0]))
    s.add(
        Para(
            "A filter is kept when at least one |w| reaches 1% of its layer's max |w| (the abs rule "
            "recommended in methods §6.1; the medical paper's ResNet50 kept ≈1% of its filters). Near-zero "
            "filters contribute little to a layer's output: they are what a structured pruning would drop."
        )
    )
    s.add(
        ctx.figure(
            figures.pruning_bars(
                ctx.out / "fig_pruning.png",
                [data.short(r[0], 40) for r in prune],
                np.array([r[2] for r in prune], float),
                np.array([r[1] for r in prune], float),
            ),
            "Kept (non-sparse) vs all 3x3 filters per model (log scale), lowest kept share at the top.",
            "bar chart of kept versus total filters per model",
        )
    )
    s.add(
        ctx.table(
            Table(
                "pruning",
                "Kept vs total filters per model",
                ["model", "filters", "kept", "sparse", "kept %"],
                prune,
                "",
                {"kept %": ".2f"},
            )
        )
    )
    # binary-like layers
    s.add(Para("Binary-like filters", "heading"))
    scored = [r for r in layers if r["binary_likeness"] is not None and np.isfinite(r["binary_likeness"])]
    scored.sort(key=lambda r: -r["binary_likeness"])
    passing = [r for r in scored if r["binary_like"]]
    threshold = params["binary_threshold"]
    if passing:
        shown = passing[:6]
        s.add(
            Para(
                f"{len(passing)} layers pass the binary-like flag (score ≥ {threshold:g}); the first "
                f"{len(shown)} are drawn."
            )
        )
    else:
        shown = scored[:BINARY_TOP]
        s.add(
            Para(
                f"No layer passes the binary-like flag (score ≥ {threshold:g}); the {len(shown)} layers "
                "with the highest binary-likeness are drawn instead, for comparison with the medical "
                "paper's Figure 2.",
                "note",
            )
        )
    ctx.numbers["binary_like_layers"] = len(passing)
    if shown:
        panels = [
            (
                "\n".join(
                    (
                        data.short(names.get(r["model_id"], r["model_id"]), 30),
                        data.short(r["layer_name"], 30),
                        f"binary-likeness {r['binary_likeness']:.2f}, {r['n_levels']} levels",
                    )
                ),
                data.first_filters(ctx.con, r["model_id"], r["layer_idx"]),
            )
            for r in shown
        ]
        s.add(
            ctx.figure(
                figures.filter_grids(ctx.out / "fig_binary_filters.png", panels),
                "The first 25 filters of each layer (5x5 grid, filter_idx order), each 3x3 filter divided "
                "by its own max |w|; binary-like filters show only the extreme colours and white.",
                "grids of 3x3 filters of the most binary-like layers",
            )
        )
    s.add(
        ctx.table(
            Table(
                "binary_like_layers",
                "Layers by binary-likeness (top 10)",
                ["model", "layer", "n", "binary-likeness", "levels", "flagged"],
                [
                    [
                        names.get(r["model_id"], r["model_id"]),
                        r["layer_name"],
                        r["n_filters"],
                        float(r["binary_likeness"]),
                        r["n_levels"],
                        bool(r["binary_like"]),
                    ]
                    for r in scored[:10]
                ],
                "Binary-likeness: share of a layer's scaled filter entries within 0.05 of −1, 0 or +1, "
                "rescaled so that Gaussian-random filters score ≈0 and exactly ternary ones 1; levels = "
                "distinct scaled values at 1/64 resolution.",
                {"binary-likeness": ".3f"},
            )
        )
    )
    return s
