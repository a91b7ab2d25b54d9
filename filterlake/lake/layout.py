"""Where each table's files live inside a lake folder, and how the lake folder is chosen."""
from __future__ import annotations

import os
from pathlib import Path

STAGING = "_staging"


def resolve_lake(lake: str | Path | None) -> Path:
    """`--lake` if given, else `$FILTERLAKE_LAKE`, else `./lake`."""
    return Path(lake or os.environ.get("FILTERLAKE_LAKE") or "lake")


def model_file(lake: Path, model_id: str) -> Path:
    """The one-row `models` file of a model: its presence is the commit mark of the model."""
    return lake / "models" / f"{model_id}.parquet"


def layers_file(lake: Path, model_id: str) -> Path:
    return lake / "layers" / f"{model_id}.parquet"


def filters_dir(lake: Path, model_id: str) -> Path:
    """The hive partition holding all filters of one model."""
    return lake / "filters" / f"model_id={model_id}"


def committed_ids(lake: Path) -> set[str]:
    """Model ids whose `models` row exists, i.e. fully written models."""
    folder = lake / "models"
    return {p.stem for p in folder.glob("*.parquet")} if folder.is_dir() else set()
