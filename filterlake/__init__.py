"""filterlake: a data lake of trained 3x3 convolution filters.

The public API, imported lazily (so `import filterlake` stays cheap): `open_checkpoint` (read a checkpoint
safely), `analyze` (the derived tables), `build_report` (the HTML report of an analysis), `connect` (DuckDB
views over a lake), `check_lake` (verify and repair), `QualityParams`; and `filterlake.ingest.ingest` (sources
into a lake: `filterlake.ingest` is the package of the ingest stages).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "open_checkpoint": "filterlake.readers",
    "analyze": "filterlake.derived.analyze",
    "build_report": "filterlake.report",
    "connect": "filterlake.lake.duck",
    "check_lake": "filterlake.lake.check",
    "QualityParams": "filterlake.numeric.params",
}
__all__ = [
    "QualityParams",
    "__version__",
    "analyze",
    "build_report",
    "check_lake",
    "connect",
    "open_checkpoint",
]


def __getattr__(name: str) -> Any:
    """The public API's names, each imported from its module on first use."""
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'filterlake' has no attribute {name!r}")
