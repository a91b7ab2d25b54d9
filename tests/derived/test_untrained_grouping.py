"""Untrained baselines are their own group: a third label of the `medical` grouping (Python and SQL agree), their
own domain, and outside the stored medical vs non-medical test, which compares trained models only."""

from __future__ import annotations

import duckdb
import pytest

from filterlake.baselines import ingest_baselines
from filterlake.derived.analyze import analyze
from filterlake.derived.comparisons import MEDICAL_TEST
from filterlake.derived.groupings import medical_group
from filterlake.ingest import ingest
from filterlake.vocab import MEDICAL, NON_MEDICAL, UNTRAINED, is_untrained, medical_label_sql, untrained_sql
from tests.derived.test_comparisons import write_models

DOMAINS = ["medical mri", "natural", UNTRAINED, "untrained-ish", None, "medical"]


def test_the_medical_grouping_labels_baselines_apart_in_python_and_sql():
    con = duckdb.connect()
    for domain in DOMAINS:
        label, untrained = con.execute(
            f"SELECT {medical_label_sql('d')}, {untrained_sql('d')} FROM (SELECT ?::VARCHAR AS d)", [domain]
        ).fetchone()
        assert label == medical_group(domain) and untrained == is_untrained(domain), domain
    assert [medical_group(d) for d in DOMAINS] == [
        MEDICAL,
        NON_MEDICAL,
        UNTRAINED,
        NON_MEDICAL,
        NON_MEDICAL,
        MEDICAL,
    ]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """One medical model, one non-medical trained model and one untrained baseline, analysed."""
    root = tmp_path_factory.mktemp("untrained")
    write_models(root / "models", [("unet-a", "UNet", "medical mri", 0.0), ("vgg", "VGG16", "natural", 1.0)])
    lake = root / "lake"
    assert [o.status for o in ingest([str(root / "models")], lake)] == ["ingested"] * 2
    assert [o.status for o in ingest_baselines(["mobilenet_v3_small"], 1, lake, cache=root / "cache")] == [
        "ingested"
    ]
    return analyze(lake, "medical", ("domain", "medical"), permutations=50, seed=0)


def test_the_stored_medical_test_compares_trained_models_only(analysed):
    con = analysed.connect()
    path = analysed.comparisons[MEDICAL_TEST]
    [test] = con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchdf().to_dict("records")
    assert (test["group_a"], test["group_b"]) == (MEDICAL, NON_MEDICAL)
    assert (test["n_models_a"], test["n_models_b"]) == (1, 1)


def test_baselines_are_their_own_group_in_the_shifts(analysed):
    con = analysed.connect()
    for grouping, labels in (
        ("medical", {MEDICAL, NON_MEDICAL, UNTRAINED}),
        ("domain", {"medical mri", "natural", UNTRAINED}),
    ):
        rows = con.execute(
            "SELECT group_a, any_value(n_models_a) FROM read_parquet(?) GROUP BY group_a",
            [str(analysed.shifts[grouping])],
        ).fetchall()
        assert dict(rows) == dict.fromkeys(labels, 1), grouping
