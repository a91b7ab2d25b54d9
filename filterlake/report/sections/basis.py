"""The basis: explained variance and the 9 eigen-filters of the analysis's basis."""

from __future__ import annotations

import numpy as np

from filterlake.report import figures
from filterlake.report.document import Page, Para, Section
from filterlake.report.facts import ReportData
from filterlake.report.tables import Table

ID, TITLE = "basis", "The basis"
GUIDE = (
    "The 9 principal directions of the filters (each filter divided by its own max |w|): bars show how "
    "much of the variance each direction explains, the images what each direction looks like."
)


def _table(data: ReportData) -> Table:
    basis = data.analysis.basis
    cum = np.cumsum(basis.evr)
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
    return Table(
        "basis",
        "Basis vectors and explained variance",
        ["component", "EVR", "cumulative EVR", "explained variance", *weights],
        rows,
        "Loadings in row-major order (w0 = top left, w4 = centre, w8 = bottom right).",
        {"EVR": ".4f", "cumulative EVR": ".4f", "explained variance": ".5f", **{w: ".3f" for w in weights}},
    )


def render(data: ReportData, page: Page, s: Section) -> None:
    """Fill the section: how the basis was fitted, its explained variance and its vectors."""
    facts, basis = data.basis, data.analysis.basis
    cum = np.cumsum(basis.evr)
    s.add(
        Para(
            f"Basis {facts.basis_id}: a centred PCA fitted on N = {basis.n:,} filters of {facts.n_models} "
            f"models (selection: {facts.selection}; filters: {facts.subset}). The first component explains "
            f"{basis.evr[0] * 100:.1f}% of the variance, the first three {cum[2] * 100:.1f}%. Sign rule: "
            f"{basis.sign_rule} (each component is flipped so that its largest-|loading| entry is positive; "
            "signs do not affect D)."
        )
    )
    s.add(
        page.figure(
            figures.evr_chart(page.out / "fig_basis_evr.png", basis.evr),
            "Explained-variance ratio of each basis component (bars, %) and the cumulative share (line); N "
            f"= {basis.n:,} filters.",
            "bar chart of explained variance per component",
        )
    )
    s.add(
        page.figure(
            figures.basis_images(page.out / "fig_basis_vectors.png", basis.components, basis.evr, basis.mean),
            "The mean filter μ and the basis vectors v0…v8 as 3x3 images (row-major), diverging colour map "
            "with symmetric limits; a coefficient c_k = (f̃ − μ)·v_k measures how much of v_k a scaled "
            "filter f̃ contains.",
            "the nine basis vectors drawn as 3x3 images",
        )
    )
    s.add(page.table(_table(data)))
