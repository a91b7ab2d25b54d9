"""What training changed, per layer: a trained layer's D from the same layer of its family's untrained baselines,
matched by family (without case or punctuation), position and shape, equals D recomputed from the raw filters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from filterlake.derived.analyze import analyze
from filterlake.ingest import ingest
from filterlake.vocab import INGESTED, UNTRAINED
from tests.derived.test_refresh import reference_shift

RNG = np.random.default_rng(8)
# name -> (architecture, domain, layer shapes): two baseline seeds of tinynet and one of tinynet16, a trained
# TinyNet-2 with tinynet's shapes, a trained Tiny-Net with tinynet16's, and a trained model of another family.
MODELS = {
    "base0": ("tinynet", UNTRAINED, [(8, 3), (8, 8)]),
    "base1": ("tinynet", UNTRAINED, [(8, 3), (8, 8)]),
    "bigbase": ("tinynet16", UNTRAINED, [(8, 3), (16, 8)]),  # another design of the family
    "trained": ("TinyNet-2", "natural", [(8, 3), (8, 8)]),
    "wider": ("Tiny-Net", "medical mri", [(8, 3), (16, 8)]),
    "other": ("OtherNet", "natural", [(8, 3), (8, 8)]),
}


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    lines = []
    for name, (architecture, domain, shapes) in MODELS.items():
        scale = 1.0 if domain == UNTRAINED else 0.3
        state = {
            f"c{i}.weight": torch.from_numpy(
                (scale * RNG.standard_normal((o, n, 3, 3)) + (domain != UNTRAINED)).astype(np.float32)
            )
            for i, (o, n) in enumerate(shapes)
        }
        torch.save(state, folder / f"{name}.pt")
        lines.append(
            f'[[model]]\npath = "{name}.pt"\nname = "{name}"\narchitecture = "{architecture}"\ndomain = "{domain}"\n'
        )
    (folder / "catalog.toml").write_text("\n".join(lines))
    lake = tmp_path_factory.mktemp("lake") / "lake"
    assert {o.status for o in ingest([], lake, [folder / "catalog.toml"])} == {INGESTED}
    return analyze(lake, group_by=("domain",), permutations=20)


def coefficients(analysis, name: str, layer_idx: int) -> np.ndarray:
    con = analysis.connect()
    w = con.execute(
        "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters JOIN models USING (model_id) "
        "WHERE name = ? AND layer_idx = ? ORDER BY filter_idx",
        [name, layer_idx],
    ).fetchnumpy()
    filters = np.column_stack([w[f"w{k}"] for k in range(9)]).astype(np.float64)
    peak = np.abs(filters).max(axis=1, keepdims=True)
    basis = analysis.basis
    return (filters / np.where(peak == 0, 1, peak) - basis.mean) @ basis.components.T


def test_matched_layers_and_their_shift(analysis) -> None:
    rows = (
        analysis.connect()
        .execute(
            "SELECT m.name, b.layer_idx, b.baseline_architecture, b.n_baselines, b.shift FROM baseline_shifts AS b "
            "JOIN models AS m USING (model_id) ORDER BY 1, 2"
        )
        .fetchall()
    )
    assert [r[:4] for r in rows] == [
        ("trained", 0, "tinynet", 2),
        ("trained", 1, "tinynet", 2),
        ("wider", 0, "tinynet16", 1),  # the design matching both its layers
        ("wider", 1, "tinynet16", 1),
    ]
    bases = {"tinynet": ("base0", "base1"), "tinynet16": ("bigbase",)}
    spec, weights = analysis.spec, analysis.weights()
    for name, layer_idx, design, _n, d in rows:
        pooled = np.vstack([coefficients(analysis, b, layer_idx) for b in bases[design]])
        expected = reference_shift(
            coefficients(analysis, name, layer_idx), pooled, spec.lo, spec.hi, spec.bins, weights
        )
        assert d == pytest.approx(expected, rel=1e-9)
