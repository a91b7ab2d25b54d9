"""The HTML report of an analysis: `build_report(analysis, out)` writes OUT/index.html, OUT/summary.md, the
figures and OUT/tables/*.csv; `filterlake report` (command.py) runs the analysis first."""

from filterlake.report.build import Report, build_report
from filterlake.report.collect import collect
from filterlake.report.facts import ReportData

__all__ = ["Report", "ReportData", "build_report", "collect"]
