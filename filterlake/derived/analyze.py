"""`analyze`: bring every derived table up to date, layer_stats -> basis -> histograms -> shifts (incremental).

Only what is missing is computed: new models get their layer statistics, an unchanged basis keeps its
histograms, and regrouping reads only the stored histograms.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from filterlake.derived.baseline_shifts import store_baseline_shifts
from filterlake.derived.basis import fit_from_lake, read_basis_file, store_frozen
from filterlake.derived.comparisons import PERMUTATIONS, SEED, store_comparisons
from filterlake.derived.duplicates import DuplicateSet, counted_models, duplicate_sets
from filterlake.derived.histograms import KDE_SPEC, HistSpec, refresh_histograms, refresh_in_one_read
from filterlake.derived.layer_stats import refresh_layer_stats
from filterlake.derived.object_lake import analysed_in_copy
from filterlake.derived.per_model import ModelMap, map_models
from filterlake.derived.phenomena import store_phenomena
from filterlake.derived.shifts import grouped_counts, pair_table, shift_table, store_shifts
from filterlake.errors import FilterlakeError, ParameterError
from filterlake.lake.compact import maybe_compact
from filterlake.lake.duck import connect
from filterlake.lake.files import write_json_atomic
from filterlake.lake.layout import committed_ids, require_lake, state_file
from filterlake.lake.location import ObjectLake
from filterlake.lake.maintenance import (
    analysis_running,
    prune_old_bases,
    read_state,
    readable_models,
    repair,
)
from filterlake.lake.migrate import migrate
from filterlake.lake.rows import model_rows, models_version
from filterlake.numeric.basis import Basis
from filterlake.numeric.params import DEFAULT_QUALITY, QualityParams
from filterlake.numeric.presets import PRESETS, Preset
from filterlake.vocab import is_meta_only


@dataclass
class Analysis:
    """The state of one analysis: the models it saw, its parameters, basis, histogram spec and what was
    (re)computed. Everything a report states comes from here."""

    lake: Path
    model_ids: frozenset[str]
    params: QualityParams
    basis_on: str | None
    basis_id: str
    basis: Basis
    preset: Preset
    spec: HistSpec
    stats: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, int] = field(default_factory=dict)
    shifts: dict[str, Path] = field(default_factory=dict)
    unlabelled: list[str] = field(default_factory=list)  # groupings no model has a value for
    unreadable: list[str] = field(default_factory=list)  # models left out: their models row cannot be read
    meta_only: list[str] = field(default_factory=list)  # models left out: imported without filters
    comparisons: dict[str, Path] = field(default_factory=dict)  # table -> file (derived/comparisons.py)
    duplicates: list[DuplicateSet] = field(default_factory=list)  # weight sets counted once (merged members)
    phenomena: dict[str, Path] = field(default_factory=dict)  # table -> file (derived/phenomena.py)
    baseline_shifts: Path | None = (
        None  # per-layer D from the untrained baselines (derived/baseline_shifts.py)
    )
    kde_spec: HistSpec = KDE_SPEC  # the fine histograms behind the density plots
    origin: ObjectLake | None = None  # the object lake whose working copy `lake` is

    def where(self, path: Path) -> str:
        """Where a file of this analysis is, as the user names the lake (an s3:// URL for an object lake)."""
        return self.origin.url(path.relative_to(self.lake)) if self.origin is not None else str(path)

    def weights(self):
        return self.preset.weights_for(self.basis)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection whose views see exactly this analysis's models."""
        return connect(self.lake, self.model_ids)


def _global_spec(lake: Path, basis_id: str, preset: Preset, model_ids: Collection[str]) -> HistSpec:
    """The preset's histogram spec; for range=None the global (min, max) of all coefficients in the basis."""
    subset = "nonsparse" if preset.exclude_sparse else "all"
    if preset.range is not None:
        return HistSpec(*preset.range, preset.bins, subset)
    lo, hi = (
        connect(lake, model_ids)
        .execute("SELECT min(min), max(max) FROM coefficient_extents WHERE basis = ?", [basis_id])
        .fetchone()
    )
    return HistSpec(*preset.range_for(lo, hi), preset.bins, subset)


def analyze(
    lake: Path | ObjectLake,
    preset: str = "medical",
    group_by: tuple[str, ...] = ("domain",),
    basis_on: str | None = None,
    params: QualityParams = DEFAULT_QUALITY,
    on_stage: Callable[[str, int], None] | None = None,
    on_model: Callable[[str], None] | None = None,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
    merge_duplicates: bool = True,
    basis_file: Path | None = None,
    model_map: ModelMap = map_models,
    compact: bool = True,
) -> Analysis:
    """Update layer_stats, the basis, the preset's histograms, the shifts of each grouping and the stored
    comparisons (a medical vs non-medical test with `permutations` and `seed`); return the state.

    With `merge_duplicates`, models holding identical 3x3 filters (derived/duplicates.py) count once from
    the basis on; their layer statistics are still computed for every model.

    With `basis_file` (a basis exported from another lake, `derived/basis.read_basis_file`), that basis is
    used as it is instead of one fitted here, so layer statistics and histograms come from one read.

    `model_map` runs the per-model work (layer statistics, histograms; per_model.ModelMap), threads by default;
    the basis and the shifts are computed here, from the stored statistics and histograms.

    An object lake is analysed in its working copy (derived/object_lake.py), which is never compacted, and the
    derived files are pushed back to the bucket; `Analysis.lake` is then the copy's folder. `compact` folds
    per-model files into the compacted parts past lake/compact.py's threshold."""
    if isinstance(lake, ObjectLake):
        with analysed_in_copy(lake, model_map) as (root, mapped):
            analysis = analyze(
                root,
                preset,
                group_by,
                basis_on,
                params,
                on_stage,
                on_model,
                permutations,
                seed,
                merge_duplicates,
                basis_file,
                model_map=mapped,
                compact=False,
            )
        analysis.origin = lake
        return analysis
    if preset not in PRESETS:
        raise FilterlakeError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    if permutations < 1:
        raise ParameterError(f"permutations must be at least 1, got {permutations}")
    if basis_file is not None and basis_on is not None:
        raise ParameterError("--basis FILE gives the basis; --basis-on would fit another one: choose one")
    require_lake(lake)
    repair(lake)  # what dead writers left (nothing to do, and nothing written, on a sound lake)
    migrate(lake)  # an older lake's files gain the current columns
    version = models_version(lake)  # before the snapshot: a commit in between makes the state look stale
    # every stage sees these models, whatever ingests commit meanwhile; a damaged models row is left out
    snapshot, unreadable = readable_models(lake, committed_ids(lake))
    meta_only = _meta_only(lake, snapshot)
    snapshot -= meta_only
    if meta_only and not snapshot:
        raise FilterlakeError(
            f"{lake}: its {len(meta_only)} models were imported with --meta-only (no filters)"
        )
    n_models = len(snapshot)
    if not n_models:
        raise FilterlakeError(f"{lake}: the lake holds no models; ingest some first")
    n_filters = sum(
        row["n_filters_3x3"] for row in model_rows(lake, sorted(snapshot), ["n_filters_3x3"]).values()
    )
    if n_filters < 2:
        raise FilterlakeError(
            f"{lake}: its {n_models} models hold {n_filters} 3x3 filters; the analysis needs at "
            f"least 2 (models without 3x3 conv layers are listed, not analysed)"
        )
    with analysis_running(lake):  # no repair prunes the basis this analysis writes
        specs = [KDE_SPEC] + (
            [HistSpec(*chosen.range, chosen.bins, "nonsparse" if chosen.exclude_sparse else "all")]
            if chosen.range is not None
            else []
        )
        if basis_file is None:
            if on_stage:
                on_stage("layer statistics", n_models)
            stats = refresh_layer_stats(lake, params, on_model, model_map, model_ids=snapshot)
        duplicates = duplicate_sets(connect(lake, snapshot)) if merge_duplicates else []
        counted = counted_models(snapshot, duplicates)
        con = connect(lake, counted)
        if basis_file is None:
            basis_id, basis = fit_from_lake(
                con, lake, params.fingerprint, basis_on, "nonsparse" if chosen.exclude_sparse else "all"
            )
            if on_stage:
                on_stage("histograms", len(counted))
            hist = refresh_histograms(
                lake, basis_id, basis, specs, params, on_model, model_map, model_ids=counted
            )
        else:
            basis = read_basis_file(basis_file)
            basis_id = store_frozen(lake, basis, basis_file.name)
            if on_stage:
                on_stage("layer statistics + histograms (one read)", n_models)
            stats, hist = refresh_in_one_read(
                lake, basis_id, basis, specs, params, snapshot, counted, on_model, model_map
            )
        snapshot = counted
        spec = _global_spec(lake, basis_id, chosen, snapshot)
        if spec not in specs:  # the global range is known only after the extents pass
            if on_stage:
                on_stage("histograms (global range)", len(snapshot))
            extra = refresh_histograms(
                lake, basis_id, basis, [spec], params, on_model, model_map, model_ids=snapshot
            )
            hist = {k: hist[k] + extra[k] for k in hist}
        analysis = Analysis(
            lake, frozenset(snapshot), params, basis_on, basis_id, basis, chosen, spec, stats, hist
        )
        analysis.unreadable = sorted(unreadable)
        analysis.meta_only = sorted(meta_only)
        analysis.duplicates = duplicates
        for (
            column
        ) in group_by:  # the connection above still fits: shifts read models, layers and histogram files
            path = store_group_shifts(con, lake, analysis, column)
            if path is None:
                analysis.unlabelled.append(column)
            else:
                analysis.shifts[column] = path
        if on_stage:
            on_stage("comparisons", len(snapshot))
        analysis.comparisons = store_comparisons(analysis, permutations, seed)
        analysis.phenomena = store_phenomena(analysis)
        analysis.baseline_shifts = store_baseline_shifts(analysis)
        _write_state(lake, analysis, basis_on, version)  # last: the analysis is complete
    prune_old_bases(lake)  # what no analysis needs any more: the files of earlier bases
    if compact:
        maybe_compact(lake)  # past lake/compact.py's threshold of per-model files, into the compacted parts
    return analysis


def store_group_shifts(
    con: duckdb.DuckDBPyConnection, lake: Path, analysis: Analysis, group_by: str
) -> Path | None:
    """Compute and store the full pairwise shift matrix of one grouping; None when no model has a label."""
    grouped = grouped_counts(con, analysis.basis_id, analysis.spec, group_by)
    if not grouped.labels:
        return None
    labels, matrix = shift_table(grouped, analysis.spec, analysis.weights())
    pairs = pair_table(
        labels,
        matrix,
        grouped,
        group_by=group_by,
        preset=analysis.preset.name,
        basis_id=analysis.basis_id,
        range_lo=analysis.spec.lo,
        range_hi=analysis.spec.hi,
        bins=analysis.spec.bins,
        weights=analysis.preset.weights,
        subset=analysis.spec.subset,
    )
    return store_shifts(lake, pairs, group_by, analysis.preset.name, analysis.basis_id)


def _write_state(lake: Path, analysis: Analysis, basis_on: str | None, models: str) -> None:
    state = {
        "basis_id": analysis.basis_id,
        "basis_on": basis_on,
        "preset": analysis.preset.name,
        "spec": analysis.spec.key,
        "models": models,  # lake/rows.models_version when the analysis began
    }
    write_json_atomic(state, state_file(lake))


def is_current(lake: Path | ObjectLake) -> bool:
    """Whether an analysis completed over exactly the lake's models rows as they are now (no commit, removal
    or metadata merge since), or the lake holds no model to analyse; a flow's refresh is needed otherwise."""
    if not committed_ids(lake):
        return True
    state = read_state(lake)
    return state is not None and state.get("models") == models_version(lake)


def _meta_only(lake: Path, model_ids: Collection[str]) -> set[str]:
    """Models imported with `--meta-only` (vocab.META_ONLY): listed in the lake, without filters to analyse."""
    return {
        m for m, row in model_rows(lake, sorted(model_ids), ["extra"]).items() if is_meta_only(row["extra"])
    }
