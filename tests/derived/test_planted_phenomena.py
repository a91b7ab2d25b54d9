"""A lake with planted phenomena: one spikey layer, one binary layer, one 99%-sparse model and a domain effect
present only inside one architecture family. The analysis finds each of them, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from filterlake.derived.analyze import analyze
from filterlake.derived.phenomena import BINARY_LIKE, NEAR_TOTAL_SPARSITY, SPIKEY, SPIKEY_LAYER
from filterlake.ingest import ingest
from filterlake.vocab import INGESTED

RNG = np.random.default_rng(2026)
CHECKER = np.array([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], np.float64)
PERMUTATIONS = 499


def gaussian(out: int, inp: int) -> np.ndarray:
    return RNG.standard_normal((out, inp, 3, 3))


def planted() -> dict[str, tuple[str, str, dict[str, np.ndarray]]]:
    """name -> (architecture, domain, state dict)."""
    models: dict[str, tuple[str, str, dict[str, np.ndarray]]] = {}
    for i in range(10):  # family ResNet: the medical models carry a checkerboard, the natural ones do not
        medical = i < 5  # 5 + 5 models: 252 labellings, so a p-value can fall below 0.05 / 2 (Holm)
        effect = 1.5 * CHECKER if medical else 0.0
        models[f"resnet{i}"] = (
            f"ResNet-{18 + i}",
            "medical mri" if medical else "natural",
            {"a.weight": gaussian(16, 8) + effect, "b.weight": gaussian(16, 16) + effect},
        )
    for i in range(6):  # family VGG: both domains, no effect
        models[f"vgg{i}"] = (
            f"VGG-{11 + i}",
            "medical ct" if i < 3 else "natural",
            {"a.weight": gaussian(16, 8), "b.weight": gaussian(16, 16)},
        )
    spike = gaussian(16, 16)
    spike[:, :14] = RNG.standard_normal((3, 3)) + 1e-3 * RNG.standard_normal(
        (16, 14, 3, 3)
    )  # 224 near-copies
    models["spikey"] = ("SpikeNet", "natural", {"a.weight": gaussian(32, 16), "b.weight": spike})
    binary = RNG.choice([-1.0, 0.0, 1.0], size=(16, 8, 3, 3))
    models["binary"] = ("BinNet", "natural", {"a.weight": gaussian(64, 32), "b.weight": binary})
    sparse = 1e-4 * gaussian(32, 32)  # below 1% of the layer's max |w|: sparse, but not zero (no spike)
    sparse[0, :10] = gaussian(1, 10)[0]  # 10 of 1,024 filters carry the weights
    models["sparse"] = ("SparseNet", "natural", {"a.weight": sparse})
    return models


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    lines = []
    for name, (architecture, domain, state) in planted().items():
        torch.save(
            {k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()}, folder / f"{name}.pt"
        )
        lines.append(
            f'[[model]]\npath = "{name}.pt"\nname = "{name}"\narchitecture = "{architecture}"\n'
            f'domain = "{domain}"\n'
        )
    (folder / "catalog.toml").write_text("\n".join(lines))
    lake = tmp_path_factory.mktemp("lake") / "lake"
    assert {o.status for o in ingest([], lake, [folder / "catalog.toml"])} == {INGESTED}
    return analyze(lake, group_by=("domain", "medical", "model"), permutations=PERMUTATIONS)


def test_each_planted_phenomenon_is_found_and_nothing_else(analysis) -> None:
    rows = (
        analysis.connect()
        .execute(
            "SELECT p.phenomenon, m.name, p.layer_idx FROM phenomena AS p JOIN models AS m USING (model_id) "
            "ORDER BY 1, 2, 3"
        )
        .fetchall()
    )
    assert rows == [
        (BINARY_LIKE, "binary", 1),
        (NEAR_TOTAL_SPARSITY, "sparse", None),
        (SPIKEY, "spikey", None),
        (SPIKEY_LAYER, "spikey", 1),
    ]


def test_the_domain_effect_is_found_inside_its_family_only(analysis) -> None:
    con = analysis.connect()
    query = "SELECT family, p_holm FROM family_contrasts WHERE p_holm IS NOT NULL"
    families = dict(con.execute(query).fetchall())
    assert set(families) == {"ResNet", "VGG"}
    assert families["ResNet"] < 0.05 <= families["VGG"]
    (within,) = con.execute(
        "SELECT p_value FROM controlled_test WHERE factor = 'medical' AND strata = 'family'"
    ).fetchone()
    assert within < 0.05  # the pooled within-family test sees it too


def test_low_frequency_share_is_higher_where_the_checkerboard_is_absent(analysis) -> None:
    """The checkerboard is the highest DCT frequency: the medical ResNets carry more high-frequency energy."""
    shares = dict(
        analysis.connect()
        .execute(
            "SELECT m.domain, sum(f.high_energy) / sum(f.low_energy + f.high_energy) FROM layer_frequency AS f "
            "JOIN models AS m USING (model_id) WHERE m.architecture LIKE 'ResNet%' GROUP BY 1"
        )
        .fetchall()
    )
    assert shares["medical mri"] > shares["natural"]


def test_layer_frequency_equals_scipy_dct_of_the_scaled_filters(analysis) -> None:
    import scipy.fft

    con = analysis.connect()
    for model_id, layer_idx, low, high in con.execute(
        "SELECT f.model_id, f.layer_idx, f.low_energy, f.high_energy FROM layer_frequency AS f "
        "JOIN models AS m USING (model_id) WHERE m.name IN ('resnet0', 'binary', 'sparse')"
    ).fetchall():
        w = con.execute(
            "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? AND layer_idx = ?",
            [model_id, layer_idx],
        ).fetchnumpy()
        filters = np.column_stack([w[f"w{k}"] for k in range(9)]).astype(np.float64)
        peak = np.abs(filters).max(axis=1, keepdims=True)
        scaled = (filters / np.where(peak == 0, 1, peak)).reshape(-1, 3, 3)
        energy = (scipy.fft.dctn(scaled, axes=(1, 2), norm="ortho") ** 2).sum(axis=0)
        order = np.add.outer(np.arange(3), np.arange(3))
        assert low == pytest.approx(energy[order <= 1].sum(), rel=1e-9)
        assert high == pytest.approx(energy[order > 1].sum(), rel=1e-9)
