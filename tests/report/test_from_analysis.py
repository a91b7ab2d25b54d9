"""The report states what the analysis that produced it used and stored: its quality parameters, its stored
comparisons; building it reads the analysis and writes nothing into the lake."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from html import unescape
from pathlib import Path

import pytest

from filterlake.cli import build_parser
from filterlake.cli.commands import cmd_report
from filterlake.derived.analyze import analyze
from filterlake.errors import FilterlakeError
from filterlake.numeric.params import QualityParams
from filterlake.report import build_report
from filterlake.report.compose import analyze_and_report

GROUPINGS = ("domain", "depth_decile")


def pages(out: Path) -> dict[str, str]:
    """The text of index.html (entities decoded) and of summary.md."""
    return {
        "index.html": unescape((out / "index.html").read_text(encoding="utf-8")),
        "summary.md": (out / "summary.md").read_text(encoding="utf-8"),
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def lake_copy(report_lake: Path, tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    shutil.copytree(report_lake, lake)
    return lake


def test_sparsity_eps_of_the_command_is_the_one_the_page_states(lake_copy, tmp_path):
    """Regression: `--sparsity-eps 0.05` computed with 0.05 while the page said 1% of the layer's max |w|."""
    out = tmp_path / "report"
    args = build_parser().parse_args(
        [
            "report",
            "--lake",
            str(lake_copy),
            "--out",
            str(out),
            "--group-by",
            "domain",
            "--permutations",
            "20",
            "--seed",
            "0",
            "--sparsity-eps",
            "0.05",
            "--quiet",
        ]
    )
    assert cmd_report(args) == 0
    for name, text in pages(out).items():
        assert "share of filters whose every |w| is below 0.05 × the layer's max |w|" in text, name
        assert "A filter is kept when at least one |w| reaches 5% of its layer's max |w|" in text, name
        assert "0.01 ×" not in text and "1% of its layer" not in text, name
        assert "(20 permutations, seed 0)" in text, name  # the stored test of this analysis
    kept = sum(int(r["kept"]) for r in read_csv(out / "tables" / "pruning.csv"))
    con = analyze(
        lake_copy, "medical", ("domain",), params=QualityParams(eps=0.05), permutations=20
    ).connect()
    assert kept == con.execute("SELECT sum(n_filters - n_sparse) FROM layer_stats").fetchone()[0]


def test_every_quality_threshold_on_the_page_is_the_analysis_parameter(lake_copy, tmp_path):
    params = QualityParams(
        eps=0.02, tol=0.1, level_resolution=1 / 32, binary_threshold=0.8, entropy_margin=0.03,
        low_entropy=0.4, sparsity_threshold=0.2,
    )  # fmt: skip
    out = tmp_path / "report"
    analyze_and_report(lake_copy, out, ("domain",), permutations=20, params=params)
    for name, text in pages(out).items():
        assert (
            "entries within 0.1 of −1, 0 or +1" in text
            and "distinct scaled values at 1/32 resolution" in text
        )
        assert "within 0.05" not in text and "1/64" not in text, name
        assert "binary-like flag (score ≥ 0.8)" in text, name
        assert "degenerated when H ≥ TH(n) − 0.03 or (H < 0.4 and S ≥ 0.2)" in text, name
        assert "reaches 2% of its layer's max |w|" in text and "below 0.02 × the layer's max |w|" in text, (
            name
        )
    reasons = {r["reason"] for r in read_csv(out / "tables" / "degenerated_layers.csv")}
    assert reasons and all("0.03" in r or "H < 0.4, S ≥ 0.2" in r for r in reasons)


@pytest.fixture(scope="module")
def analysis(built):
    """The analysis behind `built` (stored again with the same parameters, so it stores the same results)."""
    return analyze(built.lake, "medical", (*GROUPINGS, "medical", "model"), permutations=built.permutations)


def test_the_medical_test_shown_is_the_stored_one(built, analysis):
    con = analysis.connect()
    row = con.execute(
        "SELECT p_value, n_permutations, ci_low, ci_high, observed FROM medical_test"
    ).fetchone()
    shown = {r["quantity"]: r["value"] for r in read_csv(built.out / "tables" / "medical_test.csv")}
    assert row[1] == built.permutations == int(shown["permutations"])
    assert (float(shown["permutation p-value"]), float(shown["shift D (test, nats)"])) == (row[0], row[4])
    assert (float(shown["bootstrap 95% interval low"]), float(shown["bootstrap 95% interval high"])) == row[
        2:4
    ]


def test_family_heatmaps_are_the_stored_family_shifts(built, analysis):
    con = analysis.connect()
    stored = con.execute("SELECT family, group_a, group_b, shift FROM family_shifts").fetchall()
    families = dict.fromkeys(f for f, *_ in stored)
    assert families and {f"shift_family_{f.lower()}.csv" for f in ("MTCNN", "UNet", "ResNet")} <= {
        p.name for p in built.report.tables
    }
    for family in families:
        rows = [r for r in stored if r[0] == family]
        table = built.out / "tables" / f"shift_family_{family.lower().replace('-', '_')}.csv"
        shown = {(r["group"], b): float(v) for r in read_csv(table) for b, v in list(r.items())[1:]}
        assert list(dict.fromkeys(a for _, a, _, _ in rows)) == [r["group"] for r in read_csv(table)]
        assert shown == {(a, b): d for _, a, b, d in rows}


def test_build_report_reads_the_analysis_and_writes_nothing_into_the_lake(built, analysis, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in built.lake.rglob("*") if p.is_file()}
    report = build_report(analysis, tmp_path / "again", GROUPINGS)
    assert {p: p.stat().st_mtime_ns for p in built.lake.rglob("*") if p.is_file()} == before
    assert [p.name for p in report.figures] == [p.name for p in built.report.figures]
    for table in built.report.tables:
        assert (tmp_path / "again" / "tables" / table.name).read_text() == table.read_text(), table.name
    old, new = (p.read_text(encoding="utf-8").splitlines() for p in (built.report.summary, report.summary))
    assert len(old) == len(new)
    assert {i for i, (a, b) in enumerate(zip(old, new)) if a != b} <= {2, 4}  # generated at; computed/reused


def test_build_report_refuses_an_analysis_without_what_it_reads(analysis, tmp_path):
    lacking = replace(analysis, shifts={k: v for k, v in analysis.shifts.items() if k != "medical"})
    with pytest.raises(FilterlakeError, match="no shifts by medical"):
        build_report(lacking, tmp_path / "r1")
    other = replace(analysis, model_ids=frozenset(sorted(analysis.model_ids)[1:]))
    with pytest.raises(FilterlakeError, match="belongs to another analysis"):
        build_report(other, tmp_path / "r2")
