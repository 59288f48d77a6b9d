from __future__ import annotations

import pytest

from iac_components.benchmark.genotypes import genotype_agreement, random_genotype
from iac_components.genotype import Genotype
from iac_components.stats import paired_comparison, per_patient_dice

A = Genotype((((0, "conv_3x3"), (1, "skip_connect")),) * 1 + tuple(((0, "conv_3x3"), (1, "conv_3x3")) for _ in range(3)))


def test_random_genotypes_are_valid_and_reproducible():
    g = random_genotype(3)
    g.validate(n_nodes=4)
    assert g == random_genotype(3) and g != random_genotype(4)


def test_genotype_agreement_counts_edges_inputs_and_nodes():
    assert genotype_agreement(A, A) == {"edges": 1.0, "inputs": 1.0, "nodes": 1.0}
    # change one op on one edge, and the inputs of one node
    b = Genotype(
        (((0, "conv_3x3"), (1, "max_pool_3x3")), ((0, "conv_3x3"), (1, "conv_3x3")),
         ((0, "conv_3x3"), (1, "conv_3x3")), ((2, "conv_3x3"), (1, "conv_3x3")))
    )  # fmt: skip
    agree = genotype_agreement(A, b)
    assert agree["edges"] == pytest.approx(6 / 8)  # one op differs, one input differs
    assert agree["inputs"] == pytest.approx(7 / 8)
    assert agree["nodes"] == pytest.approx(3 / 4)


def test_paired_comparison_is_per_patient_with_a_ci_and_wilcoxon():
    rows = [
        {"patient_id": "p1", "case_id": "p1_ED", "dice": {"A": 0.8, "B": 0.6}},
        {"patient_id": "p1", "case_id": "p1_ES", "dice": {"A": 0.6, "B": 0.6}},
        {"patient_id": "p2", "case_id": "p2_ED", "dice": {"A": 0.9, "B": 0.9}},
    ]
    assert per_patient_dice(rows) == pytest.approx({"p1": 0.65, "p2": 0.9})
    a = {f"p{i}": 0.8 + 0.01 * i for i in range(10)}
    b = {f"p{i}": 0.7 + 0.01 * i for i in range(10)}
    c = paired_comparison(a, b)
    assert c["mean_diff"] == pytest.approx(0.1) and c["ci95"] == pytest.approx([0.1, 0.1])
    assert c["wilcoxon_p"] < 0.01 and c["wins"] == 10 and c["n_patients"] == 10
    same = paired_comparison(a, a)
    assert same["wilcoxon_p"] == 1.0 and same["mean_diff"] == 0.0


def test_pooled_tests_pair_arms_per_seed_and_patient():
    """Each seed draws its own folds, so the test patients differ between seeds: the pooled comparison pairs the
    arms within a seed, one unit per (seed, test patient), and never averages different patients together."""
    from iac_components.benchmark.report import ARMS, summarize_seeds

    def seed_run(patients: list[str], lift: float) -> dict:
        arms = {arm: {"mean_dice": 0.8, "cell_gamma": [0.0],
                      "per_patient": {p: 0.7 + 0.01 * n + (lift if arm == "lth" else 0.0) for n, p in enumerate(patients)}}
                for arm in ARMS}  # fmt: skip
        return {"speedup": 2.0, "speedup_vs_200_epochs_extrapolated": 10.0, "full": {"genotype": A.to_dict()},
                "agreement_lth_vs_full": {"edges": 1.0, "inputs": 1.0, "nodes": 1.0}, "arms": arms}

    report = {"seeds": {"0": seed_run(["p1", "p2", "p3"], 0.02), "1": seed_run(["p3", "p4", "p5", "p6"], 0.02)}}
    s = summarize_seeds(report)["summary"]
    assert s["paired_units"] == {"pairs": 7, "distinct_patients": 6}
    t = s["tests"]["lth_vs_full"]
    assert t["n_patients"] == 7 and t["mean_diff"] == pytest.approx(0.02) and t["wins"] == 7
    assert s["tests"]["full_vs_no_cells"]["mean_diff"] == pytest.approx(0.0)
    assert s["agreement_full_vs_full"] == {"edges": 1.0, "inputs": 1.0, "nodes": 1.0}


def test_report_reads_cell_gammas_and_tabulates_epoch_cost(tmp_path):
    """γ comes from the retrained checkpoint (``{"model": state}`` as the bundles save it); the markdown shows the
    largest |γ| per seed and each LTH epoch's ops alive against its wall-clock."""
    import torch

    from iac_components.benchmark.report import ARMS, render_markdown, summarize_seeds
    from iac_components.benchmark.runner import _gammas

    torch.save({"model": {"cells.cells.0.gamma": torch.tensor([0.25]), "cells.cells.1.gamma": torch.tensor([-0.5]),
                          "backbone.w": torch.zeros(2)}}, tmp_path / "model.pt")  # fmt: skip
    assert _gammas(tmp_path / "model.pt") == [0.25, 0.5]

    arms = {arm: {"mean_dice": 0.8, "cell_gamma": [] if arm == "no_cells" else [0.25, -0.5],
                  "per_patient": {"p1": 0.7, "p2": 0.8}} for arm in ARMS}  # fmt: skip
    run = {"speedup": 2.0, "speedup_vs_200_epochs_extrapolated": 10.0,
           "full": {"genotype": A.to_dict(), "wall_clock_s": 100.0, "epochs": 3, "arch_steps": 30, "decided_at": None,
                    "epoch_wall_clock_s": [5.0, 20.0, 22.0]},
           "lth": {"genotype": A.to_dict(), "wall_clock_s": 50.0, "epochs": 3, "arch_steps": 20,
                   "decided_at": {"epoch": 3, "arch_step": 20}, "ops_alive": [112, 40, 8],
                   "epoch_wall_clock_s": [5.0, 12.5, 3.0]},
           "agreement_lth_vs_full": {"edges": 1.0, "inputs": 1.0, "nodes": 1.0}, "arms": arms}  # fmt: skip
    report = {"command": "iac benchmark", "machine": {"cpu": "cpu", "cores": 2, "torch": "2", "torch_threads": 1},
              "config": {"dataset_dir": "/x/raw", "epochs": 3, "seeds": [0]}, "seeds": {"0": run}}  # fmt: skip
    md = render_markdown(summarize_seeds(report))
    assert "| lth | 0.8000 | 0.8000 | 0.5000 |" in md and "| no_cells | 0.8000 | 0.8000 | - |" in md
    assert "| 0 | 21.0 | 112/5.0, 40/12.5, 8/3.0 |" in md
