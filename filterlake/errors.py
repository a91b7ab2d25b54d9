"""User-facing errors: each names the file (or field) and the reason, and is shown without a traceback."""

from __future__ import annotations

import errno
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


WRITE_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def is_lake_os_error(exc: OSError) -> bool:
    """A full disk or a place that cannot be written: an error of the lake, not of one input file."""
    return exc.errno in (*WRITE_DENIED, errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


def describe_os_error(exc: OSError) -> str:
    """`path: reason` of an OSError, with what to do for a read-only place or a full disk (pyarrow's errors
    carry no errno: their text is read)."""
    reason = exc.strerror or str(exc)
    if exc.errno in WRITE_DENIED:
        reason += " (this command needs to write there: use a writable --lake or --out)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc):
        reason = "no space left on device (nothing half-written was kept; free space and run it again)"
    elif exc.errno == errno.ENOTDIR:
        reason = "a path component is a file, not a folder"
    path = exc.filename if exc.filename is not None else exc.filename2
    text = f"{path}: {reason}" if path is not None else reason
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
