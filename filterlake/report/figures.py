"""The report's figures: matplotlib with the Agg canvas (no pyplot, no display), saved as PNG at 100 dpi."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from filterlake.report.text import fit
from filterlake.vocab import is_medical

DPI = 100
HEATMAP_MAX = 12  # the most groups a heatmap shows legibly; a grouping with more is shown as a table
# The most models a per-model figure labels one row each (ridges, bars, tick labels). Past it a figure keeps one
# size and draws one pixel row per model: a label per row would be unreadable and its layout costs seconds.
LABELLED_ROWS = 60
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
DIVERGING = "RdBu_r"
SEQUENTIAL = "viridis"
MEDICAL_COLOURS = ["#d62728", "#ff7f0e", "#e377c2", "#8c564b", "#bcbd22", "#f0027f", "#fdae61", "#a6761d"]
OTHER_COLOURS = [
    "#1f77b4",
    "#2ca02c",
    "#17becf",
    "#9467bd",
    "#7f7f7f",
    "#393b79",
    "#98df8a",
    "#aec7e8",
    "#637939",
    "#c5b0d5",
    "#9edae5",
    "#c7c7c7",
    "#6b6ecf",
    "#525252",
    "#0868ac",
    "#31a354",
]


def domain_colours(domains: Sequence[str], later: Sequence[str] = ()) -> dict[str, str]:
    """A stable colour per domain: warm colours for medical domains, cool ones for the others.

    ``domains`` get the first (most distinct) colours; ``later`` ones (e.g. domains without filters, which
    appear in no figure) the remaining ones.
    """
    first = set(domains)
    rest = set(later) - first

    def ordered(medical: bool) -> list[str]:
        pick = [d for d in sorted(first) if is_medical(d) == medical]
        return pick + [d for d in sorted(rest) if is_medical(d) == medical]

    medical, other = ordered(True), ordered(False)
    colours = {d: MEDICAL_COLOURS[i % len(MEDICAL_COLOURS)] for i, d in enumerate(medical)}
    colours.update({d: OTHER_COLOURS[i % len(OTHER_COLOURS)] for i, d in enumerate(other)})
    return colours


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on the Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Save as PNG at the report's resolution on white; returns the path."""
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def evr_chart(path: Path, evr: np.ndarray) -> Path:
    """Explained-variance ratio per component (bars) and cumulative (line)."""
    with matplotlib.rc_context(STYLE):
        fig = new_figure(7.5, 3.6)
        ax = fig.add_subplot()
        k = np.arange(len(evr))
        bars = ax.bar(k, evr * 100, color="#4c72b0", label="explained variance ratio")
        for rect, v in zip(bars, evr):
            inside = v > 0.12
            ax.annotate(
                f"{v * 100:.1f}",
                (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                xytext=(0, -12 if inside else 2),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                color="white" if inside else "black",
            )
        ax.plot(k, np.cumsum(evr) * 100, "o-", color="#dd8452", label="cumulative", zorder=3)
        ax.set_xticks(k, [f"v{i}" for i in k])
        ax.set_xlabel("basis component (PCA of max-abs scaled 3x3 filters)")
        ax.set_ylabel("explained variance (%)")
        ax.set_ylim(0, 105)
        ax.legend(loc="center right", frameon=False)
        return save(fig, path)


def basis_images(path: Path, components: np.ndarray, evr: np.ndarray, mean: np.ndarray) -> Path:
    """The mean filter and the 9 basis vectors as 3x3 images, diverging colormap with symmetric limits."""
    with matplotlib.rc_context(STYLE):
        fig = new_figure(13, 2.3)
        axes = fig.subplots(1, 10)
        limit = float(max(np.abs(components).max(), np.abs(mean).max()))
        image = None
        panels = [("mean μ", mean)] + [(f"v{i} ({evr[i] * 100:.1f}%)", components[i]) for i in range(9)]
        for ax, (title, vector) in zip(axes, panels):
            image = ax.imshow(np.asarray(vector).reshape(3, 3), cmap=DIVERGING, vmin=-limit, vmax=limit)
            for (r, c), v in np.ndenumerate(np.asarray(vector).reshape(3, 3)):
                ax.text(
                    c,
                    r,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(v) > 0.6 * limit else "black",
                )
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(image, ax=axes, shrink=0.9, fraction=0.02, pad=0.01, label="loading")
        return save(fig, path)


def _component_panel(ax, k: int, evr: np.ndarray, xlim: tuple[float, float]) -> None:
    """Title, x ticks and label of the panel of component c<k> in the density figures."""
    ax.set_title(f"c{k} ({evr[k] * 100:.1f}% EVR)", fontsize=10)
    ax.set_xticks([-2, 0, 2] if xlim == (-3, 3) else ax.get_xticks())
    ax.set_xlabel("coefficient")
    ax.tick_params(axis="y", length=0)


def _domain_legend(fig: Figure, legend: dict[str, str], alpha: float) -> None:
    """The domain colours of a density figure, below it."""
    handles = [Patch(color=c, alpha=alpha, label=fit(d)) for d, c in legend.items()]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 7), frameon=False, title="domain"
    )


def ridges(
    path: Path,
    labels: list[str],
    colours: list[str],
    centres: np.ndarray,
    density: np.ndarray,
    evr: np.ndarray,
    legend: dict[str, str],
    xlim: tuple[float, float] = (-3, 3),
    title: str = "",
) -> Path:
    """Ridge plot: one panel per component, one ridge per group (each ridge scaled to its own peak)."""
    n = len(labels)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(14.5, 1.9 + 0.27 * n)
        axes = fig.subplots(1, density.shape[1], sharey=True)
        inside = (centres >= xlim[0]) & (centres <= xlim[1])
        x = centres[inside]
        for k, ax in enumerate(axes):
            for i in range(n):
                base = n - 1 - i
                curve = density[i, k][inside]
                if not np.isfinite(curve).any() or np.nanmax(curve) <= 0:
                    continue
                y = base + 1.6 * curve / np.nanmax(curve)
                ax.fill_between(x, base, y, color=colours[i], alpha=0.55, lw=0, zorder=2 * i)
                ax.plot(x, y, color="black", lw=0.5, zorder=2 * i + 1)
            ax.set_xlim(*xlim)
            ax.set_ylim(-0.2, n + 1.0)
            _component_panel(ax, k, evr, xlim)
            ax.axvline(0, color="grey", lw=0.5, ls=":", zorder=0)
            ax.spines["left"].set_visible(k == 0)
        axes[0].set_yticks(np.arange(n)[::-1] + 0.3, [fit(label) for label in labels], fontsize=9)
        axes[0].set_ylabel("density (each ridge scaled to its peak)")
        _domain_legend(fig, legend, 0.7)
        if title:
            fig.suptitle(fit(title, 120, 2))
        return save(fig, path)


def density_rows(
    path: Path,
    colours: list[str],
    centres: np.ndarray,
    density: np.ndarray,
    evr: np.ndarray,
    legend: dict[str, str],
    xlim: tuple[float, float] = (-3, 3),
) -> Path:
    """The ridge plot for many models: one panel per component, one image row per model (each scaled to its
    own peak, brighter = denser), rows in the given order with a colour strip of each row's domain."""
    n = len(colours)
    inside = (centres >= xlim[0]) & (centres <= xlim[1])
    with matplotlib.rc_context(STYLE):
        fig = new_figure(15.5, 7.5)
        axes = fig.subplots(
            1, density.shape[1] + 1, sharey=True, width_ratios=[0.25] + [1] * density.shape[1]
        )
        axes[0].imshow(np.array([[to_rgb(c)] for c in colours]), aspect="auto", extent=(0, 1, n, 0))
        axes[0].set_xticks([])
        axes[0].set_ylabel(f"model (one row each, {n} rows)")
        axes[0].spines[:].set_visible(False)
        image = None
        for k, ax in enumerate(axes[1:]):
            block = density[:, k][:, inside]
            peak = np.nanmax(np.where(np.isfinite(block), block, np.nan), axis=1, initial=0.0)
            rows = np.divide(block, peak[:, None], out=np.zeros_like(block), where=peak[:, None] > 0)
            image = ax.imshow(
                rows,
                aspect="auto",
                cmap="magma",
                vmin=0,
                vmax=1,
                extent=(*xlim, n, 0),
                interpolation="nearest",
            )
            _component_panel(ax, k, evr, xlim)
        axes[0].set_yticks([])
        fig.colorbar(image, ax=list(axes), shrink=0.6, fraction=0.02, label="density / its row's peak")
        _domain_legend(fig, legend, 0.9)
        return save(fig, path)


def heatmap(
    path: Path,
    labels: list[str],
    matrix: np.ndarray,
    title: str,
    axis_label: str = "group",
    colour_label: str = "shift D (symmetric KL, nats)",
    vmax: float | None = None,
) -> Path:
    """Annotated pairwise-shift heatmap (rows/columns in the given order; long labels wrapped or shortened).

    ``vmax`` is the top of the colour scale: the report passes one value for every heatmap of the page, so equal
    colours mean equal D everywhere; None scales to this matrix's largest value."""
    n = len(labels)
    size = max(4.8, 0.55 * n + 2.8)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(size + 1.6, size)
        ax = fig.add_subplot()
        if vmax is None or not vmax > 0:
            finite = matrix[np.isfinite(matrix)]
            vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=SEQUENTIAL, vmin=0, vmax=vmax)
        cmap = image.get_cmap()
        digits = 2 if vmax >= 0.1 else 3
        fontsize = 9 if n <= 10 else 8 if n <= 16 else 6
        for (r, c), v in np.ndenumerate(matrix):
            if not np.isfinite(v):
                continue
            red, green, blue = to_rgb(cmap(v / vmax))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(
                c,
                r,
                f"{v:.{digits}f}",
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if dark else "black",
            )
        ticks = [fit(label, 28, 2) for label in labels]
        ax.set_xticks(range(n), ticks, rotation=40, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), ticks)
        ax.set_xlabel(axis_label)
        ax.set_ylabel(axis_label)
        ax.spines[:].set_visible(False)
        ax.set_title(fit(title, 48, 3))
        fig.colorbar(image, ax=ax, shrink=0.8, label=colour_label)
        return save(fig, path)


def cluster_order(matrix: np.ndarray) -> np.ndarray:
    """The leaf order of average-linkage hierarchical clustering on D (models without a finite D last)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    finite = np.isfinite(matrix).all(axis=1)
    inside = np.flatnonzero(finite)
    if len(inside) < 3:
        return np.concatenate([inside, np.flatnonzero(~finite)])
    block = matrix[np.ix_(inside, inside)]
    order = inside[leaves_list(linkage(squareform((block + block.T) / 2, checks=False), "average"))]
    return np.concatenate([order, np.flatnonzero(~finite)])


def clustered_heatmap(
    path: Path,
    labels: list[str],
    matrix: np.ndarray,
    bars: dict[str, tuple[list[str], dict[str, str]]],
    vmax: float,
) -> Path:
    """The model-by-model shift matrix in clustering order, with one colour bar per key (e.g. domain, family)
    beside the rows; ``bars`` maps a key's name to (each model's value, colour of each value)."""
    order = cluster_order(matrix)
    n = len(labels)
    labelled = n <= LABELLED_ROWS
    size = max(6.0, 0.16 * min(n, LABELLED_ROWS) + 3.0)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(size + 5.0, size + 1.5)
        ax = fig.add_subplot()
        image = ax.imshow(
            np.ma.masked_invalid(matrix[np.ix_(order, order)]), cmap=SEQUENTIAL, vmin=0, vmax=vmax
        )
        ticks = [fit(labels[i], 28) for i in order] if labelled else []
        fontsize = 7 if n <= 40 else 5
        ax.set_xticks(range(n) if labelled else [], ticks, rotation=90, fontsize=fontsize)
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
        handles = []
        width = 0.035
        for column, (name, (values, colours)) in enumerate(bars.items()):
            bar = ax.inset_axes([-(len(bars) - column) * (width + 0.005), 0, width, 1])
            bar.imshow(np.array([[to_rgb(colours[values[i]])] for i in order]), aspect="auto")
            bar.set_xticks([0], [name], rotation=90, fontsize=8)
            bar.spines[:].set_visible(False)
            if column == 0 and labelled:
                bar.set_yticks(range(n), ticks, fontsize=fontsize)
            else:
                bar.set_yticks([])
            seen = dict.fromkeys(values[i] for i in order)
            handles += [Patch(color=colours[v], label=fit(f"{name}: {v}", 36)) for v in seen]
        fig.colorbar(image, ax=ax, shrink=0.6, label="shift D (symmetric KL, nats)")
        fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False, fontsize=7)
        ax.set_title("Shift D between every pair of models, clustered (average linkage)")
        return save(fig, path)


def null_distribution(
    path: Path, null: np.ndarray, observed: float, ci: tuple[float, float], p_value: float, confidence: float
) -> Path:
    """Histogram of the permutation null of D with the observed D and its bootstrap interval."""
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11, 3.8)
        ax = fig.add_subplot()
        ax.hist(
            null,
            bins=50,
            color="#9db4d3",
            edgecolor="white",
            label=f"D with model labels permuted ({len(null):,} permutations)",
        )
        ax.axvline(observed, color="#c0392b", lw=2, label=f"observed D = {observed:.4f} (p = {p_value:.3g})")
        top = ax.get_ylim()[1]
        # the interval as a bar of its own: a bootstrap interval need not contain the observed D (a biased
        # statistic on few models), which error bars around it cannot draw
        ax.hlines(top * 0.9, ci[0], ci[1], color="black", lw=2)
        ax.plot(
            [ci[0], ci[1]],
            [top * 0.9] * 2,
            "|",
            color="black",
            markersize=12,
            label=f"{round(confidence * 100)}% bootstrap interval [{ci[0]:.4f}, {ci[1]:.4f}]",
        )
        ax.plot([observed], [top * 0.9], "o", color="#c0392b")
        ax.set_xlabel("shift D between medical and non-medical models (symmetric KL, nats)")
        ax.set_ylabel("permutations (count)")
        ax.set_xlim(0, max(float(np.max(null)), ci[1], observed) * 1.05)
        fig.legend(*ax.get_legend_handles_labels(), frameon=False, loc="outside right upper")
        return save(fig, path)


def component_bars(path: Path, per_component: np.ndarray, weights: np.ndarray) -> Path:
    """Per-component symmetric KL between two groups (bars) and its weighted contribution to D."""
    with matplotlib.rc_context(STYLE):
        fig = new_figure(7.5, 3.2)
        ax = fig.add_subplot()
        k = np.arange(len(per_component))
        ax.bar(k - 0.2, per_component, width=0.4, color="#4c72b0", label="KL_sym of the component")
        ax.bar(
            k + 0.2, per_component * weights, width=0.4, color="#dd8452", label="weighted contribution w_k·KL"
        )
        ax.set_xticks(k, [f"c{i}" for i in k])
        ax.set_xlabel("basis component")
        ax.set_ylabel("symmetric KL (nats)")
        ax.legend(frameon=False)
        return save(fig, path)
