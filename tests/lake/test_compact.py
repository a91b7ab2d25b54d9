"""Compaction (lake/compact.py) on real lakes: every view reads the same before and after, killed at any moment,
concurrent with ingests and metadata merges, and with removals, re-ingests and analyses afterwards."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

import filterlake.lake.compact as compact_module
from filterlake.derived.analyze import analyze
from filterlake.ingest import ingest
from filterlake.lake.check import check_lake
from filterlake.lake.compact import compact, maybe_compact, per_model_files
from filterlake.lake.duck import connect
from filterlake.lake.init_sql import view_names
from filterlake.lake.layout import committed_ids, compacted_part, model_file, table_dir
from filterlake.lake.writer import remove_model, update_model_row
from filterlake.vocab import PRESENT
from tests.conftest import REPO

VOLATILE = {"models": ["ingested_at"], "basis": ["created_at"]}  # times a re-ingest or re-fit rewrites


@pytest.fixture(scope="module")
def analysed_lake(corpus, tmp_path_factory) -> Path:
    """The corpus ingested and analysed, never compacted (tests work on copies)."""
    lake = tmp_path_factory.mktemp("compact") / "lake"
    ingest([], lake, [corpus / "MANIFEST.csv"])
    analyze(lake, "medical", ("domain",))
    assert per_model_files(lake) > 0 and not compacted_part(table_dir(lake, "models")).exists()
    return lake


@pytest.fixture
def lake(analysed_lake, tmp_path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(analysed_lake, copy)
    return copy


def views(lake: Path, drop: dict[str, list[str]] | None = None) -> dict[str, tuple]:
    """Every view of sql/init.sql as a fingerprint of the whole table: its row count and the sum of the hashes
    of its whole rows (independent of row order, sensitive to every value and to duplicated rows)."""
    con = connect(lake)
    out = {}
    for view in view_names():
        columns = [d[0] for d in con.execute(f"SELECT * FROM {view} LIMIT 0").description]
        kept = ", ".join(f'"{c}"' for c in columns if c not in (drop or {}).get(view, []))
        out[view] = con.execute(
            f"SELECT count(*), sum(hash(t)::HUGEINT) FROM (SELECT {kept} FROM {view}) AS t"
        ).fetchone()
    return out


def assert_same(before: dict[str, tuple], after: dict[str, tuple]) -> None:
    differ = [view for view in before if before[view] != after[view]]
    assert not differ, f"views differ: {differ}"


def test_compaction_keeps_every_view_and_leaves_few_files(lake):
    before = views(lake)
    report = compact(lake)
    assert report.models == 17 and report.folded > 0
    assert not list(table_dir(lake, "models").glob("*.parquet"))
    assert per_model_files(lake) == 0
    assert_same(before, views(lake))
    assert check_lake(lake, repair_leftovers=False).ok
    assert compact(lake).parts == 0  # nothing left to fold: nothing rewritten


@pytest.mark.parametrize("steps", [0, 2, 5])
def test_a_compaction_stopped_after_any_step_reads_the_same(lake, monkeypatch, steps):
    """Stopped after `steps` parts were installed (a kill between two renames), the lake reads the same,
    checks ok, and the next compaction finishes the job."""
    before = views(lake)
    install, done = compact_module._install, []

    def install_then_stop(staged, folder):
        if len(done) == steps:
            raise KeyboardInterrupt
        install(staged, folder)
        done.append(folder)

    monkeypatch.setattr(compact_module, "_install", install_then_stop)
    with pytest.raises(KeyboardInterrupt):
        compact(lake)
    monkeypatch.undo()
    assert_same(before, views(lake))
    assert check_lake(lake, repair_leftovers=False).ok
    compact(lake)
    assert per_model_files(lake) == 0
    assert_same(before, views(lake))


@pytest.mark.slow
def test_sigkill_of_a_compaction_at_random_moments(analysed_lake, tmp_path):
    before = views(analysed_lake)
    command = [sys.executable, "-m", "filterlake", "compact", "--lake"]
    start = time.perf_counter()
    subprocess.run([*command, str(shutil.copytree(analysed_lake, tmp_path / "timed"))], cwd=REPO, check=True)
    lifetime = time.perf_counter() - start
    rng = random.Random(15)
    for round_ in range(6):
        lake = shutil.copytree(analysed_lake, tmp_path / f"lake{round_}")
        proc = subprocess.Popen([*command, str(lake)], cwd=REPO, stdout=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.6, 1.0) * lifetime)
        proc.kill()
        proc.wait()
        assert check_lake(lake).ok  # repairs what the kill left, then verifies
        assert_same(before, views(lake))
        compact(lake)
        assert_same(before, views(lake))
        assert check_lake(lake, repair_leftovers=False).ok


@pytest.mark.slow
def test_ingest_and_metadata_merges_concurrent_with_compactions(corpus, tmp_path):
    lake = tmp_path / "lake"
    sources = sorted(p for p in corpus.iterdir() if p.is_dir())
    ingest([str(s) for s in sources[:4]], lake)
    merge = (
        "import sys; from pathlib import Path; from filterlake.lake.writer import update_model_row\n"
        "lake, model = Path(sys.argv[1]), sys.argv[2]\n"
        "for i in range(40):\n"
        "    update_model_row(lake, model, lambda row: {**row, 'task': f'task-{i}'})\n"
    )
    model = min(committed_ids(lake))
    compacting = (
        "import sys; from pathlib import Path; from filterlake.lake.compact import compact\n"
        "for _ in range(15): compact(Path(sys.argv[1]))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", compacting, str(lake)], cwd=REPO),
        subprocess.Popen(
            [sys.executable, "-m", "filterlake", "ingest", "-q", "--lake", str(lake), *map(str, sources)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen([sys.executable, "-c", merge, str(lake), model], cwd=REPO),
    ]
    seen, missed = [], 0
    while any(p.poll() is None for p in procs):
        try:
            rows = connect(lake).execute("SELECT model_id FROM models").fetchall()
        except duckdb.IOException:  # per-model files folded away between binding and reading: asked again
            missed += 1
            continue
        assert len(rows) == len(set(rows))  # never a model twice
        seen.append(len(rows))
    assert missed <= len(seen)
    assert all(p.wait() == 0 for p in procs)
    assert seen == sorted(seen)  # models only arrive
    compact(lake)
    con = connect(lake)
    assert con.execute("SELECT task FROM models WHERE model_id = ?", [model]).fetchone()[0] == "task-39"
    assert con.execute("SELECT count(DISTINCT model_id), count(*) FROM models").fetchone() == (17, 17)
    assert check_lake(lake, repair_leftovers=False).ok


def test_a_metadata_correction_writes_one_delta_file_folded_by_the_next_compaction(lake):
    compact(lake)
    model = min(committed_ids(lake))
    parts = {p: p.stat().st_mtime_ns for p in lake.rglob("compacted/part-0.parquet")}
    assert update_model_row(lake, model, lambda row: {**row, "task": "corrected"})
    assert [p.stem for p in table_dir(lake, "models").glob("*.parquet")] == [model]
    assert {p: p.stat().st_mtime_ns for p in lake.rglob("compacted/part-0.parquet")} == parts
    con = connect(lake)
    assert con.execute(
        "SELECT task, count(*) OVER () FROM models WHERE model_id = ?", [model]
    ).fetchone() == (
        "corrected",
        1,
    )
    assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 17
    before = views(lake)
    compact(lake)
    assert not model_file(lake, model).exists()
    assert_same(before, views(lake))


def test_remove_after_compaction_then_ingest_again(lake, corpus):
    compact(lake)
    before = views(lake, VOLATILE)
    model = (
        connect(lake).execute("SELECT model_id, source_uri FROM models ORDER BY model_id LIMIT 1").fetchone()
    )
    assert remove_model(lake, model[0])
    con = connect(lake)
    for view in ("models", "layers", "filters", "layer_stats", "histograms", "coefficient_extents"):
        assert con.execute(f"SELECT count(*) FROM {view} WHERE model_id = ?", [model[0]]).fetchone()[0] == 0
    assert check_lake(lake, repair_leftovers=False).ok
    ingest([], lake, [corpus / "MANIFEST.csv"])  # the catalog gives it its metadata again
    analyze(lake, "medical", ("domain",))
    assert_same(before, views(lake, VOLATILE))
    compact(lake)
    assert_same(before, views(lake, VOLATILE))
    assert check_lake(lake, repair_leftovers=False).ok


def test_ingest_again_after_compaction_adds_nothing(lake, corpus):
    compact(lake)
    before = views(lake)
    outcomes = ingest([], lake, [corpus / "MANIFEST.csv"])
    assert {o.status for o in outcomes} == {PRESENT}
    assert per_model_files(lake) == 0
    assert_same(before, views(lake))


def test_analysis_after_compaction_gives_identical_numbers(analysed_lake, corpus, tmp_path):
    """One lake compacted after ingest, then analysed from scratch (layer statistics read from the compacted
    layers), against the same lake analysed without compaction; then analysed again after compacting."""
    fresh = tmp_path / "fresh"
    ingest([], fresh, [corpus / "MANIFEST.csv"])
    compact(fresh)
    analyze(fresh, "medical", ("domain",))
    reference = views(analysed_lake, VOLATILE)
    assert_same(reference, views(fresh, VOLATILE))
    compact(fresh)
    again = analyze(fresh, "medical", ("domain",))
    assert again.stats["computed"] == 0 and again.histograms["computed"] == 0
    assert per_model_files(fresh) == 0  # nothing recomputed, nothing written per model
    assert_same(reference, views(fresh, VOLATILE))


def test_past_the_threshold_commands_compact_by_themselves(lake):
    assert maybe_compact(lake, threshold=10_000) is None
    assert maybe_compact(lake, threshold=5).models == 17
    assert per_model_files(lake) == 0
