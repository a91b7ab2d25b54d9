"""Killing an ingest at any moment, or running several at once, never leaves a partial or duplicated model."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from tests.conftest import REPO, manifest_rows

TOTAL_FILTERS = sum(
    int(r["filters_3x3"])
    if r["format"] in ("onnx", "torchscript", "torch-full-pickle", "torch-legacy-pickle")
    else int(r["shape_only_filters"])
    for r in manifest_rows()
)


def start_ingest(lake, *sources):
    return subprocess.Popen(
        [sys.executable, "-m", "filterlake", "ingest", "-q", "--lake", str(lake), *map(str, sources)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def only_whole_models(lake) -> int:
    """Every model visible in SQL has exactly its filters; returns the number of models."""
    con = connect(lake)
    bad = con.execute("""SELECT m.model_id, m.name, m.n_filters_3x3, count(f.filter_idx) FROM models m
                         LEFT JOIN filters f USING (model_id) GROUP BY ALL
                         HAVING count(f.filter_idx) != m.n_filters_3x3""").fetchall()
    assert bad == []
    return con.execute("SELECT count(*) FROM models").fetchone()[0]


def sigkill_at_random_moments_then_rerun(lake, corpus, kills: int = 8, longest: float = 5.0) -> None:
    """SIGKILL an ingest of the corpus `kills` times at random moments (after each: `check` passes and SQL sees
    only whole models), then ingest it whole: the exact counts."""
    rng = random.Random(7)
    for _ in range(kills):
        proc = start_ingest(lake, "--catalog", corpus / "MANIFEST.csv")
        time.sleep(rng.uniform(0.5, longest))
        proc.kill()
        proc.wait()
        if not isinstance(lake, Path) or lake.exists():
            assert check_lake(lake).ok  # repairs what the kill left, then verifies
            only_whole_models(lake)
    done = start_ingest(lake, "--catalog", corpus / "MANIFEST.csv")
    assert done.wait() == 0, done.stderr.read()
    assert only_whole_models(lake) == 17
    assert connect(lake).execute("SELECT count(*) FROM filters").fetchone()[0] == TOTAL_FILTERS


def four_concurrent_ingests_over_overlapping_sources(lake, corpus) -> None:
    """Four ingest processes over overlapping sources end with each model exactly once, the tables exact."""
    procs = [
        start_ingest(lake, corpus),
        start_ingest(lake, "--catalog", corpus / "MANIFEST.csv"),
        start_ingest(lake, corpus / "mtcnn", corpus / "resnet56_cifar10", corpus / "ultraface_rfb320"),
        start_ingest(lake, corpus / "unet2d_nuclei_broad", corpus / "mtcnn" / "pnet.pt", corpus),
    ]
    for proc in procs:
        assert proc.wait() == 0, proc.stderr.read()
    assert only_whole_models(lake) == 17
    con = connect(lake)
    assert con.execute(
        "SELECT count(*), count(DISTINCT (model_id, layer_idx, filter_idx)) FROM filters"
    ).fetchone() == (TOTAL_FILTERS, TOTAL_FILTERS)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun(tmp_path, corpus):
    lake = tmp_path / "lake"
    sigkill_at_random_moments_then_rerun(lake, corpus)
    assert check_lake(lake, repair_leftovers=False).ok and not any((lake / "_staging").iterdir())


@pytest.mark.slow
def test_four_concurrent_ingests_over_overlapping_sources(tmp_path, corpus):
    lake = tmp_path / "lake"
    four_concurrent_ingests_over_overlapping_sources(lake, corpus)
    assert check_lake(lake, repair_leftovers=False).ok
