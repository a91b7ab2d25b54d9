"""The HTML report of a lake.

`build(lake, out)` writes OUT/index.html, OUT/summary.md and OUT/tables/*.csv.
"""

from filterlake.report.build import Report, build

__all__ = ["Report", "build"]
