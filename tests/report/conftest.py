"""A small real lake (the shared corpus) and one report built on it, shared by the report tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from filterlake.ingest import ingest
from filterlake.lake.duck import connect
from filterlake.lake.layout import committed_ids
from filterlake.report.build import Report
from filterlake.report.compose import analyze_and_report

PERMUTATIONS = 200


@dataclass
class Built:
    lake: Path
    out: Path
    report: Report
    permutations: int = PERMUTATIONS

    def con(self):
        """The models the report describes: each distinct weight set once (the duplicate_weights view's rule;
        tests/derived/test_duplicates.py checks the rule against an independent computation)."""
        merged = {
            m
            for (ids,) in connect(self.lake).execute("SELECT model_ids FROM duplicate_weights").fetchall()
            for m in ids[1:]
        }
        return connect(self.lake, committed_ids(self.lake) - merged)

    def html(self) -> str:
        return self.report.index.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def report_lake(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("report") / "lake"
    outcomes = ingest([], lake, [corpus / "MANIFEST.csv"])
    failed = [o for o in outcomes if o.status == "failed"]
    assert not failed, [o.message for o in failed]
    return lake


@pytest.fixture(scope="session")
def built(report_lake: Path) -> Built:
    out = report_lake.parent / "report"
    return Built(
        report_lake,
        out,
        analyze_and_report(report_lake, out, ("domain", "depth_decile"), permutations=PERMUTATIONS),
    )
