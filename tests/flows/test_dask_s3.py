"""The flows on a real Dask cluster writing into a real S3 endpoint (`moto_server`): the bucket ends holding
exactly the lake `filterlake ingest` and `filterlake analyze` write into a folder, table for table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flows.test_dask import BASE, DERIVED, SUBSET, assert_same_tables, catalog, reference, rows  # noqa: F401
from tests.lake.s3_endpoint import CREDENTIALS, s3_client

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.s3]


@pytest.fixture(scope="module")
def s3_cluster(prefect_harness, s3_env) -> Iterator[Any]:
    """A LocalCluster of two worker processes that reach the harness's API and the S3 endpoint."""
    from distributed import Client, LocalCluster
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), **CREDENTIALS, "AWS_ENDPOINT_URL": s3_env}
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, env=env) as c,
        Client(c) as client,
    ):
        yield client


def download(lake, endpoint: str, into: Path) -> Path:
    """Every object of an object lake, as files under `into` (the same layout: keys are lake paths)."""
    client = s3_client(endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=lake.bucket, Prefix=f"{lake.prefix}/")
    for page in pages:
        for item in page.get("Contents", []):
            target = into / item["Key"].removeprefix(f"{lake.prefix}/")
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(lake.bucket, item["Key"], str(target))
    return into


def test_the_flows_on_the_cluster_ingest_and_analyse_into_s3_the_lake_of_filterlake_ingest_and_analyze(
    s3_cluster,
    s3_lake,
    s3_env,
    catalog,  # noqa: F811 (the module fixture of test_dask.py, imported above)
    reference,  # noqa: F811
    corpus,
    tmp_path,
    monkeypatch,
):
    from flows.analyze import analyze_flow
    from flows.ingest import ingest_flow, run_summary

    monkeypatch.setenv("FILTERLAKE_CACHE", str(tmp_path / "cache"))  # the working copy of the analysis
    state = ingest_flow(
        catalogs=[str(catalog)],
        lake=s3_lake.uri,
        refresh=False,
        dask=s3_cluster.scheduler.address,
        return_state=True,
    )
    assert state.is_completed(), state.message
    summary = run_summary(state)
    assert summary["lake"] == s3_lake.uri and summary["counts"]["ingested"] == len(SUBSET)
    assert summary["failures"] == [] and summary["refresh"] is None and summary["notes"] == []
    copy = download(s3_lake, s3_env, tmp_path / "copy")
    assert_same_tables(copy, reference, BASE)
    assert len(rows(copy, "models")) == len(SUBSET)
    analysed = analyze_flow(lake=s3_lake.uri, dask=s3_cluster.scheduler.address)
    assert analysed["layer_stats"]["computed"] == analysed["histograms"]["computed"] == len(SUBSET)
    copy = download(s3_lake, s3_env, tmp_path / "analysed")
    assert_same_tables(copy, reference, BASE + DERIVED)
    assert rows(copy, "shifts") and rows(copy, "medical_test")
    again = run_summary(
        ingest_flow(
            catalogs=[str(catalog)], lake=s3_lake.uri, dask=s3_cluster.scheduler.address, return_state=True
        )
    )
    assert again["counts"]["ingested"] == 0 and again["failures"] == []  # present or cached: nothing twice
    one_more = run_summary(  # a new checkpoint: the flow's refresh analyses the bucket incrementally
        ingest_flow(
            sources=[str(corpus / "vdsr" / "model_epoch_50.pth")],
            lake=s3_lake.uri,
            dask=s3_cluster.scheduler.address,
            return_state=True,
        )
    )
    assert one_more["counts"]["ingested"] == 1 and one_more["failures"] == []
    assert one_more["refresh"]["layer_stats"] == {"computed": 1, "reused": len(SUBSET), "removed": 0}
