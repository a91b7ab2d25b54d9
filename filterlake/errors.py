"""User-facing errors: each names the file (or field) and the reason, and is shown without a traceback."""
from __future__ import annotations

from pathlib import Path


class FilterlakeError(Exception):
    """Base of every error caused by user input (bad file, bad metadata, bad option)."""


class CheckpointError(FilterlakeError):
    """A checkpoint that cannot be read safely; the message names the file and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MetadataError(FilterlakeError):
    """Metadata (sidecar or catalog entry) that fails the schema; the message names the field."""


class SourceError(FilterlakeError):
    """A source (path, wheel, URL) that cannot be fetched or fails its checksum."""


class TransientSourceError(SourceError):
    """A network failure worth retrying (connection refused or reset, timeout, DNS, HTTP 5xx), for every source
    kind; a missing package, file or a wrong checksum is a plain SourceError."""


class ParameterError(FilterlakeError, ValueError):
    """A parameter outside its domain (a quality threshold, a bin count, a number of permutations)."""


class LakeError(FilterlakeError):
    """A lake whose files are missing, unreadable or inconsistent; the message names the file or model and says
    which command repairs it."""
