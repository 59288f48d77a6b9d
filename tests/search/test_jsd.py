from __future__ import annotations

import math

import pytest

from iac_components.search.pruning import jsd, next_keep_size


def test_identical_distributions_have_zero_divergence():
    assert jsd([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_distributions_have_one_bit():
    assert jsd([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert jsd([0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]) == pytest.approx(1.0)


def test_worked_middle_case():
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4)
    # KL(p||m) = log2(4/3); KL(q||m) = 1/2 log2(2/3) + 1/2 log2(2) ; JSD = mean of the two
    expected = 0.5 * (math.log2(4 / 3) + 0.5 * math.log2(2 / 3) + 0.5 * math.log2(2))
    assert expected == pytest.approx(0.3112781244591328)
    assert jsd([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected)
    assert jsd([0.5, 0.5], [1.0, 0.0]) == pytest.approx(expected)  # symmetric


def test_mappings_are_compared_on_their_common_support_renormalised():
    before = {"a": 0.5, "b": 0.25, "c": 0.25}
    after = {"a": 2 / 3, "b": 1 / 3}  # `c` was pruned; on {a, b} `before` renormalises to the same
    assert jsd(after, before) == pytest.approx(0.0, abs=1e-12)


def test_next_keep_size():
    assert next_keep_size(8, [4, 2, 1]) == 4
    assert next_keep_size(5, [4, 2, 1]) == 4
    assert next_keep_size(3, [4, 2, 1]) == 2
    assert next_keep_size(1, [4, 2, 1]) is None
