"""Prefect 3 face of filterlake: thin flows over the plain functions of the package.

This package runs before any of its modules, so before they import Prefect (which reads its settings at import):
it sets quiet Prefect and Dask defaults unless the environment already sets them: no telemetry, no UI, warnings
only, a 60 s start-up timeout for the temporary API server, Dask errors only. Errors caused by user input
(FilterlakeError: a bad file, a wrong checksum) are never logged with a traceback, and a run whose
FilterlakeError the ingestion flow reports (`REPORTED_RUNS`: a source's fetch or ingest task, the refresh) logs
no failure lines of its own: the summary names each failure once. Those runs still end Failed, with the
one-line message as their state message.
"""

from __future__ import annotations

import logging
import os

from filterlake.errors import FilterlakeError

QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
    # Dask: errors only, not a line per worker start and stop, nor the nanny's warning when a worker that imported
    # torch takes over 4 s to exit as a temporary local cluster closes (it is then killed: its work is done)
    "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error",
}

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)

REPORTED_RUNS: set[str] = set()  # ids of task and flow runs whose FilterlakeError the flow's summary reports


class _OnceForBadInput(logging.Filter):
    """Drop failure lines of REPORTED_RUNS (and of runs waiting on them); no traceback for a FilterlakeError."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and REPORTED_RUNS:
            run = str(getattr(record, "task_run_id", None) or getattr(record, "flow_run_id", None))
            upstream = any(reported in record.getMessage() for reported in REPORTED_RUNS)  # NotReady lines
            if run in REPORTED_RUNS or upstream:
                return False
        if record.exc_info and isinstance(record.exc_info[1], FilterlakeError):
            record.exc_info = record.exc_text = None
        return True


for _logger in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_logger).addFilter(_OnceForBadInput())
