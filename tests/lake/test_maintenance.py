"""`filterlake check` over the derived tables: broken, orphan and stale derived files are found and repaired,
and the next analysis computes exactly what was lost."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filterlake.derived.analyze import analyze
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.lake.files import read_table
from filterlake.lake.layout import basis_file, state_file, stats_file, table_files
from filterlake.lake.maintenance import analysis_running


@pytest.fixture
def analysed(corpus_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(corpus_lake, lake)
    return lake, analyze(lake, "medical", ("domain",))


def test_a_truncated_layer_stats_file_is_found_repaired_and_recomputed(analysed):
    lake, analysis = analysed
    victim = table_files(lake, "layer_stats")[0]
    before = read_table(victim)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    report = check_lake(lake, repair_leftovers=False)
    assert not report.ok and any(str(victim) in p and "unreadable" in p for p in report.problems)
    assert victim.exists()  # --no-repair changes nothing
    repaired = check_lake(lake)
    assert repaired.ok and repaired.repaired["broken_derived_files"] == 1 and not victim.exists()
    again = analyze(lake, "medical", ("domain",))
    assert again.stats["computed"] == 1 and again.basis_id == analysis.basis_id
    assert read_table(victim).equals(before)
    assert check_lake(lake).ok


def test_wrong_schema_and_orphan_derived_files_are_removed(analysed):
    lake, _ = analysed
    histogram = table_files(lake, "histograms")[0]
    pq.write_table(pa.table({"model_id": ["x"], "count": [1.5]}), histogram)
    orphan = stats_file(lake, "f" * 64)
    shutil.copy(table_files(lake, "layer_stats")[0], orphan)
    report = check_lake(lake, repair_leftovers=False)
    assert any("schema differs" in p and str(histogram) in p for p in report.problems)
    assert any("orphan derived file" in p and str(orphan) in p for p in report.problems)
    repaired = check_lake(lake)
    assert repaired.ok and not histogram.exists() and not orphan.exists()
    assert repaired.repaired["broken_derived_files"] == 1 and repaired.repaired["orphan_derived_files"] == 1
    assert analyze(lake, "medical", ("domain",)).histograms["computed"] == 1


def test_analyze_prunes_old_bases_unless_another_analysis_runs(analysed):
    """Regression: after the lake changed, SQL saw rows of old bases next to the current one, for ever."""
    lake, analysis = analysed
    old = analyze(lake, "medical", ("domain",), basis_on="domain = 'natural'")
    assert old.basis_id != analysis.basis_id and not basis_file(lake, analysis.basis_id).exists()  # pruned
    con = connect(lake)
    assert con.execute("SELECT bool_and(current), count(DISTINCT basis) FROM histograms").fetchone() == (
        True,
        1,
    )
    with analysis_running(lake):  # another analysis runs: nothing is pruned under it
        back = analyze(lake, "medical", ("domain",))
        assert basis_file(lake, old.basis_id).exists()
        busy = check_lake(lake)
    assert busy.ok and basis_file(lake, old.basis_id).exists()
    assert any("an analysis is running" in n for n in busy.notes)
    assert json.loads(state_file(lake).read_text())["basis_id"] == back.basis_id == analysis.basis_id
    flags = connect(lake).execute(
        "SELECT basis, bool_and(current), bool_or(current) FROM histograms GROUP BY basis"
    )
    assert {b: (a, o) for b, a, o in flags.fetchall()} == {
        old.basis_id: (False, False),
        back.basis_id: (True, True),
    }
    idle = check_lake(lake)
    assert idle.ok and idle.repaired["files_of_old_bases"] > 0
    assert not basis_file(lake, old.basis_id).exists() and basis_file(lake, analysis.basis_id).exists()
    assert not [
        p for t in ("histograms", "extents", "shifts") for p in table_files(lake, t) if old.basis_id in str(p)
    ]
    assert analyze(lake, "medical", ("domain",)).histograms["computed"] == 0  # the current basis kept all
