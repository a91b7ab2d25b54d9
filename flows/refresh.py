"""The refresh flow: bring the analysis tables up to date after ingestion.

Calls `filterlake.derived.analyze.analyze(lake)` when that module imports; otherwise (with a warning naming the
import error) verifies and repairs the lake with `filterlake.lake.maintenance.check_lake`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger

from filterlake.errors import FilterlakeError
from filterlake.lake.maintenance import check_lake


@flow(name="filterlake-refresh")
def refresh_flow(lake: str) -> dict[str, Any]:
    """Refresh layer statistics, basis, histograms and shifts (or check the lake); returns a small summary."""
    try:
        from filterlake.derived.analyze import analyze
    except ImportError as exc:
        get_run_logger().warning("filterlake.derived.analyze does not import (%s); checking the lake instead", exc)
        report = check_lake(Path(lake))
        if not report.ok:
            raise FilterlakeError("lake check failed: " + "; ".join(report.problems))
        return {"action": "check", "models": report.models, "filters": report.filters}
    try:
        analysis = analyze(Path(lake))
    except FilterlakeError as exc:  # its message says why; its frames would keep DuckDB objects alive until exit
        raise exc.with_traceback(None) from None
    return {"action": "refresh", "basis_id": analysis.basis_id, "layer_stats": analysis.stats,
            "histograms": analysis.histograms, "shifts": sorted(analysis.shifts)}
