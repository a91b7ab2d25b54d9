"""The layer-quality figures: metrics against relative depth, kept vs all filters, and filter grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.lines import Line2D

from filterlake.report.figures import DIVERGING, STYLE, new_figure, save
from filterlake.report.text import fit


def quality_by_depth(
    path: Path,
    bands: list[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]],
    colours: dict[str, str],
) -> Path:
    """Sparsity, H/TH(n) and orthogonality against relative depth: per domain, the median over its models (line)
    and their interquartile range (band), from `curves.depth_bands` (one dict per metric)."""
    with matplotlib.rc_context(STYLE):
        groups = sorted(bands[0])
        fig = new_figure(16, 5.2 + 0.23 * ((len(groups) + 3) // 4))
        axes = fig.subplots(1, 3)
        handles = []
        for group in groups:
            colour = colours.get(group, "grey")
            for ax, metric in zip(axes, bands, strict=True):
                centres, median, q25, q75, _models = metric[group]
                ax.fill_between(centres, q25, q75, color=colour, alpha=0.18, lw=0)
                ax.plot(centres, median, color=colour, lw=1.6, marker="o", ms=3)
            n = int(max(bands[0][group][4].max(), 0))
            handles.append(Line2D([], [], color=colour, lw=1.6, label=fit(f"{group} ({n})", 40)))
        axes[1].axhline(1.0, color="black", ls="--", lw=1)
        axes[1].annotate(
            "H = TH(n): random-like above",
            (0.01, 1.0),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=8,
        )
        labels = (
            "sparsity S (share of near-zero filters)",
            "H / TH(n) (variance entropy / random reference)",
            "orthogonality (1 − mean |cos| of output channels)",
        )
        titles = ("Sparsity", "Variance entropy relative to TH(n)", "Orthogonality")
        for ax, ylabel, title in zip(axes, labels, titles, strict=True):
            ax.set_xlabel("relative depth (conv_depth_norm: 0 = first, 1 = last 3x3 layer)")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.set_xlim(-0.03, 1.03)
            ax.grid(alpha=0.3)
        axes[0].set_ylim(-0.03, 1.03)
        axes[2].set_ylim(-0.03, 1.03)
        fig.legend(
            handles=handles, loc="outside lower center", ncol=4, frameon=False, title="domain (models)"
        )
        return save(fig, path)


def pruning_bars(path: Path, labels: list[str], kept: np.ndarray, total: np.ndarray) -> Path:
    """Kept (non-sparse) vs total 3x3 filters per model, horizontal bars on a log axis."""
    n = len(labels)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10, 1.4 + 0.3 * n)
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        ax.barh(y, total, color="#d0d0d0", label="all 3x3 filters")
        ax.barh(y, np.maximum(kept, 0.8), height=0.5, color="#4c72b0", label="kept (non-sparse) filters")
        for yi, k, t in zip(y, kept, total):
            ax.annotate(
                f"{100 * k / t:.1f}% kept" if t else "",
                (t, yi),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.set_xscale("log")
        ax.set_xlim(0.8, float(max(total.max(), 1)) * 8)
        ax.set_yticks(y, [fit(label, 40) for label in labels], fontsize=8)
        ax.set_xlabel("filters (count, log scale)")
        fig.legend(*ax.get_legend_handles_labels(), frameon=False, loc="outside upper center", ncol=2)
        return save(fig, path)


def pruning_scatter(path: Path, kept: np.ndarray, total: np.ndarray) -> Path:
    """Kept share against all 3x3 filters, one point per model (the bars of `pruning_bars` for many models)."""
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10, 5)
        ax = fig.add_subplot()
        share = np.divide(100 * kept, total, out=np.zeros_like(kept), where=total > 0)
        ax.scatter(np.maximum(total, 1), share, s=12, color="#4c72b0", alpha=0.6, lw=0)
        ax.set_xscale("log")
        ax.set_ylim(-3, 103)
        ax.set_xlabel("3x3 filters of the model (count, log scale)")
        ax.set_ylabel("kept (non-sparse) filters (%)")
        ax.grid(alpha=0.3)
        return save(fig, path)


def filter_grids(path: Path, panels: list[tuple[str, str, str, np.ndarray]], per_row: int = 5) -> Path:
    """Each panel (model, layer, detail, filters): up to 25 filters in a 5x5 grid, each over its own max |w|."""
    with matplotlib.rc_context(STYLE):
        fig = new_figure(3.8 * len(panels) + 1.2, 4.4)
        fig.get_layout_engine().set(w_pad=0.15)
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        image = None
        for ax, (model, layer, detail, filters) in zip(axes, panels):
            grid = np.full((per_row * 4 - 1, per_row * 4 - 1), np.nan)
            for i, f in enumerate(filters[: per_row * per_row]):
                peak = np.abs(f).max()
                r, c = divmod(i, per_row)
                grid[r * 4 : r * 4 + 3, c * 4 : c * 4 + 3] = (f / (peak if peak > 0 else 1)).reshape(3, 3)
            cmap = matplotlib.colormaps[DIVERGING].with_extremes(bad="white")
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1)
            ax.set_title("\n".join((fit(model, 30), fit(layer, 30), detail)), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color("#bbbbbb")
            ax.set_xlabel("first filters of the layer (row-major, filter_idx order)", fontsize=8)
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="w / max|w| of each filter")
        return save(fig, path)
