"""`filterlake report`: run the incremental analysis the report needs, then write the report from it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from filterlake.derived.comparisons import PERMUTATIONS, SEED
from filterlake.numeric.params import DEFAULT_QUALITY, QualityParams
from filterlake.report.build import Report


def analyze_and_report(
    lake: Path,
    out: Path,
    group_by: Sequence[str] = ("domain",),
    preset: str = "medical",
    permutations: int = PERMUTATIONS,
    *,
    basis_on: str | None = None,
    params: QualityParams = DEFAULT_QUALITY,
    seed: int = SEED,
    on_stage: Callable[[str, int], None] | None = None,
    on_model: Callable[[str], None] | None = None,
) -> Report:
    """`analyze` for the groupings of ``group_by`` plus `medical` and `model` (those with any label), then
    `build_report` from that analysis; the report's seconds count both."""
    from filterlake.derived.analyze import analyze
    from filterlake.derived.groupings import n_labels
    from filterlake.errors import FilterlakeError
    from filterlake.lake.duck import connect
    from filterlake.report.build import build_report, check_out
    from filterlake.report.collect import REQUIRED_GROUPINGS
    from filterlake.report.sections import MODULES

    start = time.perf_counter()
    lake, out = Path(lake), check_out(Path(out))
    if not (lake / "models").is_dir():
        raise FilterlakeError(f"{lake}: not a lake (no models/ folder); ingest some models first")
    if permutations < 1:
        raise FilterlakeError("--permutations must be at least 1")
    group_by = tuple(dict.fromkeys(group_by or ("domain",)))
    # a grouping without any label among the models with filters has nothing to compare (and analyze
    # cannot store an empty matrix): leave it out; section 4 says so
    base = connect(lake)
    usable = tuple(c for c in dict.fromkeys((*group_by, *REQUIRED_GROUPINGS)) if n_labels(base, c) > 0)
    analysis = analyze(lake, preset, usable, basis_on, params, on_stage, on_model, permutations, seed)
    if on_stage:
        on_stage("report", len(MODULES))
    report = build_report(analysis, out, group_by, on_section=on_model)
    return replace(report, seconds=time.perf_counter() - start)


def cmd_report(args: argparse.Namespace) -> int:
    """Build the report in --out (default ./report) and print where it is and its key numbers."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from filterlake.lake.layout import resolve_lake

    lake = resolve_lake(getattr(args, "lake", None))
    out = Path(getattr(args, "out", None) or "report")
    group_by = tuple(getattr(args, "group_by", None) or ("domain",))
    eps = getattr(args, "sparsity_eps", None)
    quiet = getattr(args, "quiet", False)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=quiet,
    ) as progress:
        state: dict = {}

        def stage(name: str, total: int) -> None:
            if "task" in state:
                progress.remove_task(state["task"])
            state["task"] = progress.add_task(name, total=total)

        report = analyze_and_report(
            lake,
            out,
            group_by,
            getattr(args, "preset", None) or "medical",
            getattr(args, "permutations", None) or PERMUTATIONS,
            basis_on=getattr(args, "basis_on", None),
            params=QualityParams().with_(eps=eps),
            seed=getattr(args, "seed", None) or SEED,
            on_stage=stage,
            on_model=lambda _: progress.advance(state["task"]),
        )
    n = report.numbers
    print(f"report: {report.index.resolve()}")
    print(
        f"  {n.get('models', 0)} models, {n.get('layers', 0):,} 3x3 layers, {n.get('filters', 0):,} "
        f"filters; basis N = {n.get('basis_n', 0):,}, EVR[0] = {n.get('evr', [float('nan')])[0]:.3f}"
    )
    if "medical_shift" in n:
        low, high = n["medical_ci"]
        print(
            f"  medical ({n['medical_models']}) vs non-medical ({n['other_models']}) models: D = "
            f"{n['medical_shift']:.4f} nats, permutation p = {n['medical_p']:.3g}, bootstrap interval "
            f"[{low:.4f}, {high:.4f}]"
        )
    else:
        print("  medical vs non-medical: not tested (the lake needs models of both groups)")
    print(
        f"  {n.get('degenerated_layers', 0)} degenerated layers, {n.get('binary_like_layers', 0)} "
        f"binary-like; {len(report.figures)} figures, {len(report.tables)} tables (summary: "
        f"{report.summary}); {report.seconds:.1f} s",
        file=sys.stdout,
    )
    return 0
