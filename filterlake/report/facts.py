"""The typed facts a report shows (ReportData and its parts): what `collect` reads and computes from an
analysis, and what the sections render."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from filterlake.derived.analyze import Analysis
from filterlake.numeric.params import QualityParams
from filterlake.numeric.significance import PermutationResult
from filterlake.vocab import is_medical


@dataclass(frozen=True)
class ModelInfo:
    """One model with its counted 3x3 layers and filters; ``label`` is its unique shown name (model_labels)."""

    model_id: str
    name: str
    domain: str
    task: str
    architecture: str
    family: str
    format: str
    n_layers: int
    n_filters: int
    file_bytes: int
    label: str = ""
    depth_source: str | None = None
    n_frozen: int = 0  # 3x3 layers frozen in the checkpoint's own config (layers.trainable = false)

    @property
    def medical(self) -> bool:
        """Whether the domain is medical (vocab.is_medical)."""
        return is_medical(self.domain)


@dataclass
class GroupFacts:
    """What differs between the two groups besides the domain (the confounders the verdict must name)."""

    n_models: int
    n_filters: int
    largest_name: str
    largest_share: float  # share of the group's filters held by its largest model
    task_kinds: dict[str, int] = field(default_factory=dict)
    families: dict[str, int] = field(default_factory=dict)


@dataclass
class BasisFacts:
    """The analysis's basis and how it was selected."""

    basis_id: str
    selection: str
    subset: str
    n_models: int


@dataclass
class Distributions:
    """Per-model and per-domain fine histograms (M, 9, B) and their density curves."""

    models: list[ModelInfo]  # with histograms, by domain and label
    counts: np.ndarray
    centres: np.ndarray
    density: np.ndarray
    domains: list[str]
    domain_sizes: list[int]
    domain_counts: np.ndarray
    domain_density: np.ndarray
    model_std: np.ndarray
    domain_std: np.ndarray
    outside: float  # share of all coefficients outside KDE_VIEW


@dataclass
class ShiftMatrix:
    """A stored pairwise shift matrix in the order it is shown, with (models, filters) per group."""

    labels: list[str]
    matrix: np.ndarray
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def spread(self) -> tuple[float, float]:
        """(median, max) of the finite off-diagonal D."""
        values = self.matrix[np.triu_indices(len(self.matrix), 1)]
        values = values[np.isfinite(values)]
        return float(np.median(values)), float(values.max())


@dataclass
class Medical:
    """Medical vs non-medical: the groups, the stored shift, test and per-component divergence."""

    medical: list[ModelInfo]
    other: list[ModelInfo]
    facts: tuple[GroupFacts, GroupFacts] | None = None
    stored: float = float("nan")  # D from the shifts table
    test: PermutationResult | None = None
    per_component: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    duplicates: int = 0  # model pairs with identical distributions
    controlled: list[dict] = field(default_factory=list)  # controlled_test rows (derived/controlled.py)
    contrasts: list[dict] = field(default_factory=list)  # family_contrasts rows
    domain_pairs: list[dict] = field(default_factory=list)  # domain_pairs rows

    def controlled_by(self, factor: str) -> dict[str, dict]:
        """The controlled tests of one factor (medical or domain), by stratification."""
        return {r["strata"]: r for r in self.controlled if r["factor"] == factor}

    @property
    def total(self) -> float:
        """D as the weighted sum of the per-component divergences."""
        return float(self.per_component @ self.weights)


@dataclass
class Layer:
    """One layer's quality metrics; ``model`` is its model's label."""

    model_id: str
    name: str | None
    domain: str | None
    layer_idx: int
    layer_name: str
    conv_depth_norm: float | None
    n_filters: int
    n_sparse: int
    sparsity: float | None
    variance_entropy: float | None
    entropy_threshold: float | None
    variance_entropy_norm: float | None
    orthogonality: float | None
    binary_likeness: float | None
    binary_like: bool
    n_levels: int
    degenerated: bool
    out_channels: int
    model: str = ""

    def degeneration(self, params: QualityParams) -> tuple[bool, bool]:
        """(random-like, sparse with low diversity): the two clauses of P1's degeneration rule."""
        h, th, sp = self.variance_entropy, self.entropy_threshold, self.sparsity
        random_like = h is not None and th is not None and h >= th - params.entropy_margin
        sparse_low = (
            h is not None and sp is not None and h < params.low_entropy and sp >= params.sparsity_threshold
        )
        return random_like, sparse_low


def nan(value: float | None) -> float:
    """A stored value as a float (None -> NaN)."""
    return float("nan") if value is None else float(value)


def degenerated(layers: list[Layer]) -> int:
    """How many of the layers are flagged degenerated."""
    return sum(bool(r.degenerated) for r in layers)


@dataclass
class ModelQuality:
    """The layers of one model and their totals; ``name`` is the model's label."""

    model_id: str
    name: str
    layers: list[Layer]

    def by_depth(self) -> list[Layer]:
        """The layers from first to last (relative depth, then index)."""
        return sorted(self.layers, key=lambda r: (nan(r.conv_depth_norm), r.layer_idx))

    def series(self, metric: str) -> np.ndarray:
        """One metric of the layers in depth order."""
        return np.array([nan(getattr(r, metric)) for r in self.by_depth()])

    @property
    def n_filters(self) -> int:
        """Filters of all layers."""
        return sum(r.n_filters for r in self.layers)

    @property
    def kept(self) -> int:
        """Filters that are not sparse."""
        return self.n_filters - sum(r.n_sparse for r in self.layers)

    @property
    def kept_percent(self) -> float:
        """Kept filters as a percentage of all (0 without filters)."""
        return 100.0 * self.kept / self.n_filters if self.n_filters else 0.0

    @property
    def sparsity(self) -> float:
        """Sparse filters as a share of all filters of the model (NaN without filters)."""
        return (self.n_filters - self.kept) / self.n_filters if self.n_filters else float("nan")

    def median(self, metric: str) -> float:
        """The median of one metric over the layers (NaN ignored)."""
        return float(np.nanmedian([nan(getattr(r, metric)) for r in self.layers]))

    @property
    def n_degenerated(self) -> int:
        """Layers flagged degenerated."""
        return degenerated(self.layers)


@dataclass
class Quality:
    """Layer quality: every layer, per model, the degenerated and the most binary-like layers."""

    layers: list[Layer]  # of the trained models
    models: list[ModelQuality]  # by label
    baselines: list[Layer]  # the untrained baselines' layers, left out of the section's findings
    sparse_low: list[Layer]  # degenerated, sparse with low diversity first (by sparsity)
    random_like: list[Layer]  # the other degenerated layers (by H/TH(n))
    scored: list[Layer]  # by binary-likeness, highest first
    passing: list[Layer]  # flagged binary-like
    drawn: list[tuple[Layer, np.ndarray]]  # layers drawn with their first filters

    @property
    def n_degenerated(self) -> int:
        """Layers flagged degenerated."""
        return degenerated(self.layers)


@dataclass
class ReportData:
    """Everything the report shows, for one analysis."""

    analysis: Analysis
    group_by: tuple[str, ...]
    models: list[ModelInfo]
    skipped: list[tuple[str, str, str, int]]  # (label, model_id, skip column, layers)
    messages: list[tuple[str, str]]
    basis: BasisFacts
    distributions: Distributions | None
    shifts: dict[str, ShiftMatrix | None]  # per heatmap grouping; None: no model has a label
    families: dict[str, ShiftMatrix]
    medical: Medical
    quality: Quality | None
    models_matrix: ShiftMatrix | None = None  # D between every pair of models (the `model` grouping)
    phenomena: list[dict] = field(default_factory=list)  # phenomena rows with model label, domain, layer name
    frequency: list[dict] = field(default_factory=list)  # per domain: models, layers, high-frequency share
    baselines: list[dict] = field(default_factory=list)  # per trained model: its layers' D from the baseline

    @property
    def with_filters(self) -> list[ModelInfo]:
        """The models with 3x3 filters."""
        return [m for m in self.models if m.n_filters > 0]
