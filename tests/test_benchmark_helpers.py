from __future__ import annotations

import pytest

from iac_components.evidence.genotypes import genotype_agreement, random_genotype
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


def _seed_result(seed: int, patients: list[str], lift: float, noise: bool = False) -> dict:
    """A run_seed result: every arm at 0.70 + 0.01 n for patient n, LTH ``lift`` above, no cells 0.05 below."""
    arms = ["full", "lth", "truncated", "random_cuts", "sgas", "no_cells", "random_0", "random_1"]
    shift = {"lth": lift, "no_cells": -0.05, "random_0": -0.01, "random_1": -0.03, "random_cuts": -0.02, "sgas": -0.004}
    per = {a: {p: {"dice": 0.7 + 0.01 * n + shift.get(a, 0.0), "dice_per_class": {"LV": 0.9 + shift.get(a, 0.0)},
                   "hd95": 3.0} for n, p in enumerate(patients)} for a in arms}  # fmt: skip
    search = {"genotype": A.to_dict(), "wall_clock_s": 100.0, "epochs": 10, "arch_steps": 100, "decided_at": None,
              "ops_alive": [112] * 10, "epoch_wall_clock_s": [10.0] * 10}  # fmt: skip
    searches = {"full": search, "lth": {**search, "wall_clock_s": 40.0, "epochs": 4, "ops_alive": [112, 60, 20, 8],
                                        "decided_at": {"epoch": 4}}}  # fmt: skip
    searches["random_cuts"] = {**searches["lth"], "genotype": random_genotype(seed).to_dict()}
    searches["sgas"] = {**searches["lth"], "wall_clock_s": 38.0, "epoch_wall_clock_s": [8.0, 9.0, 10.0, 11.0]}
    if noise:
        searches["full_seed11"] = {**search, "genotype": random_genotype(5).to_dict()}
    return {"seed": seed, "stages_s": {"baseline": 30.0, "retrain_lth": 20.0}, "searches": searches,
            "truncated": {"genotype": A.to_dict(), "arch_step": 40},
            "arms": {a: {"mean_dice": 0.8, "cell_gamma": [0.1], "per_patient": per[a]} for a in arms}}  # fmt: skip


def test_pooled_report_pairs_per_seed_and_patient_in_the_stable_shape():
    """Each seed draws its own folds: one unit per (seed, test patient); the JSON has the documented keys."""
    from iac_components.evidence.genotypes import chance_agreement
    from iac_components.evidence.report import pooled_report, render_markdown

    r = pooled_report([_seed_result(1, ["p1", "p2", "p3"], 0.001, noise=True), _seed_result(2, ["p3", "p4", "p5", "p6"], 0.001)])
    assert r["units"] == {"pairs": 7, "distinct_patients": 6}
    c = r["comparisons"]
    assert set(c) >= {"full_vs_no_cells", "full_vs_random", "lth_vs_full", "lth_vs_no_cells", "truncated_vs_full"}
    for name in ("full_vs_no_cells", "full_vs_random", "lth_vs_full", "lth_vs_no_cells", "truncated_vs_full"):
        assert set(c[name]) >= {"mean_diff", "ci95", "p_wilcoxon", "n_pairs"} and c[name]["n_pairs"] == 7
    assert c["full_vs_no_cells"]["mean_diff"] == pytest.approx(0.05)
    assert c["full_vs_random"]["mean_diff"] == pytest.approx(0.02)  # against the random cells' mean per patient
    assert [e["mean_diff"] for e in c["full_vs_random_each"]] == pytest.approx([0.01, 0.03])
    assert c["lth_vs_full"]["mean_diff"] == pytest.approx(0.001) and c["lth_vs_full"]["p_tost"] < 0.05
    assert c["lth_vs_full"]["per_class_mean_diff"] == {"LV": pytest.approx(0.001)}
    a = r["agreement"]
    assert a["chance"] == chance_agreement() and a["lth_vs_full"]["edges"] == 1.0
    assert a["full_vs_full"]["n_pairs"] == 1  # seed 1's two full searches, same folds and baseline
    assert r["speedup"]["per_seed"] == [2.5, 2.5] and r["speedup"]["full_search_epochs"] == [10, 10]
    assert r["speedup"]["ops_epochs_ratio_per_seed"] == pytest.approx([1120 / 200] * 2)
    # the equal-budget controls, each against the full search and against LTH
    assert c["random_cuts_vs_full"]["mean_diff"] == pytest.approx(-0.02)
    assert c["lth_vs_sgas"]["mean_diff"] == pytest.approx(0.005) and c["lth_vs_truncated"]["n_pairs"] == 7
    assert set(a) >= {"random_cuts_vs_full", "sgas_vs_full"} and a["sgas_vs_full"]["edges"] == 1.0
    assert r["speedup"]["search_s"]["sgas"] == [38.0, 38.0]
    assert r["speedup"]["epoch_s"]["sgas"][0] == {"median": 9.5, "q1": 8.75, "q3": 10.25, "n": 4}
    md = render_markdown(r)
    assert "| sgas vs full |" in md and "| lth vs random cuts |" in md and "HD95" in md
    assert "## Positive control" in md and "| full vs no cells |" in md and "| chance (two random cells, exact) |" in md


def test_truncated_genotype_and_per_patient_metrics(tmp_path):
    """The truncated control derives from the last recorded check at or before LTH's stop; the per-patient
    metrics average a patient's cases."""
    from iac_components.evidence.runner import per_patient_metrics, truncated_genotype

    def check(step, best):
        alpha = {f"{i}->{j}": {"conv_3x3": 1.0 if best == "conv" else 0.0, "skip_connect": 0.5}
                 for j in range(2, 6) for i in range(j)}  # fmt: skip
        beta = {str(j): {str(i): float(i == 0 or i == 1) for i in range(j)} for j in range(2, 6)}
        return {"arch_step": step, "alpha": [alpha], "beta": [beta]}

    history = {"epochs": [{"checks": [check(10, "conv")]}, {"checks": [check(20, "skip")]}]}
    g, at = truncated_genotype(history, 15)
    assert at == 10 and all(op == "conv_3x3" for _, _, op in g.edges())
    g, at = truncated_genotype(history, 25)
    assert at == 20 and all(op == "skip_connect" for _, _, op in g.edges())
    with pytest.raises(ValueError, match="no check at or before arch step 5"):
        truncated_genotype(history, 5)
    (tmp_path / "m.csv").write_text("case_id,patient_id,dice_RV,dice_LV,hd95_RV,hd95_LV\n"
                                    "p1_ED,p1,0.8,0.6,2,4\np1_ES,p1,0.6,0.6,2,4\np2_ED,p2,1.0,0.8,1,1\n")
    m = per_patient_metrics(tmp_path / "m.csv")
    assert m["p1"]["dice"] == pytest.approx(0.65) and m["p1"]["dice_per_class"] == pytest.approx({"RV": 0.7, "LV": 0.6})
    assert m["p1"]["hd95"] == pytest.approx(3.0) and m["p2"]["dice"] == pytest.approx(0.9)


def test_cell_gammas_come_from_the_retrained_checkpoint(tmp_path):
    import torch

    from iac_components.evidence.runner import cell_gammas

    torch.save({"model": {"cells.cells.0.gamma": torch.tensor([0.25]), "cells.cells.1.gamma": torch.tensor([-0.5]),
                          "backbone.w": torch.zeros(2)}}, tmp_path / "model.pt")  # fmt: skip
    assert cell_gammas(tmp_path / "model.pt") == [0.25, 0.5]


@pytest.mark.slow  # a real iac process over the committed results
def test_benchmark_report_only_with_defaults_leaves_tracked_files_unchanged():
    """``iac benchmark --report_only`` run from the repository writes under its own run folder
    (benchmarks/runs/, ignored), never over the committed results."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]

    def tracked_changes():
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                              text=True).stdout  # fmt: skip

    before = tracked_changes()
    proc = subprocess.run([sys.executable, "-m", "iac_components", "benchmark", "--report_only"], cwd=repo,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert tracked_changes() == before
