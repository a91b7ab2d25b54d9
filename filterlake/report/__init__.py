"""The HTML report of a lake.

`build_report(lake, out)` writes OUT/index.html, OUT/summary.md and OUT/tables/*.csv.
"""

from filterlake.report.build import Report, build, build_report

__all__ = ["Report", "build", "build_report"]
