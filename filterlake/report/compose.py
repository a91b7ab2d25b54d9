"""The report as one step for the user: the incremental analysis the report needs, then the report from it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from filterlake.lake.location import ObjectLake
from filterlake.numeric.params import DEFAULT_QUALITY, PERMUTATIONS, SEED, QualityParams
from filterlake.report.build import Report


def analyze_and_report(
    lake: Path | ObjectLake,
    out: Path,
    group_by: Sequence[str] = ("domain",),
    preset: str = "medical",
    permutations: int = PERMUTATIONS,
    *,
    basis_on: str | None = None,
    params: QualityParams = DEFAULT_QUALITY,
    seed: int = SEED,
    merge_duplicates: bool = True,
    on_stage: Callable[[str, int], None] | None = None,
    on_model: Callable[[str], None] | None = None,
) -> Report:
    """`analyze` for the groupings of ``group_by`` plus `medical` and `model` (those with any label), then
    `build_report` from that analysis; the report's seconds count both. An object lake is reported from its
    working copy (derived/object_lake.py), pulled with its filters (the report shows some)."""
    from filterlake.derived.analyze import analyze
    from filterlake.derived.groupings import n_labels
    from filterlake.derived.object_lake import local_copy
    from filterlake.errors import FilterlakeError
    from filterlake.lake.duck import connect
    from filterlake.report.build import build_report, check_out
    from filterlake.report.collect import REQUIRED_GROUPINGS
    from filterlake.report.sections import MODULES

    start = time.perf_counter()
    out = check_out(Path(out))
    folder = local_copy(lake) if isinstance(lake, ObjectLake) else Path(lake)
    if not (folder / "models").is_dir():
        raise FilterlakeError(f"{lake}: not a lake (no models/ folder); ingest some models first")
    if permutations < 1:
        raise FilterlakeError("--permutations must be at least 1")
    group_by = tuple(dict.fromkeys(group_by or ("domain",)))
    # a grouping without any label among the models with filters has nothing to compare (and analyze
    # cannot store an empty matrix): leave it out; section 4 says so
    base = connect(folder)
    usable = tuple(c for c in dict.fromkeys((*group_by, *REQUIRED_GROUPINGS)) if n_labels(base, c) > 0)
    analysis = analyze(
        lake, preset, usable, basis_on, params, on_stage, on_model, permutations, seed, merge_duplicates
    )
    if on_stage:
        on_stage("report", len(MODULES))
    report = build_report(analysis, out, group_by, on_section=on_model)
    return replace(report, seconds=time.perf_counter() - start)
