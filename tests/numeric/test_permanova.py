from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import f_oneway

from filterlake.numeric.permanova import (
    holm,
    matched_contrast,
    permanova,
    stratified_permutations,
    within_ss_reference,
)
from filterlake.numeric.permanova_kernel import within_ss


def loop_pseudo_f(d2: np.ndarray, groups: np.ndarray) -> tuple[float, float, float]:
    """Anderson (2001) written out pair by pair: (F, SS_T, SS_W) for squared distances d2."""
    n = len(d2)
    labels = sorted(set(groups.tolist()))
    ss_t = sum(d2[i, j] for i in range(n) for j in range(i + 1, n)) / n
    ss_w = 0.0
    for g in labels:
        members = [i for i in range(n) if groups[i] == g]
        ss_w += sum(d2[i, j] for i, j in combinations(members, 2)) / len(members)
    a = len(labels)
    return ((ss_t - ss_w) / (a - 1)) / (ss_w / (n - a)), ss_t, ss_w


def squared_euclidean(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)


HAND = np.array([[0, 1, 4, 4], [1, 0, 4, 4], [4, 4, 0, 1], [4, 4, 1, 0]], dtype=float)


def test_hand_computed_4x4():
    # SS_T = (1 + 1 + 4·4) / 4 = 4.5; SS_W = 1/2 + 1/2 = 1; F = (3.5 / 1) / (1 / 2) = 7; R² = 3.5 / 4.5
    result = permanova(HAND, np.array(["a", "a", "b", "b"]), n_permutations=99)
    assert result.ss_total == pytest.approx(4.5) and result.ss_within == pytest.approx(1.0)
    assert result.pseudo_f == pytest.approx(7.0) and result.r_squared == pytest.approx(3.5 / 4.5)
    assert result.ss_between == pytest.approx(3.5)
    assert result.n_per_group == {"a": 2, "b": 2} and result.n_arrangements == 6
    # "distance" squares D first: SS_T = (1 + 1 + 4·16) / 4 = 16.5, SS_W = 1, F = 15.5 / 0.5 = 31
    as_distance = permanova(HAND, np.array([0, 0, 1, 1]), n_permutations=9, dissimilarity="distance")
    assert as_distance.pseudo_f == pytest.approx(31.0) and as_distance.ss_total == pytest.approx(16.5)


def test_pseudo_f_matches_a_loop_of_anderson_formulas(rng):
    d = squared_euclidean(rng.normal(size=(17, 3))) + 0.3 * squared_euclidean(rng.normal(size=(17, 1)))
    groups = rng.integers(0, 3, 17)
    result = permanova(d, groups, n_permutations=19)
    f, ss_t, ss_w = loop_pseudo_f(d, groups)
    assert result.pseudo_f == pytest.approx(f, rel=1e-12)
    assert result.ss_total == pytest.approx(ss_t, rel=1e-12) and result.ss_within == pytest.approx(
        ss_w, rel=1e-12
    )
    assert result.r_squared == pytest.approx((ss_t - ss_w) / ss_t, rel=1e-12)


def test_squared_euclidean_d_gives_the_one_way_anova_f(rng):
    x = rng.normal(size=24) + np.repeat([0.0, 0.4, 1.0], 8)
    groups = np.repeat(["x", "y", "z"], 8)
    result = permanova(squared_euclidean(x), groups, n_permutations=99)
    assert result.pseudo_f == pytest.approx(f_oneway(*(x[groups == g] for g in "xyz")).statistic, rel=1e-10)


def test_stratified_permutations_never_cross_strata(rng):
    strata = np.array(list("aabbbbcccd") * 3)
    perms = stratified_permutations(strata, 500, rng)
    assert perms.shape == (500, 30)
    np.testing.assert_array_equal(np.sort(perms, axis=1), np.tile(np.arange(30), (500, 1)))
    assert (strata[perms] == strata).all()  # every permutation drawn maps each stratum onto itself
    assert len({tuple(p) for p in perms}) > 490  # and they do shuffle


def test_the_null_is_f_over_the_restricted_permutations(rng):
    d = squared_euclidean(rng.normal(size=(14, 2)))
    groups = np.array([0, 1] * 7)
    strata = np.array(["r"] * 6 + ["v"] * 5 + ["e"] * 3)
    groups[-3:] = 1  # stratum "e" holds one group only: excluded
    result = permanova(d, groups, strata, n_permutations=200, seed=5)
    keep = strata != "e"
    np.testing.assert_array_equal(result.included, keep)
    assert result.n == 11 and result.n_strata_informative == 2 and result.n_strata_excluded == 1
    assert set(result.informative_strata) == {"r", "v"}
    perms = stratified_permutations(strata[keep], 200, np.random.default_rng(5))
    d_in, g_in = d[np.ix_(keep, keep)], groups[keep]
    expected = [loop_pseudo_f(d_in, g_in[p])[0] for p in perms]
    np.testing.assert_allclose(result.null, expected, rtol=1e-10)
    assert result.pseudo_f == pytest.approx(loop_pseudo_f(d_in, g_in)[0], rel=1e-12)
    tie = 100 * np.finfo(float).eps * result.pseudo_f
    assert result.p_value == (1 + np.count_nonzero(result.null >= result.pseudo_f - tie)) / 201
    # strata r: 3 + 3 of 6 -> C(6, 3) = 20; v: 3 of group 0 and 2 of group 1 -> C(5, 2) = 10
    assert result.n_arrangements == 200


def test_planted_effect_gives_a_small_p(rng):
    x = rng.normal(size=(40, 4))
    groups = np.arange(40) % 2
    x[groups == 1] += 1.5
    strata = np.repeat(np.arange(8), 5)
    result = permanova(squared_euclidean(x), groups, strata, n_permutations=999)
    assert result.p_value == pytest.approx(1 / 1000) and result.r_squared > 0.3


def test_no_effect_gives_roughly_uniform_p_values():
    p = []
    for seed in range(40):
        data = np.random.default_rng(seed)
        d = squared_euclidean(data.normal(size=(16, 3)))
        p.append(permanova(d, np.arange(16) % 2, np.repeat([0, 1], 8), n_permutations=199, seed=seed).p_value)
    p = np.array(p)
    assert 0.3 < p.mean() < 0.7 and np.mean(p < 0.1) < 0.3 and np.mean(p > 0.5) > 0.25


def test_deterministic_given_the_seed(rng):
    d = squared_euclidean(rng.normal(size=(12, 2)))
    groups, strata = np.arange(12) % 2, np.repeat([0, 1, 2], 4)
    a = permanova(d, groups, strata, n_permutations=100, seed=3)
    b = permanova(d, groups, strata, n_permutations=100, seed=3)
    c = permanova(d, groups, strata, n_permutations=100, seed=4)
    np.testing.assert_array_equal(a.null, b.null)
    assert a.p_value == b.p_value and not np.array_equal(a.null, c.null)
    assert (a.seed, a.n_permutations, a.dissimilarity) == (3, 100, "squared")


def test_two_label_columns_form_combined_strata(rng):
    d = squared_euclidean(rng.normal(size=(8, 2)))
    family = np.array(["resnet"] * 4 + ["unet"] * 4)
    task = np.array(["cls", "cls", "seg", "seg"] * 2)
    groups = np.array([0, 1, 0, 0, 0, 1, 1, 0])
    result = permanova(d, groups, np.stack([family, task], axis=1), n_permutations=20)
    # (resnet, seg) holds group 0 only; the other three combinations hold both groups
    assert result.informative_strata == (("resnet", "cls"), ("unet", "cls"), ("unet", "seg"))
    assert result.n == 6 and result.n_strata_excluded == 1


def test_invalid_inputs_raise():
    groups = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError):
        permanova(HAND + np.triu(np.ones((4, 4)), 1), groups)  # not symmetric
    with pytest.raises(ValueError):
        permanova(HAND, groups, strata=np.array([0, 0, 1, 1]))  # no stratum holds both groups
    with pytest.raises(ValueError):
        permanova(HAND[:2, :2], groups[1:3])  # no more models than groups
    with pytest.raises(ValueError):
        permanova(HAND, groups, dissimilarity="kl")


def test_holm_against_a_hand_case():
    # sorted 0.01, 0.03, 0.04, 0.5 -> 4·0.01, 3·0.03, max(0.09, 2·0.04), max(0.09, 0.5)
    np.testing.assert_allclose(holm(np.array([0.04, 0.01, 0.5, 0.03])), [0.09, 0.04, 0.5, 0.09])
    np.testing.assert_allclose(holm(np.array([0.3, 0.4, 0.9])), [0.9, 0.9, 0.9])
    np.testing.assert_allclose(holm(np.array([0.6, 0.5])), [1.0, 1.0])  # capped at 1
    assert holm(np.array([])).shape == (0,)
    with pytest.raises(ValueError):
        holm(np.array([0.1, np.nan]))


def test_holm_is_monotone_and_never_below_the_raw_p(rng):
    p = rng.random(30) ** 3
    adjusted = holm(p)
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all() and (adjusted >= p).all() and (adjusted <= 1).all()


def test_matched_contrast_hand_case():
    contrast = matched_contrast(HAND, np.array(["med", "med", "nat", "nat"]))
    assert (contrast.between_mean, contrast.within_mean) == (4.0, 1.0)
    assert (contrast.n_between, contrast.n_within) == (4, 2) and contrast.difference == 3.0
    assert contrast.n_per_group == {"med": 2, "nat": 2}
    single = matched_contrast(HAND[:2, :2], np.array([True, False]))
    assert single.between_mean == 1.0 and np.isnan(single.within_mean) and single.n_within == 0
    with pytest.raises(ValueError):
        matched_contrast(HAND, np.array([0, 0, 0, 0]))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 40),
    n_groups=st.integers(1, 6),
    rows=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_the_compiled_within_sums_equal_the_reference(n, n_groups, rows, seed, ties):
    """The kernel `permanova` runs equals the one-hot reference to 1e-12 relative: any number of groups,
    empty groups, tied dissimilarities, a single model per group."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (n, 2)).astype(float) if ties else rng.standard_normal((n, 3))
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    codes = rng.integers(0, n_groups, (rows, n))
    sizes = np.maximum(np.bincount(codes[0], minlength=n_groups), 1).astype(float)
    compiled = within_ss(d2, codes, 1.0 / sizes)
    reference = within_ss_reference(d2, codes, sizes)
    np.testing.assert_allclose(compiled, reference, rtol=1e-12, atol=1e-12 * max(d2.max(), 1.0))
