"""The controlled test over a real small lake: PERMANOVA with permutations within architecture families equals
numeric.permanova on the stored model-by-model shift matrix, one-group families are excluded and listed, and the
per-family p-values are Holm-corrected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from filterlake.derived.analyze import analyze
from filterlake.ingest import ingest
from filterlake.numeric.permanova import permanova
from filterlake.report.queries import stored_shifts
from filterlake.vocab import INGESTED

PERMUTATIONS = 199
# (name, architecture, domain, scale of the planted domain effect): ResNet and VGG hold both groups, UNet one.
MODELS = [
    ("r1", "ResNet-18", "medical mri", 1.0),
    ("r2", "ResNet-18", "medical ct", 1.1),
    ("r3", "ResNet-34", "natural", 0.0),
    ("r4", "ResNet-50", "natural", 0.1),
    ("v1", "VGG-11", "medical mri", 1.0),
    ("v2", "VGG-16", "natural", 0.0),
    ("v3", "VGG-19", "natural", 0.1),
    ("u1", "UNet", "medical mri", 0.5),
]


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(5)
    lines = []
    for name, arch, domain, effect in MODELS:
        w = rng.standard_normal((16, 8, 3, 3)) + effect * np.array([[1, -1, 1], [-1, 1, -1], [1, -1, 1]])
        torch.save({"conv.weight": torch.from_numpy(w.astype(np.float32))}, folder / f"{name}.pt")
        lines.append(
            f'[[model]]\npath = "{name}.pt"\nname = "{name}"\narchitecture = "{arch}"\ndomain = "{domain}"\n'
        )
    (folder / "catalog.toml").write_text("\n".join(lines))
    lake = tmp_path_factory.mktemp("lake") / "lake"
    assert {o.status for o in ingest([], lake, [folder / "catalog.toml"])} == {INGESTED}
    return analyze(lake, group_by=("domain", "medical", "model"), permutations=PERMUTATIONS)


def stored_model_matrix(analysis) -> tuple[list[str], np.ndarray]:
    """The stored `model` shifts, rows in model_id order (the order the analysis permutes them in)."""
    con = analysis.connect()
    labels, matrix, _ = stored_shifts(con, analysis.shifts["model"])
    model_id = dict(con.execute("SELECT label, model_id FROM model_labels").fetchall())
    order = sorted(range(len(labels)), key=lambda i: model_id[labels[i]])
    return [labels[i] for i in order], matrix[np.ix_(order, order)]


def test_family_restricted_test_equals_permanova_on_the_stored_model_shifts(analysis) -> None:
    con = analysis.connect()
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT strata, pseudo_f, p_value, r_squared, n_models, n_medical, n_non_medical, n_strata_informative, "
            "n_strata_excluded, informative_strata FROM controlled_test WHERE factor = 'medical'"
        ).fetchall()
    }
    labels, matrix = stored_model_matrix(analysis)
    family = {"r": "ResNet", "v": "VGG", "u": "UNet"}
    groups = np.array(
        [
            "medical" if {m[0]: m[2] for m in MODELS}[g].startswith("medical") else "non-medical"
            for g in labels
        ]
    )
    strata = np.array([family[g[0]] for g in labels])
    expected = permanova(matrix, groups, strata, PERMUTATIONS, 0)
    f, p, r2, n, n_med, n_other, informative, excluded, names = rows["family"]
    assert (n, n_med, n_other, informative, excluded) == (7, 3, 4, 2, 1)
    assert f == pytest.approx(expected.pseudo_f, rel=1e-9) and p == expected.p_value
    assert r2 == pytest.approx(expected.r_squared, rel=1e-9) and names == "ResNet; VGG"
    unrestricted = permanova(matrix, groups, None, PERMUTATIONS, 0)
    assert rows["none"][0] == pytest.approx(unrestricted.pseudo_f, rel=1e-9) and rows["none"][3] == 8
    # the planted effect puts the observed labelling on top of all 6 x 3 = 18 the restricted permutations reach,
    # so p is about 1/18: as low as 8 models in two families can go (docs/methods/permanova.md)
    (arrangements,) = con.execute(
        "SELECT n_arrangements FROM controlled_test WHERE factor = 'medical' AND strata = 'family'"
    ).fetchone()
    assert arrangements == 18 and p < 0.12


def test_family_contrasts_are_holm_corrected_and_one_group_families_listed(analysis) -> None:
    rows = {
        r[0]: r[1:]
        for r in analysis.connect()
        .execute(
            "SELECT family, n_medical, n_non_medical, between_mean, within_mean, p_value, p_holm FROM family_contrasts"
        )
        .fetchall()
    }
    assert rows["UNet"] == (1, 0, None, None, None, None)
    p_resnet, p_vgg = rows["ResNet"][4], rows["VGG"][4]
    low, high = sorted([p_resnet, p_vgg])
    holm = {low: min(1.0, 2 * low), high: max(min(1.0, 2 * low), high)}
    assert rows["ResNet"][5] == pytest.approx(holm[p_resnet]) and rows["VGG"][5] == pytest.approx(holm[p_vgg])
    labels, matrix = stored_model_matrix(analysis)
    resnet = [i for i, g in enumerate(labels) if g.startswith("r")]
    medical = [i for i in resnet if labels[i] in ("r1", "r2")]
    between = [matrix[i, j] for i in medical for j in resnet if j not in medical]
    assert rows["ResNet"][2] == pytest.approx(np.mean(between), rel=1e-9)


def test_the_domains_themselves_are_tested_and_every_pair_is_holm_corrected(analysis) -> None:
    con = analysis.connect()
    labels, matrix = stored_model_matrix(analysis)
    domain = {m[0]: m[2] for m in MODELS}
    family = {"r": "ResNet", "v": "VGG", "u": "UNet"}
    groups = np.array([domain[g] for g in labels])
    strata = np.array([family[g[0]] for g in labels])
    (f, p, n_groups, informative) = con.execute(
        "SELECT pseudo_f, p_value, n_groups, n_strata_informative FROM controlled_test "
        "WHERE factor = 'domain' AND strata = 'family'"
    ).fetchone()
    expected = permanova(matrix, groups, strata, PERMUTATIONS, 0)
    assert n_groups == 3 and informative == 2
    assert f == pytest.approx(expected.pseudo_f, rel=1e-9) and p == expected.p_value
    pairs = con.execute(
        "SELECT domain_a, domain_b, n_a, n_b, p_value, p_holm, family_p_value, n_families_informative "
        "FROM domain_pairs ORDER BY domain_a, domain_b"
    ).fetchall()
    assert [(a, b, na, nb) for a, b, na, nb, *_ in pairs] == [
        ("medical ct", "medical mri", 1, 3),
        ("medical ct", "natural", 1, 4),
        ("medical mri", "natural", 3, 4),
    ]
    raw = np.array([r[4] for r in pairs])
    order = np.argsort(raw)
    holm = np.maximum.accumulate(np.minimum(1, (3 - np.arange(3)) * raw[order]))
    assert [r[5] for r in pairs] == pytest.approx(holm[np.argsort(order)].tolist())
    inside = np.isin(groups, ["medical mri", "natural"])
    sub = permanova(matrix[np.ix_(inside, inside)], groups[inside], None, PERMUTATIONS, 0)
    assert pairs[2][4] == sub.p_value
    assert pairs[0][7] == 1  # only ResNet holds both a medical-ct and a medical-mri model


def test_labellings_beyond_float_range_are_infinite() -> None:
    """Hundreds of models reach more labellings than a float64 holds (the regroup benchmark's 1,000 models)."""
    import math

    from filterlake.derived.controlled import _as_float

    assert _as_float(math.comb(20, 10)) == 184_756.0
    assert _as_float(math.factorial(1000)) == math.inf
