"""The benchmark's scale-out stage: the flows on a Dask LocalCluster over a tiny synthetic zoo, in a child."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.run.measure import run_stage
from bench.run.scale_out import scale_out_line
from bench.synthetic import generate
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect


@pytest.mark.slow
@pytest.mark.prefect
def test_the_scale_out_stage_ingests_and_analyses_the_whole_zoo_on_the_workers(corpus: Path, tmp_path: Path):
    manifest = generate(tmp_path / "zoo", 4000, seed=5, n_models=3, corpus=corpus, prefix="s")
    run = run_stage("scale-out", tmp_path / "zoo", tmp_path / "lake", 1, tmp_path / "prefect-home")
    assert run["workers"] == 1 and run["n_models"] == 3 and run["n_filters"] == manifest["n_filters"]
    assert 0 < run["ingest_s"] < run["seconds"] and 0 < run["analyse_s"] < run["seconds"]
    assert check_lake(tmp_path / "lake").ok
    con = connect(tmp_path / "lake")
    assert con.execute("SELECT count(*) FROM filters").fetchone()[0] == manifest["n_filters"]
    assert con.execute("SELECT count(DISTINCT model_id) FROM layer_stats").fetchone()[0] == 3
    result = {"zoo": {"n_models": 3, "n_filters": manifest["n_filters"]}, "runs": {"1": run, "2": run}}
    assert scale_out_line({**result, "speed_up": 1.0}).endswith("speed-up 1.00x")
