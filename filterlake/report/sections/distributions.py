"""Coefficient distributions: ridge plots of the density of each basis coefficient per model and per
domain (the medical paper's Figure 1), and the spread of each coefficient."""

from __future__ import annotations

import numpy as np

from filterlake.report import figures
from filterlake.report.collect import KDE_VIEW
from filterlake.report.document import Figure, Page, Para, Section
from filterlake.report.facts import Distributions, ReportData
from filterlake.report.tables import Table
from filterlake.report.text import interval

STD_COLUMNS = [f"std c{k}" for k in range(9)]
STD_FORMATS = {c: ".3f" for c in STD_COLUMNS}


ID, TITLE = "distributions", "Coefficient distributions"
GUIDE = (
    "How the filters of each model and each domain spread along each basis direction: one ridge per "
    "model or domain in each of the 9 component panels; ridges of different shape mean different "
    "filters."
)


def _per_model_figure(d: Distributions, colours: dict[str, str], evr: np.ndarray, page: Page) -> Figure:
    """The densities per model: a ridge each, or for more than LABELLED_ROWS models an image row each."""
    legend = {domain: colours[domain] for domain in dict.fromkeys(m.domain for m in d.models)}
    row_colours = [colours[m.domain] for m in d.models]
    path = page.out / "fig_kde_models.png"
    if len(d.models) > figures.LABELLED_ROWS:
        return page.figure(
            figures.density_rows(path, row_colours, d.centres, d.density, evr, legend, KDE_VIEW),
            f"Coefficient distributions per model ({len(d.models)} models with 3x3 filters, sorted by domain; "
            f"more than the {figures.LABELLED_ROWS} a ridge plot labels): one image row per model, one panel "
            "per component c0…c8; each row is scaled to its own peak (brighter = denser); the strip on the "
            "left is the domain. The table of spreads below names each model.",
            "density images of coefficient distributions, one row per model",
        )
    return page.figure(
        figures.ridges(
            path, [m.label for m in d.models], row_colours, d.centres, d.density, evr, legend, KDE_VIEW
        ),
        f"Coefficient distributions per model ({len(d.models)} models with 3x3 filters, sorted by "
        "domain): one ridge per model, one panel per component c0…c8; each ridge is scaled to its own "
        "peak; colour = domain.",
        "ridge plots of coefficient densities per model",
    )


def render(data: ReportData, page: Page, s: Section) -> None:
    """Fill the section: density ridges per model and per domain, with the spread tables."""
    d = data.distributions
    if d is None:
        s.add(Para("No stored histograms for this basis: nothing to draw.", "warning"))
        return
    spec, evr = data.analysis.kde_spec, data.analysis.basis.evr
    edges = spec.edges
    colours = figures.domain_colours([m.domain for m in data.with_filters], [m.domain for m in data.models])
    s.add(
        Para(
            f"Kernel density estimates from the stored fine histograms ({spec.bins} bins over ({spec.lo:g}, "
            f"{spec.hi:g}), bin width {edges[1] - edges[0]:.3f}) by a binned Gaussian KDE with Silverman's "
            f"bandwidth (KDEpy's rule; at least one bin width). Drawn over {interval(*KDE_VIEW)} as in the "
            f"medical paper; {d.outside * 100:.3f}% of all {d.counts[:, 0].sum():,} × 9 coefficients lie "
            "outside it. The x axis is the coefficient (dimensionless: filters are scaled to max |w| = 1)."
        )
    )
    s.add(_per_model_figure(d, colours, evr, page))
    s.add(
        page.figure(
            figures.ridges(
                page.out / "fig_kde_domains.png",
                [f"{domain} ({n})" for domain, n in zip(d.domains, d.domain_sizes)],
                [colours[domain] for domain in d.domains],
                d.centres,
                d.domain_density,
                evr,
                {domain: colours[domain] for domain in d.domains},
                KDE_VIEW,
            ),
            "Coefficient distributions per domain (all filters of the domain's models pooled; the number of "
            "models in brackets); each ridge scaled to its own peak.",
            "ridge plots of coefficient densities per domain",
        )
    )
    s.add(
        page.table(
            Table(
                "coefficient_spread_by_domain",
                "Spread of the coefficients per domain",
                ["domain", "models", "filters", *STD_COLUMNS],
                [
                    [domain, n, int(d.domain_counts[i, 0].sum()), *d.domain_std[i].tolist()]
                    for i, (domain, n) in enumerate(zip(d.domains, d.domain_sizes))
                ],
                "Standard deviation of each coefficient (from the fine histogram); a larger spread in the "
                "minor components c3…c8 means more varied, less smooth filters.",
                STD_FORMATS,
            )
        ),
        page.table(
            Table(
                "coefficient_spread_by_model",
                "Spread of the coefficients per model",
                ["model", "domain", "filters", *STD_COLUMNS],
                [
                    [m.label, m.domain, int(d.counts[i, 0].sum()), *d.model_std[i].tolist()]
                    for i, m in enumerate(d.models)
                ],
                "",
                STD_FORMATS,
                collapsed=True,
            )
        ),
    )
