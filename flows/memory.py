"""Failure memory of a served deployment: local sources that failed because of what they are (a bad file, a
bad sidecar, an empty folder) are skipped by later runs until they change, and said to be skipped once.

It lives in one small JSON file that `flows.serve` keeps under $PREFECT_HOME (beside its server log), not in
the lake: it is scheduling state of one deployment, not data (the lake stays what readers and `filterlake
check` expect, and a read-only or shared lake needs no extra writer). Losing it costs one retry per bad file.
A source is the same while its path, size, mtime and what is asked of it (catalog spec, sidecar metadata, its
problem) are: a rewrite, a replacement or a sidecar edit retries it; a deleted file is forgotten.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filterlake.errors import FilterlakeError, LakeError, TransientSourceError
from filterlake.sources.discover import Source

VERSION = 1


def identity(source: Source) -> str | None:
    """Size, mtime and what is asked of a local source, hashed; None for URLs, wheels and missing paths."""
    if source.kind != "path":
        return None
    try:
        stat = os.stat(source.uri)
    except OSError:
        return None
    asked = [stat.st_size, stat.st_mtime_ns, source.spec, source.metadata, source.problem]
    return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()


def is_own_fault(error: BaseException | None) -> bool:
    """A failure that trying again cannot change: a FilterlakeError not of the lake or the network."""
    return isinstance(error, FilterlakeError) and not isinstance(error, (LakeError, TransientSourceError))


@dataclass
class FailureMemory:
    """Remembered failures by source path: {"identity", "reason", "said"}."""

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    before: dict[str, str | None] = field(default_factory=dict)  # identities of the sources run, taken before

    @classmethod
    def load(cls, path: Path) -> FailureMemory:
        """The memory kept in `path`; empty when the file is missing or unreadable."""
        try:
            data = json.loads(path.read_text())
            entries = data["failures"] if data.get("version") == VERSION else {}
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            entries = {}
        return cls(path, {k: v for k, v in entries.items() if isinstance(v, dict) and "identity" in v})

    def split(self, sources: list[Source]) -> tuple[list[Source], list[dict[str, Any]]]:
        """The sources to run, and a row {source, reason, new} per unchanged one that failed earlier."""
        run, skipped = [], []
        for source in sources:
            entry, ident = self.entries.get(source.uri), identity(source)
            if entry is not None and ident is not None and entry["identity"] == ident:
                skipped.append(
                    {"source": source.uri, "reason": entry.get("reason", ""), "new": not entry.get("said")}
                )
                entry["said"] = True
            else:
                self.entries.pop(source.uri, None)
                self.before[source.uri] = ident
                run.append(source)
        return run, skipped

    def remember(self, found: list[Source], failed: dict[str, str]) -> None:
        """Remember the `failed` sources (uri -> reason) as they were before the run; forget those not `found`."""
        uris = {source.uri for source in found}
        self.entries = {uri: entry for uri, entry in self.entries.items() if uri in uris}
        for uri, reason in failed.items():  # a file that changed while it was read is tried again next time
            if uri in uris and (ident := self.before.get(uri)) is not None:
                self.entries[uri] = {"identity": ident, "reason": reason, "said": False}

    def save(self) -> None:
        """Write the memory atomically (a temporary file renamed over it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(
            json.dumps({"version": VERSION, "failures": self.entries}, indent=1, sort_keys=True)
        )
        os.replace(temporary, self.path)
