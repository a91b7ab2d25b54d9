"""`analyze --basis FILE`: a basis exported from one lake, used as it is by another, in one read of the filters."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from filterlake.cli import main
from filterlake.derived.analyze import analyze
from filterlake.derived.basis import export_basis, read_basis_file
from filterlake.errors import FilterlakeError, ParameterError
from filterlake.ingest import ingest
from filterlake.lake.duck import connect


def _rows(lake, query: str) -> list[tuple]:
    """The query's rows, NaN as None (so that equal rows compare equal)."""
    rows = connect(lake).execute(query).fetchall()
    return [tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows]


STATS = "SELECT * EXCLUDE (params) FROM layer_stats ORDER BY model_id, layer_idx"
HISTS = "SELECT model_id, layer_idx, spec, component, bin, count FROM histograms ORDER BY ALL"


@pytest.fixture(scope="module")
def lakes(corpus, tmp_path_factory):
    """The corpus ingested once, analysed in a first lake; a copy of its base tables as the second lake."""
    root = tmp_path_factory.mktemp("frozen")
    first = root / "first"
    ingest([], first, [corpus / "MANIFEST.csv"])
    second = root / "second"
    second.mkdir()
    for name in ("filters", "layers", "models"):
        shutil.copytree(first / name, second / name)
    shutil.copy2(first / "lake.json", second / "lake.json")
    return first, second, analyze(first, "medical", ("domain",))


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_a_frozen_basis_gives_the_same_statistics_histograms_and_shifts_in_one_read(lakes, tmp_path, suffix):
    first, second, fitted = lakes
    target = tmp_path / "lake"
    shutil.copytree(second, target)
    out = export_basis(first, tmp_path / f"basis{suffix}")
    frozen = read_basis_file(out)
    np.testing.assert_array_equal(frozen.components, fitted.basis.components)
    stages: list[str] = []
    analysis = analyze(
        target, "medical", ("domain",), basis_file=out, on_stage=lambda n, _m: stages.append(n)
    )
    assert stages[0] == "layer statistics + histograms (one read)" and "histograms" not in stages
    merged = sum(len(d.merged) for d in analysis.duplicates)
    assert analysis.stats["computed"] == len(analysis.model_ids) + merged
    assert _rows(target, STATS) == _rows(first, STATS)
    assert _rows(target, HISTS) == _rows(first, HISTS)
    d = "SELECT group_a, group_b, shift FROM shifts ORDER BY ALL"
    assert _rows(target, d) == _rows(first, d)
    again = analyze(target, "medical", ("domain",), basis_file=out)
    assert again.stats["computed"] == 0 and again.histograms["computed"] == 0


def test_basis_and_basis_on_exclude_each_other_and_bad_files_are_named(lakes, tmp_path):
    first, _second, _fitted = lakes
    out = export_basis(first, tmp_path / "b.json")
    with pytest.raises(ParameterError, match="choose one"):
        analyze(first, basis_on="domain = 'natural'", basis_file=out)
    bad = tmp_path / "bad.json"
    bad.write_text('{"mean": [0]}')
    with pytest.raises(FilterlakeError, match="not a basis file"):
        read_basis_file(bad)


def test_basis_export_on_the_command_line(lakes, tmp_path, capsys):
    first, _second, fitted = lakes
    assert main(["basis", "export", "--lake", str(first), "--out", str(tmp_path / "b.parquet")]) == 0
    assert "basis written to" in capsys.readouterr().out
    assert read_basis_file(tmp_path / "b.parquet").evr.tolist() == fitted.basis.evr.tolist()
    assert (
        main(["basis", "export", "--lake", str(tmp_path / "nolake"), "--out", str(tmp_path / "x.json")]) != 0
    )
