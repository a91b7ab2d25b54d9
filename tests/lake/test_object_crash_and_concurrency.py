"""The lake's crash and concurrency tests, run against an S3 lake on a real `moto_server`: SIGKILL of an ingest at
random moments, four concurrent ingests over overlapping sources, and the endpoint stopped and restarted while
an ingest runs (retried, or the sources failed by name with nothing half-visible)."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pytest

from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.lake.object_check import dead_stages
from tests.conftest import manifest_rows
from tests.lake.s3_endpoint import Forwarder
from tests.lake.test_crash_and_concurrency import (
    TOTAL_FILTERS,
    four_concurrent_ingests_over_overlapping_sources,
    only_whole_models,
    sigkill_at_random_moments_then_rerun,
    start_ingest,
)

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_sigkill_at_random_moments_then_rerun(s3_lake, corpus, monkeypatch):
    sigkill_at_random_moments_then_rerun(s3_lake, corpus, kills=3, longest=6.0)  # young orphans: notes
    monkeypatch.setenv("FILTERLAKE_S3_ORPHAN_GRACE_SECONDS", "0")  # no writer is alive: every orphan is old
    check_lake(s3_lake)
    report = check_lake(s3_lake, repair_leftovers=False)
    assert report.ok and report.notes == [] and report.filters == TOTAL_FILTERS
    assert dead_stages() == []  # the local staging folders of the killed writers were removed too


def test_four_concurrent_ingests_over_overlapping_sources(s3_lake, corpus):
    four_concurrent_ingests_over_overlapping_sources(s3_lake, corpus)
    report = check_lake(s3_lake, repair_leftovers=False)
    assert report.ok and report.notes == []  # nothing left without a models row


@pytest.fixture
def forwarded(s3_lake, monkeypatch):
    """The lake reached through a forwarder that the test stops and restarts (the endpoint going away)."""
    forwarder = Forwarder(urlparse(os.environ["AWS_ENDPOINT_URL"]).port)
    forwarder.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", forwarder.endpoint)
    yield forwarder
    forwarder.stop()


def ingest_during_an_outage(lake, forwarder: Forwarder, corpus, outage: float):
    """Start an ingest of the corpus, stop the endpoint 3 s later for `outage` seconds (or until the ingest
    ends), then restart it; returns the ingest's process."""
    proc = start_ingest(lake, "--catalog", corpus / "MANIFEST.csv")
    forwarder.outage(proc, after=3.0, seconds=outage)
    return proc


def test_the_endpoint_stopped_and_restarted_during_an_ingest_is_retried(
    s3_lake, forwarded, corpus, monkeypatch
):
    monkeypatch.setenv("FILTERLAKE_S3_RETRY_SECONDS", "60")
    proc = ingest_during_an_outage(s3_lake, forwarded, corpus, outage=4)
    assert proc.wait() == 0, proc.stderr.read()
    assert only_whole_models(s3_lake) == 17
    assert connect(s3_lake).execute("SELECT count(*) FROM filters").fetchone()[0] == TOTAL_FILTERS
    assert check_lake(s3_lake, repair_leftovers=False).ok


def test_an_endpoint_down_longer_than_the_retries_fails_the_sources_by_name(
    s3_lake, forwarded, corpus, monkeypatch
):
    monkeypatch.setenv("FILTERLAKE_S3_RETRY_SECONDS", "1")
    proc = ingest_during_an_outage(s3_lake, forwarded, corpus, outage=120)
    stderr = proc.stderr.read()
    assert proc.wait() == 1 and "Traceback" not in stderr, stderr
    failed = [line for line in stderr.splitlines() if line.startswith("failed ")]
    assert failed and all("unreachable" in line and "after 1 s of retries" in line for line in failed), stderr
    sources = {row["path"].split("/")[0] for row in manifest_rows()}
    assert all(any(s in line for s in sources) for line in failed)  # each failure names its checkpoint
    visible = only_whole_models(s3_lake)  # nothing half-visible
    assert visible < 17 and check_lake(s3_lake, repair_leftovers=False).ok
    done = start_ingest(s3_lake, "--catalog", corpus / "MANIFEST.csv")
    assert done.wait() == 0, done.stderr.read()
    assert only_whole_models(s3_lake) == 17
