"""Expand what the user names (files, folders, catalogs, URLs) into sources, not yet fetched."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filterlake.errors import CheckpointError, MetadataError, SourceError, TransientSourceError
from filterlake.readers import open_checkpoint, recognise, sniff_format
from filterlake.sources import hf, metadata
from filterlake.sources.catalog import load_catalog

# Names that are checkpoints by convention: such a file that is not readable is reported, never skipped.
CHECKPOINT_SUFFIXES = {
    ".pt",
    ".pth",
    ".th",
    ".ckpt",
    ".onnx",
    ".safetensors",
    ".tar",
    ".model",
    ".pkl",
    ".pickle",
    ".bin",
    ".jit",
    ".h5",
    ".hdf5",
    ".keras",
    ".tflite",
}
CATALOG_SUFFIXES = {".csv", ".toml", ".json"}


@dataclass(frozen=True)
class Source:
    """One checkpoint to ingest, not yet fetched: a local path, an http(s) URL, a wheel member or a weight file
    of a Hugging Face Hub repository (pinned to a commit when the repository was resolved).

    A source whose sidecar or catalog entry is invalid carries the reason in `problem`: it fails alone, with
    that reason, and the sources beside it are still ingested. `notes` are warnings (a likely misspelt field).
    """

    kind: str  # "path" | "url" | "wheel" | "hf" | "cnn_filter_db"
    spec: dict[str, Any]
    metadata: dict[str, Any] | None = field(default=None, compare=False)  # explicit metadata, if any
    where: str = ""
    problem: str | None = field(default=None, compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)
    transient: bool = field(default=False, compare=False)  # the problem may pass (a Hub unreachable for now)

    @property
    def uri(self) -> str:
        """Where the checkpoint comes from, as recorded in `models.source_uri`."""
        if self.kind == "path":
            return self.spec["path"]
        if self.kind == "url":
            return self.spec["url"]
        if self.kind == "hf":
            return hf.hub_uri(self.spec["hf"], self.spec.get("revision"), self.spec.get("file"))
        if self.kind == "cnn_filter_db":  # a whole dataset.h5, imported by ingest/cnn_filter_db.py
            return self.spec["cnn_filter_db"]
        return f"pypi:{self.spec['wheel']}#{self.spec['member']}"

    @property
    def expected_sha256(self) -> str | None:
        """The checksum a catalog gives for a local path (URLs and wheels are checked when fetched)."""
        return self.spec.get("sha256") if self.kind == "path" else None


@dataclass
class Discovery:
    """The sources a set of names expands to, and every file or folder passed over, by reason."""

    sources: list[Source] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=dict)

    def skip(self, reason: str, path: Path) -> None:
        self.skipped.setdefault(reason, []).append(path)

    def lines(self) -> list[str]:
        """One line per reason: how many were passed over, and an example."""
        return [
            f"skipped {len(paths):,} {'entry' if len(paths) == 1 else 'entries'}: {reason} "
            f"(e.g. {printable(str(paths[0]))})"
            for reason, paths in self.skipped.items()
        ]


HIDDEN = "hidden (name starts with '.')"
NOT_A_CHECKPOINT = "not a checkpoint (by content and by name)"
LOOP = "symlinked folder already visited (a loop)"
# Files recognised by content that are not models filterlake reads, or that need a catalog entry.
RECOGNISED = {
    "hdf5": "HDF5 file without a Keras model",
    "keras": "Keras 3 archive with .npz weights: not supported",
    "wheel": 'Python wheel: name it in a catalog entry (wheel = "name==version", member = ...)',
}
UNREADABLE = "folder that cannot be read"


def printable(text: str) -> str:
    """`text` with undecodable bytes of a file name (surrogate escapes) as U+FFFD, safe to print and store."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_checkpoint(path: Path) -> bool:
    return sniff_format(path) is not None or path.suffix.lower() in CHECKPOINT_SUFFIXES


def _companions(paths: list[Path]) -> set[Path]:
    """Files that belong to another checkpoint (ONNX external data, safetensors and Keras shards): not models."""
    taken: set[Path] = set()
    for path in paths:
        if sniff_format(path) in ("onnx", "safetensors-index", "keras-index"):
            try:
                taken.update(p.resolve() for p in open_checkpoint(path).files[1:])
            except CheckpointError:
                pass  # reported when the model itself is ingested
    return taken


def _walk(folder: Path, found: Discovery) -> list[Path]:
    """Every file below `folder`, following symlinked folders once each (a loop is reported, not followed)."""
    files: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def visit(directory: Path) -> None:
        try:
            stat = directory.stat()
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            found.skip(UNREADABLE, directory)
            return
        if (stat.st_dev, stat.st_ino) in seen:
            found.skip(LOOP, directory)
            return
        seen.add((stat.st_dev, stat.st_ino))
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                found.skip(HIDDEN, path)
            elif entry.is_dir():  # follows symlinks
                visit(path)
            elif entry.is_file():
                files.append(path)

    visit(folder)
    return files


def find_checkpoints(folder: Path, found: Discovery | None = None) -> list[Path]:
    """Checkpoint files below `folder` (recursive, hidden entries and non-checkpoints passed over and recorded
    in `found`), in a stable order."""
    found = found if found is not None else Discovery()
    candidates = []
    for path in _walk(folder, found):
        if path.name.endswith(metadata.SIDECAR_SUFFIX):
            continue
        if _is_checkpoint(path):
            candidates.append(path)
        else:
            found.skip(RECOGNISED.get(recognise(path) or "", NOT_A_CHECKPOINT), path)
    companions = _companions(candidates)
    return [p for p in candidates if p.resolve() not in companions]


def _path_source(path: Path) -> Source:
    """A source for a local checkpoint with its sidecar's metadata; an invalid sidecar fails this source only."""
    where = printable(str(path))
    try:
        meta, notes = metadata.read_sidecar_with_notes(path)
    except MetadataError as exc:
        return Source("path", {"path": str(path.resolve())}, None, where, problem=str(exc))
    return Source("path", {"path": str(path.resolve())}, meta, where, notes=tuple(notes))


def _folder_sources(name: str, path: Path, found: Discovery) -> list[Source]:
    """The checkpoints of a folder; a folder that yields none becomes a failed source saying what it held."""
    before = sum(len(v) for v in found.skipped.values())
    sources = [_path_source(p) for p in find_checkpoints(path, found)]
    if not sources:
        passed = sum(len(v) for v in found.skipped.values()) - before
        held = f"{passed:,} entries passed over, see the skipped lines" if passed else "it is empty"
        sources.append(
            Source(
                "path",
                {"path": str(path.resolve())},
                None,
                name,
                problem=f"{printable(name)}: no checkpoint found in this folder ({held})",
            )
        )
    return sources


def _hub_sources(
    ref: hf.HubRef, meta: dict[str, Any] | None, where: str, notes: tuple[str, ...] = ()
) -> list[Source]:
    """The models of a Hub repository (this asks the Hub, or the cache when offline), the catalog's metadata
    over the repository's; a repository that cannot be resolved becomes one failed source saying why."""
    try:
        models = hf.resolve(ref)
    except SourceError as exc:
        transient = isinstance(exc, TransientSourceError)
        return [Source("hf", ref.spec, None, where, problem=str(exc), notes=notes, transient=transient)]
    return [
        Source("hf", m.spec, metadata.merge(m.metadata, meta), where, m.problem, (*notes, *m.notes))
        for m in models
    ]


def discover_all(names: list[str], catalogs: list[Path] = ()) -> Discovery:
    """Sources for CLI arguments (file, folder, URL, hf:// repository, catalog file) and catalog files,
    duplicates removed, and what was passed over. A name that does not exist raises SourceError."""
    found = Discovery()
    sources: list[Source] = []
    for name in names:
        path = Path(name)
        if name.startswith(("http://", "https://")):
            sources.append(Source("url", {"url": name}, None, name))
        elif name.startswith(hf.SCHEME):
            sources.extend(_hub_sources(hf.parse_uri(name), None, name))
        elif path.is_dir():
            sources.extend(_folder_sources(name, path, found))
        elif path.suffix.lower() in CATALOG_SUFFIXES and path.is_file() and sniff_format(path) is None:
            catalogs = [*catalogs, path]
        elif path.exists() or path.suffix.lower() in CHECKPOINT_SUFFIXES:
            sources.append(_path_source(path))
        else:
            raise SourceError(f"{printable(name)}: no such file or directory")
    for catalog in catalogs:
        for entry in load_catalog(Path(catalog)):
            kind = next((k for k in ("path", "url", "hf", "cnn_filter_db") if k in entry.source), "wheel")
            if kind == "hf" and entry.problem is None:
                ref = hf.entry_ref(entry.source)
                sources.extend(_hub_sources(ref, entry.metadata, entry.where, entry.notes))
            elif entry.problem is not None:
                spec = entry.source if entry.source else {"path": entry.where}
                kind = kind if entry.source else "path"
                sources.append(Source(kind, spec, None, entry.where, problem=entry.problem))
            else:
                sources.append(Source(kind, entry.source, entry.metadata, entry.where, notes=entry.notes))
    unique: dict[tuple, Source] = {}
    for source in sources:
        unique.setdefault((source.kind, source.uri), source)
    found.sources = list(unique.values())
    return found


def discover(names: list[str], catalogs: list[Path] = ()) -> list[Source]:
    """The sources of `discover_all` (what was passed over is dropped: use `discover_all` to report it)."""
    return discover_all(names, catalogs).sources
