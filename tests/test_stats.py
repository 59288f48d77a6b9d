"""The benchmark's statistics against hand-computed values: TOST equivalence and the chance agreement of two
random cells (by enumeration, against the closed forms)."""

from __future__ import annotations

import pytest

from iac_components.evidence.genotypes import chance_agreement, genotype_agreement, random_genotype
from iac_components.stats import tost_paired


def _pairs(diffs):
    return {str(i): 0.8 + d for i, d in enumerate(diffs)}, {str(i): 0.8 for i in range(len(diffs))}


def test_tost_matches_the_hand_computed_t_tests():
    # d = [.001, -.002, .003, 0, .002]: mean .0008, sd .0019235 (sum of squares 1.48e-5 over 4), se .00086023;
    # t_lower = (.0008 + .005) / se = 6.7424, t_upper = (.0008 - .005) / se = -4.8824, 4 degrees of freedom
    a, b = _pairs([0.001, -0.002, 0.003, 0.0, 0.002])
    r = tost_paired(a, b, margin=0.005)
    assert r["n_pairs"] == 5 and r["mean_diff"] == pytest.approx(0.0008)
    assert r["p_lower"] == pytest.approx(0.001261, abs=2e-6)  # P(T_4 > 6.7424)
    assert r["p_upper"] == pytest.approx(0.004073, abs=2e-6)  # P(T_4 < -4.8824)
    assert r["p_tost"] == r["p_upper"] and r["equivalent"]
    # 90 % CI: mean -/+ t_{0.95, 4} se = .0008 -/+ 2.1318 * .00086023
    assert r["ci90"] == pytest.approx([0.0008 - 0.0018339, 0.0008 + 0.0018339], abs=1e-6)


def test_tost_is_not_equivalent_when_the_difference_reaches_the_margin_or_the_data_are_too_few():
    a, b = _pairs([0.004, 0.006, 0.005, 0.007, 0.003])  # mean .005: the upper test cannot reject
    assert not tost_paired(a, b, margin=0.005)["equivalent"]
    a, b = _pairs([0.01, -0.01])  # wide CI with two patients
    assert not tost_paired(a, b, margin=0.005)["equivalent"]
    with pytest.raises(ValueError, match="at least two"):
        tost_paired(*_pairs([0.0]), margin=0.005)
    with pytest.raises(ValueError, match="margin must be > 0"):
        tost_paired(*_pairs([0.0, 0.1]), margin=0.0)


def test_chance_agreement_by_enumeration_matches_the_closed_forms():
    # 2 nodes, 2 ops, by hand: node 0 has its one input pair, each edge (input, op) with probability 1/2 -> 1
    # shared edge, 2 shared inputs, same pair; node 1 (3 inputs): each edge 1/3 -> 6/9 shared edges, each input
    # 2/3 -> 4/3 shared inputs, same pair 1/3. Over 4 edges / 2 nodes: 5/12, 10/12, 2/3.
    assert chance_agreement(2, ("a", "b")) == pytest.approx({"edges": 5 / 12, "inputs": 10 / 12, "nodes": 2 / 3})
    # the default space (4 nodes, 8 ops): sum over m = 2..5 inputs of 4/m shared inputs, 1/8 of them with the op
    s = sum(4 / m for m in range(2, 6))
    expected = {"edges": s / 8 / 8, "inputs": s / 8, "nodes": (1 + 1 / 3 + 1 / 6 + 1 / 10) / 4}
    assert chance_agreement() == pytest.approx(expected)


def test_sampled_random_cells_agree_at_the_enumerated_chance():
    pairs = [(random_genotype(2 * i), random_genotype(2 * i + 1)) for i in range(3000)]
    mean = {k: sum(genotype_agreement(a, b)[k] for a, b in pairs) / len(pairs) for k in ("edges", "inputs", "nodes")}
    assert mean == pytest.approx(chance_agreement(), abs=0.02)


# --- cells as the unit (issue: does the search find anything?) ------------------------------------------------
from iac_components.stats import cell_level_test, joint_bootstrap, tost_from_draws  # noqa: E402


def test_cell_level_test_is_the_exact_permutation_p_of_the_searched_cells_mean():
    # searched [3, 4] vs random [1, 2, 0]: the observed difference 3.5 - 1 = 2.5 is the largest of the C(5, 2) = 10
    # relabellings, so one-sided p = 1/10; ranks: both above every random cell
    r = cell_level_test([3.0, 4.0], [1.0, 2.0, 0.0])
    assert r["exact"] and r["p"] == pytest.approx(0.1)
    assert r["mean_diff"] == pytest.approx(2.5) and r["rank_among_random"] == [1, 1]
    assert r["n_searched"] == 2 and r["n_random"] == 3
    # searched [0, 1] among [2, 3, 4]: the two smallest values, every relabelling is at least as large: p = 1
    assert cell_level_test([0.0, 1.0], [2.0, 3.0, 4.0])["p"] == pytest.approx(1.0)
    # a searched cell in the middle, [2] vs [1, 3]: the relabellings give {2}: 2 - 2 = 0, {1}: 1 - 2 = -1,
    # {3}: 3 - 1.5 = 1.5; at least the observed 0 in 2 of 3
    assert cell_level_test([2.0], [1.0, 3.0])["p"] == pytest.approx(2 / 3)


def test_cell_level_test_samples_when_enumeration_is_too_large_and_refuses_an_empty_group():
    r = cell_level_test([1.0] * 5, [0.0] * 30, max_exact=10, n_perm=2000)
    assert not r["exact"] and r["p"] < 0.01  # C(35, 5) relabellings; only those picking five 1s reach the observed
    with pytest.raises(ValueError, match="at least one searched"):
        cell_level_test([], [1.0])


def test_joint_bootstrap_resamples_cells_as_well_as_patients():
    patients = [f"p{i}" for i in range(30)]
    # group a: two cells with the same patient profile shifted by +-0.02; group b: one cell at the profile
    profile = {p: 0.8 + 0.001 * i for i, p in enumerate(patients)}
    cells = {"a1": {p: v + 0.02 for p, v in profile.items()}, "a2": {p: v - 0.02 for p, v in profile.items()},
             "b1": dict(profile)}
    r = joint_bootstrap(cells, ["a1", "a2"], ["b1"], n_boot=4000)
    assert r["mean_diff"] == pytest.approx(0.0, abs=1e-12) and r["n_patients"] == 30
    # the patients shift both groups alike (they cancel); only the draw of a's cells moves the difference:
    # -0.02 (a2, a2), 0 (mixed), +0.02 (a1, a1) with probabilities 1/4, 1/2, 1/4
    assert r["ci95"] == pytest.approx([-0.02, 0.02], abs=1e-9)
    draws = r["draws"]
    assert (abs(draws) < 1e-9).mean() == pytest.approx(0.5, abs=0.03)
    # a patient-only bootstrap of the mean cell would say the difference is exactly 0: the cells carry the spread
    paired = joint_bootstrap(cells, ["a1", "a2"], ["b1", "b1"], paired=True, n_boot=2000)
    assert paired["paired"] and paired["ci95"] == pytest.approx([-0.02, 0.02], abs=1e-9)
    with pytest.raises(ValueError, match="same number"):
        joint_bootstrap(cells, ["a1", "a2"], ["b1"], paired=True)


def test_tost_from_draws_and_the_smallest_margin_that_passes():
    draws = [-0.004 + 0.008 * k / 999 for k in range(1000)]  # uniform on [-0.004, 0.004]
    r = tost_from_draws(draws, margin=0.005)
    assert r["equivalent"] and r["p_tost"] == 0.0
    assert r["smallest_margin"] == pytest.approx(0.0036, abs=1e-4)  # |5th / 95th percentile|
    r = tost_from_draws(draws, margin=0.003)
    assert not r["equivalent"] and r["p_upper"] == pytest.approx(0.125, abs=0.002)
