"""The temporal analyses on scripted histories with known answers, and `iac report` on a real short search."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from iac_components.analysis.temporal import (
    cosine_similarity_matrix,
    cosine_to_final,
    edge_order,
    emergence,
    hamming_similarity_matrix,
    importance_tensor,
    load_history,
    topk_codes,
)
from iac_components.genotype import Genotype

OPS = ["a", "b", "c", "d"]


def _history(tables):
    """A minimal history: per epoch, importance per edge as {op: value} (missing edges: all zero)."""
    epochs = []
    for t, imp in enumerate(tables, start=1):
        epochs.append({"epoch": t, "groups": [{"importance": imp}], "checks": [], "ops_alive": 0, "wall_clock_s": 1.0})
    return {"format": "iac-search-history/1", "search_space": {"ops": OPS, "n_nodes": 4}, "epochs": epochs}


def test_importance_tensor_places_values_and_zeros_pruned_entries():
    h = _history([{"0->2": {"a": 0.1, "b": 0.4}, "4->5": {"d": 0.9}}])
    imp = importance_tensor(h)
    assert imp.shape == (1, 14, 4)
    assert imp[0, 0, 1] == pytest.approx(0.4) and imp[0, 0, 2] == 0.0  # 'c' pruned on 0->2
    assert imp[0, edge_order().index("4->5"), 3] == pytest.approx(0.9)


def test_topk_codes_and_hamming_similarity():
    imp = np.array([[[0.4, 0.3, 0.2, 0.1]], [[0.1, 0.2, 0.3, 0.4]], [[0.4, 0.3, 0.2, 0.1]]])
    top1 = topk_codes(imp, 1)
    assert top1[:, 0].tolist() == [[True, False, False, False], [False, False, False, True], [True, False, False, False]]
    s = hamming_similarity_matrix(top1)
    # epochs 1 and 2 disagree on 2 of 4 entries: 0.5; epochs 1 and 3 agree everywhere: 1
    assert s.tolist() == [[1.0, 0.5, 1.0], [0.5, 1.0, 0.5], [1.0, 0.5, 1.0]]
    s2 = hamming_similarity_matrix(topk_codes(imp, 2))
    assert s2[0, 1] == pytest.approx(0.0)  # top-2 {a, b} vs {c, d}: every entry differs


def test_cosine_similarity_and_convergence_to_final():
    imp = np.array([[[1.0, 0.0]], [[1.0, 1.0]], [[0.0, 1.0]]])
    m = cosine_similarity_matrix(imp)
    assert m[0, 2] == pytest.approx(0.0) and m[0, 1] == pytest.approx(1 / np.sqrt(2))
    assert cosine_to_final(imp).tolist() == pytest.approx([0.0, 1 / np.sqrt(2), 1.0])


def test_emergence_is_the_first_epoch_from_which_the_final_choice_stays():
    # edge 0->2 final op 'c': top-3 from epoch 2, top-2 from epoch 3, top-1 from epoch 4 (it dips out at epoch 1)
    seq = [
        {"0->2": {"a": 0.4, "b": 0.3, "c": 0.1, "d": 0.2}},
        {"0->2": {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1}},
        {"0->2": {"a": 0.4, "b": 0.2, "c": 0.3, "d": 0.1}},
        {"0->2": {"a": 0.3, "b": 0.2, "c": 0.4, "d": 0.1}},
    ]
    h = _history(seq)
    g = Genotype(((((0, "c"), (1, "a")),) + tuple(((0, "a"), (1, "a")) for _ in range(3))))
    em = emergence(importance_tensor(h), [1, 2, 3, 4], g, OPS)
    assert em["edges"]["0->2"] == {"op": "c", "top3": 2, "top2": 3, "top1": 4}
    assert em["edges"]["1->2"]["top1"] == 1  # an all-zero edge: ties go to the first op, 'a', from the start
    # node 2's inputs {0, 1} are its only inputs: top-2 from the first epoch
    assert em["nodes"]["2"] == {"inputs": [0, 1], "top2": 1}


def test_load_history_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no search history at .*search_history.json"):
        load_history(tmp_path)
    (tmp_path / "search_history.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a search history"):
        load_history(tmp_path)


@pytest.mark.slow
def test_report_writes_every_figure_and_table_from_a_real_search(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))
    from test_engine import make_search

    from iac_components.analysis.report import write_report

    engine, _ = make_search(max_epochs=6, out=tmp_path, rule={"prune": False})
    engine.run()
    (tmp_path / "cell_contribution.json").write_text(
        '{"epoch": 3, "gamma_mean_abs": [0.1, 0.2, 0.3, 0.4], "gamma_max_abs": [1, 1, 1, 1], "ratio": [0.5, 0.4, 0.3, 0.2]}'
    )
    numbers = write_report(tmp_path, tmp_path / "report")
    expected = {"importance_curves", "similarity_matrices", "cosine_to_final", "emergence", "edge_difficulty", "jsd",
                "cost", "genotype", "cells"}
    assert expected <= set(numbers["files"])
    for key in expected:
        path = Path(numbers["files"][key])
        assert path.suffix == ".png" and path.stat().st_size > 5000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(numbers["cosine_to_final"]) == 6 and numbers["cosine_to_final"][-1] == pytest.approx(1.0)
    assert (tmp_path / "report" / "importance.csv").read_text().count("\n") == 1 + 6 * 14 * 4
    assert (tmp_path / "report" / "report.json").is_file()
    # the rule's verdicts and the cells' contribution, search and retrain, are in the numbers and the table
    statuses = numbers["rule_statuses"]["edge"]
    assert statuses["filling_window"] == 14 and sum(statuses.values()) - statuses["jsd_only"] == 14 * (6 - 1)
    assert len(numbers["cells_search"]["ratio"]) == 4 and numbers["cells_retrain"]["epoch"] == 3
    rows = (tmp_path / "report" / "cells.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 * 4 + 4 and rows[-1].startswith("retrain,3,3,")
