"""The cell study's report on hand-made inputs: recovery of a known winner against chance, the emergence of a
final op, and the report's required shape."""

from __future__ import annotations

import pytest

from iac_components.evidence.cell_report import emergence, recovery, render_markdown, study_report
from iac_components.evidence.cells import arm_kind, chain_genotype, random_genotype_over
from iac_components.genotype import Genotype

OPS = ("skip_connect", "avg_pool_3x3", "conv_3x3", "sep_conv_3x3", "dil_conv_3x3")


def test_recovery_counts_edges_with_the_winner_against_uniform_chance():
    all_conv = chain_genotype("conv_3x3").to_dict()
    half = Genotype(tuple(((j, "conv_3x3"), (j + 1, "skip_connect")) for j in range(4))).to_dict()
    r = recovery([all_conv, half], "conv_3x3", n_ops=5)
    assert r["per_cell"] == [1.0, 0.5] and r["pooled"] == pytest.approx(0.75) and r["edges"] == 16
    # 12 of 16 edges at chance 1/5: one-sided binomial P(X >= 12) is tiny; 0 of 16 is not unusual at all
    assert r["p_binomial"] < 1e-5 and r["cells_above_chance"] == 2
    assert recovery([chain_genotype("skip_connect").to_dict()], "conv_3x3", n_ops=5)["p_binomial"] == pytest.approx(1.0)


def test_emergence_is_the_arch_step_from_which_the_final_op_stays_top_one():
    def check(step, conv, skip):
        return {"arch_step": step, "alpha": [{"0->2": {"conv_3x3": conv, "skip_connect": skip}}]}

    history = {"epochs": [{"checks": [check(10, 0.0, 1.0), check(20, 2.0, 1.0), check(30, 0.5, 1.0)]},
                          {"checks": [check(40, 2.0, 1.0), check(50, 3.0, 1.0)]}]}  # fmt: skip
    genotype = Genotype((((0, "conv_3x3"), (1, "conv_3x3")),)).to_dict()  # edge 1->2 never recorded
    e = emergence(history, genotype)
    # top-1 at 20, lost at 30, top-1 again from 40 to the end (50): 40 / 50
    assert e["fractions"] == [pytest.approx(0.8), None] and e["never_top1_at_the_end"] == 1


def test_arms_are_classified_by_what_varies():
    assert arm_kind("one_op_conv_3x3") == ("one_op", None)
    assert arm_kind("random_12") == ("random", None)
    assert arm_kind("full_s3") == ("full", 3) and arm_kind("lth_s3") == ("lth", 3)
    assert arm_kind("random_cuts_s2") == ("control", 2) and arm_kind("truncated_s5") == ("control", 5)
    assert arm_kind("no_cells_10x") == ("reference", None)
    with pytest.raises(ValueError, match="unknown arm"):
        arm_kind("something_else")


def test_random_cells_draw_from_the_searched_ops_only():
    cells = [random_genotype_over(k, OPS) for k in range(30)]
    used = {op for g in cells for _, _, op in g.edges()}
    assert used == set(OPS)


def test_the_report_has_the_required_shape():
    patients = [f"p{i}" for i in range(10)]

    def cell(kind, name, seed, level, genotype):
        pp = {p: {"dice": level + 0.001 * i} for i, p in enumerate(patients)}
        return {"kind": kind, "name": name, "seed": seed, "mean_dice": level + 0.0045, "cell_parameters": 1,
                "genotype": genotype, "per_patient": pp}  # fmt: skip

    cells = [cell("one_op", f"one_op_{op}", None, 0.7 + 0.01 * k, chain_genotype(op).to_dict()) for k, op in enumerate(OPS)]
    cells += [cell("random", f"random_{k}", None, 0.70 + 0.002 * k, random_genotype_over(k, OPS).to_dict()) for k in range(15)]
    for s in range(1, 6):
        cells.append(cell("full", f"full_s{s}", s, 0.74, chain_genotype("dil_conv_3x3").to_dict()))
        cells.append(cell("lth", f"lth_s{s}", s, 0.739, chain_genotype("dil_conv_3x3").to_dict()))
    cells.append(cell("reference", "no_cells", None, 0.68, None))
    r = study_report({"cells": cells, "ops": list(OPS), "searches": {}})
    kinds = [c["kind"] for c in r["cells"]]
    assert kinds.count("one_op") == 5 and kinds.count("random") == 15 and kinds.count("full") == 5 and kinds.count("lth") == 5
    assert set(r["searched_vs_random"]) >= {"p", "n_searched", "n_random", "mean_diff"}
    assert r["searched_vs_random"]["p"] < 0.01  # every searched cell above every random one
    ka = r["known_answer"]
    assert ka["winner"] == "dil_conv_3x3" and ka["winner_margin"] == pytest.approx(0.02)
    assert ka["full_recovery"]["pooled"] == 1.0 and ka["chance"] == pytest.approx(0.2) and "emergence" in ka
    assert set(r["tost"]) >= {"margin", "lth_vs_full_p", "random_vs_full_p"}
    # the margin is half of the measured value of search over random: LTH (0.001 below) passes, random cells do not
    assert r["tost"]["lth_vs_full_p"] < 0.05 and r["tost"]["random_vs_full_p"] > 0.05
    # one level up: the one-op cells' classes, read from the ops (weights or none)
    wc = ka["winning_class"]
    assert wc["classes"] == {"learned": ["conv_3x3", "sep_conv_3x3", "dil_conv_3x3"], "parameter_free": ["skip_connect", "avg_pool_3x3"]}
    assert wc["winner"] == "learned" and wc["margin"] == pytest.approx(0.03 - 0.005)
    assert wc["full_recovery"]["pooled"] == 1.0 and wc["full_recovery"]["chance"] == pytest.approx(0.6)


def test_class_recovery_counts_any_op_of_the_class_against_its_share_of_the_ops():
    mixed = Genotype(tuple(((j, "conv_3x3"), (j + 1, "skip_connect")) for j in range(4))).to_dict()
    r = recovery([mixed], ["conv_3x3", "sep_conv_3x3", "dil_conv_3x3"], n_ops=5)
    assert r["pooled"] == 0.5 and r["chance"] == pytest.approx(0.6) and r["p_binomial"] > 0.5


def test_searches_over_a_second_baseline_join_recovery_but_not_the_cell_level_tests():
    """A fifth seed searched over another baseline counts where the search is the unit (recovery, agreement) and
    is read against its own no-cell retrain, never pooled with the first baseline's cells."""
    patients = [f"p{i}" for i in range(10)]

    def cell(kind, name, seed, level, genotype):
        pp = {p: {"dice": level} for p in patients}
        return {"kind": kind, "name": name, "seed": seed, "mean_dice": level, "cell_parameters": 1,
                "genotype": genotype, "per_patient": pp}  # fmt: skip

    conv, skip = chain_genotype("conv_3x3").to_dict(), chain_genotype("skip_connect").to_dict()
    cells = [cell("one_op", f"one_op_{op}", None, 0.7 + 0.01 * k, chain_genotype(op).to_dict()) for k, op in enumerate(OPS)]
    cells += [cell("random", f"random_{k}", None, 0.70 + 0.002 * k, random_genotype_over(k, OPS).to_dict()) for k in range(3)]
    cells += [cell("full", "full_s1", 1, 0.74, conv), cell("lth", "lth_s1", 1, 0.73, conv), cell("reference", "no_cells", None, 0.68, None)]
    second = {"cells": [cell("full", "full_s5", 5, 0.90, skip), cell("lth", "lth_s5", 5, 0.89, skip),
                        cell("reference", "no_cells", None, 0.88, None)], "searches": {}}  # fmt: skip
    r = study_report({"cells": cells, "ops": list(OPS), "searches": {}}, second=second)
    assert r["searched_vs_random"]["n_searched"] == 1  # the second baseline's 0.90 is not pooled with the first's
    assert r["known_answer"]["full_recovery"]["n_cells"] == 2 and r["known_answer"]["lth_recovery"]["n_cells"] == 2
    assert r["agreement"]["lth_vs_full_same_seed"]["n_pairs"] == 2
    assert r["second_baseline"]["cells"]["full_s5"]["minus_no_cells"] == pytest.approx(0.02)
    assert [c["baseline"] for c in r["cells"] if c["seed"] == 5] == [2, 2]
    assert "second baseline" in render_markdown(r)


def test_an_interrupted_study_search_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """A search step stopped after a checkpoint runs again with ``resume`` (the engine then restores it exactly, as
    tests/search/test_engine.py shows); a fresh one starts from scratch."""
    import iac_components.evidence.cells as cells

    calls = []
    monkeypatch.setattr(cells, "run_workflow", lambda config, run_id, log, overrides: calls.append(overrides))
    study = cells.CellStudy(tmp_path / "study", tmp_path / "raw", tmp_path / "configs", epochs=2, retrain_epochs=1)
    (tmp_path / "study" / "baseline").mkdir(parents=True)
    (tmp_path / "study" / "baseline" / "baseline.pt").write_bytes(b"0")
    study.run_task("search_full_s1")
    assert "resume" not in calls[-1] and calls[-1]["prune"] is False and calls[-1]["seed"] == 1
    ckpts = tmp_path / "study" / "search_full_s1" / "search_checkpoints"
    ckpts.mkdir()
    (ckpts / "checkpoint_epoch=1.pt").write_bytes(b"0")
    study.run_task("search_full_s1")  # no genotype.json yet: not finished, so it runs again, resuming
    assert calls[-1]["resume"] is True
