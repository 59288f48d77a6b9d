"""The benchmark's statistics against hand-computed values: TOST equivalence and the chance agreement of two
random cells (by enumeration, against the closed forms)."""

from __future__ import annotations

import pytest

from iac_components.benchmark.genotypes import chance_agreement, genotype_agreement, random_genotype
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
