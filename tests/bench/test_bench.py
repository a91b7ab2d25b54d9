"""The benchmark's zoo generator (real checkpoints of all three formats, trained-like filters) and its runner
in a tiny size (every stage in a child process, every target judged, regrouping without filters)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from bench.zoo import FORMATS, generate, load_pool, plan
from filterlake.ingest import ingest
from filterlake.lake.duck import connect
from tests.conftest import REPO


def test_budget_plan_reaches_the_budget_with_bounded_overshoot():
    specs = plan(300_000, seed=3)
    total = sum(s.n_filters for s in specs)
    cap = 150_000
    assert 300_000 <= total <= 300_000 + cap // 8
    assert all(s.n_filters <= cap for s in specs) and len({s.name for s in specs}) == len(specs)
    assert plan(300_000, seed=3) == specs  # deterministic


def test_a_zoo_of_scale_two_starts_with_the_zoo_of_scale_one():
    one, two = plan(100_000, seed=0), plan(100_000, seed=0) + plan(100_000, seed=1)
    assert two[: len(one)] == one and len(two) > len(one)


def test_generated_zoo_ingests_with_its_counts_in_every_format(corpus, tmp_path):
    manifest = generate(tmp_path / "zoo", 60_000, seed=11, n_models=24, corpus=corpus)
    assert manifest["n_models"] == 24 and set(manifest["formats"]) == set(FORMATS)
    for entry in manifest["models"]:
        if entry["format"] == "onnx":
            onnx.checker.check_model(onnx.load(str(tmp_path / "zoo" / entry["path"])))
    outcomes = ingest([str(tmp_path / "zoo")], tmp_path / "lake")
    assert [o.status for o in outcomes] == ["ingested"] * 24
    expected = {m["name"]: (m["n_filters"], m["n_layers_3x3"], m["domain"]) for m in manifest["models"]}
    assert {o.name: (o.n_filters, o.n_layers, o.domain) for o in outcomes} == expected
    assert sum(o.n_filters for o in outcomes) == manifest["n_filters"]
    formats = {row[0] for row in connect(tmp_path / "lake").execute("SELECT DISTINCT format FROM models").fetchall()}
    assert {"onnx", "safetensors"} < formats and any(f.startswith("torch") for f in formats)


def test_filters_are_resampled_from_the_corpus_and_rescaled(corpus, tmp_path):
    generate(tmp_path / "zoo", 150_000, seed=4, corpus=corpus, family="resnet_cifar")
    ingest([str(tmp_path / "zoo")], tmp_path / "lake")
    con = connect(tmp_path / "lake")
    rows = con.execute("SELECT l.in_channels, f.w0, f.w1, f.w2, f.w3, f.w4, f.w5, f.w6, f.w7, f.w8 "
                       "FROM filters f JOIN layers l USING (model_id, layer_idx) WHERE l.layer_idx = 3").fetchnumpy()
    w = np.column_stack([rows[f"w{i}"] for i in range(9)]).astype(np.float64)
    he = np.sqrt(2 / (rows["in_channels"].astype(np.float64) * 9))
    ratio = w.std(axis=1).mean() / he.mean()
    assert 0.2 < ratio < 5  # He-like magnitude per layer (log-normal factor)
    # the normalised shapes are the corpus' shapes (plus 5% noise): their mean matches a corpus layer's closely
    scaled = w / np.abs(w).max(axis=1, keepdims=True)
    pool = np.concatenate([layer for layers in load_pool(corpus)["natural"] for layer in layers])
    pool = pool[np.abs(pool).max(axis=1) > 0]
    reference = pool / np.abs(pool).max(axis=1, keepdims=True)
    gaussian = np.random.default_rng(0).standard_normal((len(scaled), 9))
    gaussian /= np.abs(gaussian).max(axis=1, keepdims=True)
    assert np.abs(np.corrcoef(scaled.T) - np.corrcoef(reference.T)).mean() < \
        np.abs(np.corrcoef(gaussian.T) - np.corrcoef(reference.T)).mean()


@pytest.mark.slow
def test_runner_measures_every_stage_and_judges_every_target(tmp_path):
    out = tmp_path / "tiny.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--filters", "30000", "--scales", "1,2", "--regroup-models", "30",
         "--regroup-filters", "3000", "--out", str(out), "--work", str(tmp_path / "work"), "--keep"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert [s["scale"] for s in results["scales"]] == [1, 2]
    for scale in results["scales"]:
        for stage in ("ingest", "limit_ingest", "analysis", "limit_scan", "regroup_all"):
            assert scale["stages"][stage]["seconds"] > 0 and scale["stages"][stage]["peak_rss_mb"] > 50
        m = scale["metrics"]
        assert m["filters"] >= 30_000 * scale["scale"] and m["ingest_ratio"] > 0 and m["analysis_ratio"] > 0
        assert scale["stages"]["limit_scan"]["rows"] == m["filters"]
    regroup = results["regroup"]["regroup"]
    assert regroup["groups"] == 30 and regroup["matrix"] == [30, 30] and regroup["filters_visible_during_stage"] == 0
    assert (tmp_path / "work" / "lake-regroup" / "filters").is_dir()  # moved back after the stage
    assert {t["status"] for t in results["targets"]} <= {"PASS", "NOT MET"} and len(results["targets"]) == 6
    assert {"nproc", "memory_gb", "python", "duckdb", "pyarrow"} <= set(results["machine"])
    assert results["extrapolation"]["filters"] == 1_460_000_000
    text = out.with_suffix(".txt").read_text()
    assert text.strip() in done.stdout and "ingest/limit" in text and "extrapolation" in text
