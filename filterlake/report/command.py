"""`filterlake report`: run the incremental analysis and write the self-contained HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_report(args: argparse.Namespace) -> int:
    """Build the report in --out (default ./report) and print where it is and its key numbers."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from filterlake.lake.layout import resolve_lake
    from filterlake.numeric.params import QualityParams
    from filterlake.report.build import build

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

        report = build(
            lake,
            out,
            group_by,
            getattr(args, "preset", None) or "medical",
            getattr(args, "permutations", None) or 2000,
            basis_on=getattr(args, "basis_on", None),
            params=QualityParams().with_(eps=eps),
            seed=getattr(args, "seed", None) or 0,
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
