"""Layer quality: sparsity, variance entropy and orthogonality by depth, the most degenerated
layers, structured-pruning counts and the most binary-like layers (the medical paper's Figure 2).

Every threshold the prose states is the analysis's own (its QualityParams)."""

from __future__ import annotations

import numpy as np

from filterlake.numeric.params import QualityParams
from filterlake.report import figures, layer_figures
from filterlake.report.collect import BINARY_TABLE, FIRST_FILTERS
from filterlake.report.curves import DEPTH_BINS, depth_bands
from filterlake.report.document import Figure, Page, Para, Section
from filterlake.report.facts import Layer, Quality, ReportData, degenerated, nan
from filterlake.report.tables import Table
from filterlake.report.text import depth_sources, percent

# What "sparse" and "kept" mean under each sparsity rule, with {eps} the threshold and {share} it as a percentage.
SPARSE_RULE = {
    "abs-strict": "whose every |w| is below {eps} × the layer's max |w|",
    "p2-le": "whose largest |w| is at most {eps} × the layer's max |w|",
    "p3-signed": "whose largest signed weight is below {eps} × the layer's largest signed weight",
}
KEPT_RULE = {
    "abs-strict": "at least one |w| reaches {share} of its layer's max |w| (the abs rule recommended in methods §6.1",
    "p2-le": "its largest |w| exceeds {share} of its layer's max |w| (the P2 rule",
    "p3-signed": "its largest signed weight reaches {share} of its layer's largest signed weight (the P3 rule",
}
PAPER_KEPT = "the medical paper's ResNet50 kept ≈1% of its filters"  # a finding of the paper, not a parameter


ID, TITLE = "quality", "Layer quality"
GUIDE = (
    "Signs of degenerated layers: many near-zero filters (sparsity), filters that are too alike or "
    "random-like (variance entropy H vs its random reference TH(n)), correlated output channels "
    "(orthogonality), and filters collapsed onto a few values (binary-like)."
)


def reason(layer: Layer, p: QualityParams) -> str:
    """Why a layer is flagged degenerated, with the analysis's thresholds."""
    random_like, sparse_low = layer.degeneration(p)
    reasons = [f"random-like (H ≥ TH(n) − {p.entropy_margin:g})"] if random_like else []
    if sparse_low:
        reasons.append(f"sparse, low diversity (H < {p.low_entropy:g}, S ≥ {p.sparsity_threshold:g})")
    return "; ".join(reasons) or "flagged"


def _overview(q: Quality, p: QualityParams) -> Para:
    return Para(
        f"{len(q.layers):,} layers of {len(q.models)} models. Sparsity: share of filters "
        f"{SPARSE_RULE[p.rule].format(eps=f'{p.eps:g}')}. H: base-10 entropy of the variance spectrum of "
        "the layer's raw filters (0 = all filters alike, log10 9 = 0.954 = all directions equal); "
        "TH(n): the entropy of n random filters, so H/TH(n) ≥ 1 means random-like. Orthogonality: 1 − "
        "mean |cosine| between output channels (1 = orthogonal). A layer is flagged degenerated when H "
        f"≥ TH(n) − {p.entropy_margin:g} or (H < {p.low_entropy:g} and S ≥ {p.sparsity_threshold:g}) "
        f"(methods §6.6): {q.n_degenerated} of {len(q.layers)} layers."
        + (
            f" The untrained baselines are left out of this section: their filters are random by construction "
            f"({degenerated(q.baselines)} of their {len(q.baselines)} layers are flagged, as expected; section 7 "
            "reads each trained model against them)."
            if q.baselines
            else ""
        )
    )


def _by_model(q: Quality) -> Table:
    return Table(
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
        [
            [
                m.name,
                len(m.layers),
                m.n_filters,
                m.sparsity,
                m.median("variance_entropy_norm"),
                m.median("orthogonality"),
                m.n_degenerated,
            ]
            for m in q.models
        ],
        "Sparsity pooled over the model's filters; medians over its layers.",
        {"sparsity (all filters)": ".4f", "median H/TH(n)": ".3f", "median orthogonality": ".3f"},
    )


def _degenerated(q: Quality, p: QualityParams) -> Table:
    metrics = ("sparsity", "variance_entropy", "entropy_threshold", "variance_entropy_norm", "orthogonality")
    flagged = q.sparse_low + q.random_like
    return Table(
        "degenerated_layers",
        f"Degenerated layers ({len(flagged)} of {len(q.layers)})",
        ["model", "layer", "n", "sparsity", "H", "TH(n)", "H/TH(n)", "orthogonality", "reason"],
        [
            [r.model, r.layer_name, r.n_filters, *(nan(getattr(r, k)) for k in metrics), reason(r, p)]
            for r in flagged
        ],
        "Sparse low-diversity layers first (by sparsity), then random-like layers (by H/TH(n)). n = "
        "filters in the layer.",
        {"sparsity": ".3f", "H": ".3f", "TH(n)": ".3f", "H/TH(n)": ".3f", "orthogonality": ".3f"},
    )


def _pruning_figure(models: list, page: Page) -> Figure:
    """Kept vs all filters per model: labelled bars, or for more than LABELLED_ROWS models one point each."""
    kept = np.array([m.kept for m in models], float)
    total = np.array([m.n_filters for m in models], float)
    path = page.out / "fig_pruning.png"
    if len(models) > figures.LABELLED_ROWS:
        return page.figure(
            layer_figures.pruning_scatter(path, kept, total),
            f"Kept (non-sparse) share against all 3x3 filters, one point per model ({len(models)} models: more "
            f"than the {figures.LABELLED_ROWS} a bar chart labels; the table below names each).",
            "scatter plot of the kept share of filters against the number of filters per model",
        )
    return page.figure(
        layer_figures.pruning_bars(path, [m.name for m in models], kept, total),
        "Kept (non-sparse) vs all 3x3 filters per model (log scale), lowest kept share at the top.",
        "bar chart of kept versus total filters per model",
    )


def _pruning(q: Quality, p: QualityParams, page: Page) -> list:
    models = sorted(q.models, key=lambda m: (m.kept_percent, m.name))
    prune = [[m.name, m.n_filters, m.kept, m.n_filters - m.kept, m.kept_percent] for m in models]
    return [
        Para("Structured pruning: how many filters are not near zero", "heading"),
        Para(
            f"A filter is kept when {KEPT_RULE[p.rule].format(share=percent(p.eps))}; {PAPER_KEPT}). Near-zero filters "
            "contribute little to a layer's output: they are what a structured pruning would drop."
        ),
        _pruning_figure(models, page),
        page.table(
            Table(
                "pruning",
                "Kept vs total filters per model",
                ["model", "filters", "kept", "sparse", "kept %"],
                prune,
                "",
                {"kept %": ".2f"},
            )
        ),
    ]


def _binary(q: Quality, p: QualityParams, page: Page) -> list:
    blocks: list = [Para("Binary-like filters", "heading")]
    n = len(q.drawn)
    if q.passing:
        blocks.append(
            Para(
                f"{len(q.passing)} layers pass the binary-like flag (score ≥ {p.binary_threshold:g}); the first {n} are drawn."
            )
        )
    else:
        blocks.append(
            Para(
                f"No layer passes the binary-like flag (score ≥ {p.binary_threshold:g}); the {n} layers "
                "with the highest binary-likeness are drawn instead, for comparison with the medical "
                "paper's Figure 2.",
                "note",
            )
        )
    if q.drawn:
        panels = [
            (r.model, r.layer_name, f"binary-likeness {r.binary_likeness:.2f}, {r.n_levels} levels", filters)
            for r, filters in q.drawn
        ]
        side = round(FIRST_FILTERS**0.5)
        blocks.append(
            page.figure(
                layer_figures.filter_grids(page.out / "fig_binary_filters.png", panels, side),
                f"The first {FIRST_FILTERS} filters of each layer ({side}x{side} grid, filter_idx order), each 3x3 "
                "filter divided by its own max |w|; binary-like filters show only the extreme colours and white.",
                "grids of 3x3 filters of the most binary-like layers",
            )
        )
    blocks.append(
        page.table(
            Table(
                "binary_like_layers",
                f"Layers by binary-likeness (top {BINARY_TABLE})",
                ["model", "layer", "n", "binary-likeness", "levels", "flagged"],
                [
                    [
                        r.model,
                        r.layer_name,
                        r.n_filters,
                        float(r.binary_likeness),
                        r.n_levels,
                        bool(r.binary_like),
                    ]
                    for r in q.scored[:BINARY_TABLE]
                ],
                f"Binary-likeness: share of a layer's scaled filter entries within {p.tol:g} of −1, 0 or +1, "
                "rescaled so that Gaussian-random filters score ≈0 and exactly ternary ones 1; levels = "
                f"distinct scaled values at {p.level_resolution_text} resolution.",
                {"binary-likeness": ".3f"},
            )
        )
    )
    return blocks


def render(data: ReportData, page: Page, s: Section) -> None:
    """Fill the section: degenerated, sparse and binary-like layers."""
    q, p = data.quality, data.analysis.params
    if q is None:
        s.add(Para("No layer statistics: nothing to show.", "warning"))
        return
    s.add(_overview(q, p))
    depth_source = {m.model_id: m.depth_source for m in data.models}
    domain = {m.model_id: m.domain for m in data.models}
    bands = [
        depth_bands(
            [
                (domain.get(m.model_id, "(unknown)"), m.series("conv_depth_norm"), m.series(k))
                for m in q.models
            ]
        )
        for k in ("sparsity", "variance_entropy_norm", "orthogonality")
    ]
    colours = figures.domain_colours(sorted(bands[0]))
    s.add(
        page.figure(
            layer_figures.quality_by_depth(page.out / "fig_quality_depth.png", bands, colours),
            f"Per-layer sparsity, H/TH(n) and orthogonality against relative depth, per domain: the line is the "
            f"median over the domain's models of each model's mean in {DEPTH_BINS} relative-depth bins, the band "
            "their interquartile range (models per domain in the legend; every model weighs once). The dashed "
            "line marks H = TH(n). Every model's own values are in the table below. "
            + depth_sources(depth_source.get(m.model_id) for m in q.models),
            "median lines with interquartile bands of layer quality metrics against relative depth per domain",
        )
    )
    s.add(page.table(_by_model(q)))
    s.add(Para("The most degenerated layers", "heading"), page.table(_degenerated(q, p)))
    s.add(*_pruning(q, p, page), *_binary(q, p, page))
