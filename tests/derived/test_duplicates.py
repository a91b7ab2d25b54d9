"""Identical weights count once: a PyTorch and an ONNX export of one network are merged in the basis, the
histograms, the shifts and the tests, the report names the merge, and `--keep-duplicates` counts both."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from filterlake.derived.analyze import analyze
from filterlake.ingest import ingest
from filterlake.lake.duck import connect
from filterlake.report.compose import analyze_and_report
from filterlake.vocab import INGESTED
from tests.layer_keys import stored_layers
from tests.test_weights_sha256 import LAYERS, write_onnx, write_torch

PERMUTATIONS = 50
FILTERS_PER_EXPORT = sum(w.shape[0] * w.shape[1] for _, w in LAYERS)  # 12 + 4 + 8


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """net.pt and net.onnx hold one set of weights (medical); two other models are natural images."""
    folder = tmp_path_factory.mktemp("models")
    write_torch(folder / "net.pt")
    write_onnx(folder / "net.onnx")
    rng = np.random.default_rng(3)
    for name in ("other1", "other2"):
        state = {
            "c1.weight": rng.standard_normal((6, 3, 3, 3)),
            "c2.weight": rng.standard_normal((5, 6, 3, 3)),
        }
        torch.save(
            {k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()}, folder / f"{name}.pt"
        )
    catalog = folder / "catalog.toml"
    entries = [
        ("net.pt", "medical mri"),
        ("net.onnx", "medical mri"),
        ("other1.pt", "natural"),
        ("other2.pt", "natural"),
    ]
    catalog.write_text(
        "".join(f'[[model]]\npath = "{folder / p}"\nname = "{p}"\ndomain = "{d}"\n\n' for p, d in entries)
    )
    lake = tmp_path_factory.mktemp("lake") / "lake"
    assert [o.status for o in ingest([], lake, [catalog])] == [INGESTED] * 4
    return lake


def ids_by_name(lake: Path) -> dict[str, str]:
    return dict(connect(lake).execute("SELECT name, model_id FROM models").fetchall())


def test_duplicates_are_counted_once(lake: Path) -> None:
    ids = ids_by_name(lake)
    kept, merged = sorted([ids["net.pt"], ids["net.onnx"]])
    analysis = analyze(lake, group_by=("domain", "model", "medical"), permutations=PERMUTATIONS)
    assert [(d.kept, d.merged, d.n_filters) for d in analysis.duplicates] == [
        (kept, (merged,), FILTERS_PER_EXPORT)
    ]
    assert analysis.model_ids == frozenset(ids.values()) - {merged}
    n_other = 6 * 3 + 5 * 6
    assert analysis.basis.n == FILTERS_PER_EXPORT + 2 * n_other  # the export counted once
    con = analysis.connect()
    per_group = con.execute(
        "SELECT DISTINCT group_a, n_models_a FROM shifts WHERE group_by = 'domain'"
    ).fetchall()
    assert dict(per_group) == {"medical mri": 1, "natural": 2}
    labels = {r[0] for r in con.execute("SELECT group_a FROM shifts WHERE group_by = 'model'").fetchall()}
    kept_name = next(name for name, model_id in ids.items() if model_id == kept)
    assert labels == {kept_name, "other1.pt", "other2.pt"}


def test_keep_duplicates_counts_every_model(lake: Path) -> None:
    analysis = analyze(lake, group_by=("domain",), permutations=PERMUTATIONS, merge_duplicates=False)
    assert analysis.duplicates == [] and len(analysis.model_ids) == 4
    assert analysis.basis.n == 2 * FILTERS_PER_EXPORT + 2 * (6 * 3 + 5 * 6)


def test_the_report_names_the_merged_models(lake: Path, tmp_path: Path) -> None:
    report = analyze_and_report(lake, tmp_path / "report", permutations=PERMUTATIONS)
    html = report.index.read_text(encoding="utf-8")
    assert "Identical weights count once: 1 set of models" in html
    assert "leaves the other 1 model out of the basis" in html
    kept_name = "net.onnx" if ids_by_name(lake)["net.onnx"] < ids_by_name(lake)["net.pt"] else "net.pt"
    merged_name = ({"net.onnx", "net.pt"} - {kept_name}).pop()
    table = (tmp_path / "report" / "tables" / "duplicate_weights.csv").read_text()
    assert table.splitlines()[1].startswith(f"{kept_name},{merged_name},")
    assert "onnx, torch-state-dict" in table


def test_the_view_finds_exactly_the_models_with_equal_layers(corpus_lake: Path) -> None:
    """An independent rule: two models hold the same weights when their multisets of layers, each layer as its
    (out, in) shape and exact float32 filter bytes in filter order, are equal."""
    con = connect(corpus_lake)
    groups: dict[frozenset, set[str]] = defaultdict(set)
    for (model_id,) in con.execute("SELECT model_id FROM models WHERE n_filters_3x3 > 0").fetchall():
        groups[frozenset(stored_layers(con, model_id).items())].add(model_id)
    expected = {frozenset(ids) for ids in groups.values() if len(ids) > 1}
    found = {frozenset(r[0]) for r in con.execute("SELECT model_ids FROM duplicate_weights").fetchall()}
    assert found == expected and len(found) == 2
