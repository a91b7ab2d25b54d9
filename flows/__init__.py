"""Prefect 3 face of filterlake: thin flows over the plain functions of the package.

This package runs before any of its modules, so before they import Prefect (which reads its settings at import):
it sets quiet Prefect defaults unless the environment already sets them: no telemetry, no UI, warnings only, a
60 s start-up timeout for the temporary API server. Errors caused by user input (FilterlakeError: a bad
file, a wrong checksum) are logged by flow and task runs as their one-line message, without a traceback.
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
}

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)


class _NoTracebackForBadInput(logging.Filter):
    """Drop the traceback of records about a FilterlakeError: its message already names the input and why."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], FilterlakeError):
            record.exc_info = record.exc_text = None
        return True


for _logger in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_logger).addFilter(_NoTracebackForBadInput())
