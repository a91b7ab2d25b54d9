"""The refresh flow: bring the analysis tables up to date after ingestion.

Calls `filterlake.derived.analyze.analyze(lake)` when that module imports; otherwise (with a warning naming the
import error) verifies and repairs the lake with `filterlake.lake.maintenance.check_lake`. Run as a subflow,
its FilterlakeError is reported by the calling flow's summary, not by its own log lines.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger

from filterlake.errors import FilterlakeError
from filterlake.lake.check import check_lake
from filterlake.lake.location import parse_lake
from flows.tasks import reported_by_the_flow

if TYPE_CHECKING:
    from filterlake.derived.analyze import Analysis


@flow(name="filterlake-refresh")
def refresh_flow(lake: str) -> dict[str, Any]:
    """Refresh layer statistics, basis, histograms and shifts (or check the lake); returns a small summary."""
    context = FlowRunContext.get()
    subflow = context is not None and context.flow_run is not None and context.flow_run.parent_task_run_id
    with reported_by_the_flow() if subflow else contextlib.nullcontext():
        try:
            from filterlake.derived.analyze import analyze
        except ImportError as exc:
            get_run_logger().warning(
                "filterlake.derived.analyze does not import (%s); checking the lake instead", exc
            )
            report = check_lake(Path(lake))
            if not report.ok:
                raise FilterlakeError("lake check failed: " + "; ".join(report.problems)) from None
            return {"action": "check", "models": report.models, "filters": report.filters}
        try:
            analysis = analyze(parse_lake(lake))
        except FilterlakeError as exc:  # its message says why; its frames would keep DuckDB objects alive
            raise exc.with_traceback(None) from None
    return analysis_summary(analysis)


def analysis_summary(analysis: Analysis) -> dict[str, Any]:
    """What an analysis refreshed, as a small dict (a flow's result; `flows.ingest.refresh_line` words it)."""
    return {
        "action": "refresh",
        "basis_id": analysis.basis_id,
        "layer_stats": analysis.stats,
        "histograms": analysis.histograms,
        "shifts": sorted(analysis.shifts),
    }
