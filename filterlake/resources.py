"""Locate the repository's `schemas/` and `sql/` folders (shipped inside the wheel as package data), and the
cache folder of downloads and working copies."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The cache of downloads, built baselines and object lakes' working copies: `$FILTERLAKE_CACHE`, else
    `./.cache`."""
    return Path(os.environ.get("FILTERLAKE_CACHE") or ".cache")


def resource_dir(name: str) -> Path:
    """The `schemas` or `sql` folder: beside the package in a checkout, inside it in an installed wheel."""
    for candidate in (_PACKAGE.parent / name, _PACKAGE / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"filterlake resource folder {name!r} not found near {_PACKAGE}")


@cache
def load_json(name: str) -> dict:
    """A JSON file of `schemas/`, parsed once."""
    return json.loads((resource_dir("schemas") / name).read_text())
