"""The analysis of an s3:// lake (derived/object_lake.py) against a real `moto_server`: every derived table in
the bucket equals the one `filterlake analyze` writes into a local lake of the same checkpoints, row for row;
incremental on a second run and on another machine's empty copy; models derived by "another machine"; a
removed model; an analysis killed at any moment then run again ends with the same bucket; the endpoint going
away during an analysis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from filterlake.derived.analyze import analyze
from filterlake.lake.layout import per_model_derived_files
from filterlake.lake.location import ObjectLake
from filterlake.lake.working_copy import working_copy
from tests.conftest import REPO
from tests.flows.test_dask import BASE, DERIVED, assert_same_tables, catalog, rows  # noqa: F401
from tests.flows.test_dask_s3 import download
from tests.lake.s3_endpoint import Forwarder, s3_client

pytestmark = [pytest.mark.slow, pytest.mark.s3]


@pytest.fixture(scope="module")
def local(catalog: Path, tmp_path_factory) -> Path:  # noqa: F811 (the module fixture of test_dask.py)
    """The catalog ingested and analysed (defaults) in a local lake: what every bucket must equal."""
    from filterlake.ingest import ingest

    lake = tmp_path_factory.mktemp("local") / "lake"
    ingest([], lake, [catalog])
    analyze(lake)
    return lake


@pytest.fixture
def ingested(s3_lake: ObjectLake, catalog: Path, tmp_path: Path, monkeypatch) -> ObjectLake:  # noqa: F811
    """The catalog ingested into a new bucket (not analysed), with this test's own cache of working copies."""
    from filterlake.ingest import ingest

    monkeypatch.setenv("FILTERLAKE_CACHE", str(tmp_path / "cache"))
    ingest([], s3_lake, [catalog])
    return s3_lake


def bucket(lake: ObjectLake, into: Path) -> Path:
    """The bucket's lake downloaded into a fresh folder (to compare its tables with a local lake's)."""
    return download(lake, os.environ["AWS_ENDPOINT_URL"], into)


def stamps(lake: ObjectLake) -> dict[str, Any]:
    """Every object of the lake -> (ETag, LastModified): what changes when anything is written."""
    client = s3_client(os.environ["AWS_ENDPOINT_URL"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=lake.bucket, Prefix=f"{lake.prefix}/")
    return {o["Key"]: (o["ETag"], o["LastModified"]) for p in pages for o in p.get("Contents", [])}


def test_the_analysis_of_an_s3_lake_writes_the_derived_tables_of_a_local_one(
    ingested, local, tmp_path, monkeypatch
):
    first = analyze(ingested)
    assert first.stats["computed"] == first.histograms["computed"] == 5
    assert first.origin == ingested and first.where(first.shifts["domain"]).startswith(ingested.uri + "/")
    assert_same_tables(bucket(ingested, tmp_path / "one"), local, BASE + DERIVED)
    assert_same_tables(first.lake, local, BASE + DERIVED)  # the working copy too
    before = stamps(ingested)
    again = analyze(ingested)
    assert again.stats["computed"] == again.histograms["computed"] == 0
    assert stamps(ingested) == before  # nothing written again
    monkeypatch.setenv("FILTERLAKE_CACHE", str(tmp_path / "another-machine"))
    fresh = analyze(ingested)  # an empty copy: the stored derived files are pulled and reused
    assert fresh.stats["computed"] == fresh.histograms["computed"] == 0 and fresh.lake != first.lake
    assert stamps(ingested) == before


def test_models_derived_on_another_machine_reach_the_bucket_and_the_drivers_copy(ingested, local, tmp_path):
    """Each model's task starts from a disk without the model's files and its derived files stay on that
    disk: the task must pull the model and push its files, the driver fetch them back."""
    root = working_copy(ingested).root
    seen: list[str] = []

    def elsewhere(task, model_ids: list[str]) -> Iterator[Any]:
        for model_id in model_ids:
            forget(root, model_id)
            result = task(model_id)
            for path in per_model_derived_files(root, model_id):
                path.unlink()
            seen.append(model_id)
            yield result

    analysis = analyze(ingested, model_map=elsewhere)
    assert len(seen) == 10 and analysis.stats["computed"] == 5  # layer statistics, then histograms
    assert_same_tables(root, local, BASE + DERIVED)
    assert_same_tables(bucket(ingested, tmp_path / "copy"), local, BASE + DERIVED)


def forget(root: Path, model_id: str) -> None:
    """Remove every local file of one model from a working copy (its filters, layers and derived files)."""
    for path in root.rglob(f"*{model_id}*"):
        if path.is_file():
            path.unlink()


def test_a_model_removed_from_the_bucket_leaves_every_derived_table(ingested, local, tmp_path):
    from filterlake.lake.writer import remove_model

    analyze(ingested)
    (gone,) = [r[1] for r in rows(local, "models") if r[2] == "MTCNN P-Net"]  # (folder, model_id, name, ...)
    expected = tmp_path / "expected"
    subprocess.run(["cp", "-a", str(local), str(expected)], check=True)
    assert remove_model(expected, gone) and remove_model(ingested, gone)
    analyze(expected)
    analysis = analyze(ingested)
    assert gone not in analysis.model_ids
    lake = bucket(ingested, tmp_path / "after")
    assert not [p for p in lake.rglob("*.parquet") if gone in str(p)]
    assert_same_tables(lake, expected, BASE + DERIVED)  # the old basis's objects pruned from the bucket too


def analyze_command(lake: ObjectLake) -> list[str]:
    return [sys.executable, "-m", "filterlake", "analyze", "-q", "--lake", lake.uri]


@pytest.mark.parametrize("after", [1.0, 2.5, 4.0])
def test_an_analysis_killed_at_any_moment_then_run_again_ends_with_the_same_bucket(
    after, ingested, local, tmp_path
):
    started = subprocess.Popen(analyze_command(ingested), cwd=REPO, stdout=subprocess.DEVNULL)
    time.sleep(after)
    started.send_signal(signal.SIGKILL)
    started.wait()
    done = subprocess.run(analyze_command(ingested), cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert_same_tables(bucket(ingested, tmp_path / "after"), local, BASE + DERIVED)


@pytest.mark.parametrize(("outage", "retries"), [(4.0, 60), (120.0, 1)])
def test_the_endpoint_down_during_an_analysis_is_retried_or_fails_in_one_line_and_loses_nothing(
    outage, retries, ingested, local, tmp_path
):
    """The endpoint goes away 2 s into an analysis (a forwarder in front of moto_server is stopped): back
    within the retries, the analysis ends as usual; down longer, it fails in one line naming the lake, and the
    next run ends with the bucket of one run."""
    forwarder = Forwarder(urlparse(os.environ["AWS_ENDPOINT_URL"]).port)
    forwarder.start()
    env = {**os.environ, "AWS_ENDPOINT_URL": forwarder.endpoint, "FILTERLAKE_S3_RETRY_SECONDS": str(retries)}
    try:
        proc = subprocess.Popen(
            analyze_command(ingested), cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
        )
        forwarder.outage(proc, after=2.0, seconds=outage)
        stderr = proc.communicate(timeout=600)[1]
        if retries > outage:
            assert proc.returncode == 0, stderr
        else:
            lines = stderr.strip().splitlines()
            assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in stderr, stderr
            assert (
                lines[0].startswith(f"filterlake: error: {ingested.uri}")  # the lake or one of its objects
                and "after 1 s of retries" in stderr
            )
            again = subprocess.run(
                analyze_command(ingested), cwd=REPO, env=env, capture_output=True, check=False
            )
            assert again.returncode == 0, again.stderr
    finally:
        forwarder.stop()
    assert_same_tables(bucket(ingested, tmp_path / "after"), local, BASE + DERIVED)
