"""The benchmark's object-store stage: a tiny synthetic zoo ingested and analysed, in a child process, into a
lake folder and into an s3:// lake on a real S3 endpoint; both lakes hold the same rows."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.run.measure import run_stage
from bench.run.object_store import UNSET, measure_object_store, object_store_line
from bench.synthetic import generate
from filterlake.lake.duck import connect

# every table ingest and the analysis write, in an order that makes the rows comparable one by one; what
# differs by construction is left out: when the models were ingested and the basis fitted
TABLES = {
    "models": "SELECT * EXCLUDE (ingested_at) FROM models ORDER BY model_id",
    "layers": "SELECT * FROM layers ORDER BY model_id, layer_idx",
    "filters": "SELECT * FROM filters ORDER BY model_id, layer_idx, filter_idx",
    "layer_stats": "SELECT * FROM layer_stats ORDER BY model_id, layer_idx",
    "basis": "SELECT * EXCLUDE (created_at) FROM basis ORDER BY basis_id",
    "coefficient_extents": "SELECT * FROM coefficient_extents ORDER BY ALL",
    "histograms": "SELECT * FROM histograms ORDER BY ALL",
    "shifts": "SELECT * FROM shifts ORDER BY ALL",
    "medical_test": "SELECT * FROM medical_test ORDER BY ALL",
}


def _rows(con, query: str) -> list[tuple]:
    return con.execute(query).fetchall()


@pytest.mark.slow
@pytest.mark.s3
def test_the_object_store_stage_writes_the_same_lake_to_a_folder_and_to_s3(
    corpus: Path, tmp_path: Path, s3_lake
):
    manifest = generate(tmp_path / "zoo", 4000, seed=5, n_models=3, corpus=corpus, prefix="s")
    env = {"FILTERLAKE_CACHE": str(tmp_path / "cache")}
    local = run_stage("object-store", tmp_path / "zoo", tmp_path / "lake", 1, env=env, unset=UNSET)
    s3 = run_stage("object-store", tmp_path / "zoo", s3_lake.uri, 1, env=env, unset=UNSET)
    for run in (local, s3):
        assert run["n_models"] == manifest["n_models"] == 3 and run["n_filters"] == manifest["n_filters"]
        assert run["stats"]["computed"] == 3 and run["histograms"]["computed"] == 3
        assert 0 < run["ingest_s"] < run["seconds"] and 0 < run["analyse_s"] < run["seconds"]
    assert s3["lake"] == s3_lake.uri and local["working_copy_bytes"] == 0 < s3["working_copy_bytes"]
    assert (tmp_path / "cache" / "objects").is_dir()  # the working copy is below $FILTERLAKE_CACHE
    on_disk, in_bucket = connect(tmp_path / "lake"), connect(s3_lake)
    assert _rows(in_bucket, "SELECT count(*) FROM filters") == [(manifest["n_filters"],)]
    assert _rows(in_bucket, "SELECT count(DISTINCT model_id) FROM layer_stats") == [(3,)]
    for table, query in TABLES.items():
        expected = _rows(on_disk, query)
        assert expected, table
        assert _rows(in_bucket, query) == expected, table
    line = object_store_line(
        {
            "zoo": {"n_models": 3, "n_filters": manifest["n_filters"]},
            "endpoint": "moto_server (127.0.0.1)",
            "runs": {"local": local, "s3": s3},
            "ratios": {"ingest": 1.5, "analysis": 2.25, "total": 2.0},
        }
    )
    assert f"3 models, {manifest['n_filters']:,} filters" in line
    assert line.endswith("S3/local ingest 1.50x, analysis 2.25x")


@pytest.mark.slow
@pytest.mark.s3
def test_measure_object_store_reports_both_runs_and_their_ratios_and_cleans_up(tmp_path: Path):
    args = argparse.Namespace(object_store_filters=4000, seed=0, jobs=1, ingest_workers=1, keep=False)
    result = measure_object_store(args, tmp_path, lambda _message: None)
    local, s3 = result["runs"]["local"], result["runs"]["s3"]
    assert local["lake"] == str(tmp_path / "lake-object-store") and s3["lake"] == "s3://filterlake-bench/lake"
    for run in (local, s3):
        assert (run["n_models"], run["n_filters"]) == (result["zoo"]["n_models"], result["zoo"]["n_filters"])
    assert result["ratios"]["ingest"] == s3["ingest_s"] / local["ingest_s"]
    assert result["ratios"]["analysis"] == s3["analyse_s"] / local["analyse_s"]
    assert list(tmp_path.iterdir()) == []  # zoo, lake folder and working copy removed
    assert f"analysis {result['ratios']['analysis']:.2f}x" in object_store_line(result)
