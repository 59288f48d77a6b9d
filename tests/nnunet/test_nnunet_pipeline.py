"""The 2-D nnU-Net pipeline with IAC, end to end through nnU-Net's own entry points on the CPU (slow tier).

A tiny synthetic dataset in the nnU-Net v2 raw layout; ``nnUNetv2_plan_and_preprocess``; a baseline
``nnUNetv2_train``; the IAC search (``-tr``, found through ``nnUNet_extTrainer``) that ends by the JSD rule; the
retrain with nnU-Net's validation and evaluation; ``nnUNetv2_predict``. Each command is a real process, bounded in
time and killed with its process group. The trainers are the small variants in ``tests/nnunet/trainers``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from nnunet_run import DATASET, nnunet_env, run_nnunet, synthetic_dataset

pytest.importorskip("nnunetv2", reason="the [nnunet] extra is not installed")
nib = pytest.importorskip("nibabel")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet")
    raw, test_dir = synthetic_dataset(root, size=48, slices=(4, 5))
    labels_dir = root / "labelsTs"
    labels_dir.mkdir()
    (labels_dir / "case_0003.nii.gz").symlink_to(raw / "labelsTr" / "case_0003.nii.gz")
    logs = {
        "plan": run_nnunet(root, "nnUNetv2_plan_and_preprocess", "-d", "1", "-c", "2d", "-np", "1",
                     "--verify_dataset_integrity", nnUNet_n_proc_DA="1"),  # the planner sets torch's threads to it
        "baseline": run_nnunet(root, "nnUNetv2_train", "1", "2d", "0", "-tr", "nnUNetTrainer_iactest", "-device", "cpu"),
        "search": run_nnunet(root, "nnUNetv2_train", "1", "2d", "0", "-tr", "nnUNetTrainerIACSearch_iactest", "-device",
                       "cpu"),
        "retrain": run_nnunet(root, "nnUNetv2_train", "1", "2d", "0", "-tr", "nnUNetTrainerIAC_iactest", "-device", "cpu"),
        "predict": run_nnunet(root, "nnUNetv2_predict", "-i", str(test_dir), "-o", str(root / "pred"), "-d", "1", "-c", "2d",
                        "-f", "0", "-tr", "nnUNetTrainerIAC_iactest", "-device", "cpu", "-npp", "1", "-nps", "1"),
    }  # fmt: skip
    # the shared model: nnU-Net's export, installed into another results folder, predicts the same labels
    shared = {"nnUNet_results": str(root / "shared_results")}
    logs["export"] = run_nnunet(root, "nnUNetv2_export_model_to_zip", "-d", "1", "-o", str(root / "iac_model.zip"), "-c", "2d",
                          "-tr", "nnUNetTrainerIAC_iactest", "-f", "0")
    logs["install"] = run_nnunet(root, "nnUNetv2_install_pretrained_model_from_zip", str(root / "iac_model.zip"), **shared)
    logs["predict_shared"] = run_nnunet(root, "nnUNetv2_predict", "-i", str(test_dir), "-o", str(root / "pred_shared"), "-d",
                                  "1", "-c", "2d", "-f", "0", "-tr", "nnUNetTrainerIAC_iactest", "-device", "cpu",
                                  "-npp", "1", "-nps", "1", **shared)  # fmt: skip
    logs["evaluate"] = run_nnunet(root, "nnUNetv2_evaluate_folder", str(labels_dir), str(root / "pred"), "-djfile",
                            str(root / "pred" / "dataset.json"), "-pfile", str(root / "pred" / "plans.json"), "-np", "1")
    results = root / "nnUNet_results" / DATASET
    return {"root": root, "raw": raw, "logs": logs, "test_dir": test_dir,
            "baseline": results / "nnUNetTrainer_iactest__nnUNetPlans__2d",
            "search": results / "nnUNetTrainerIACSearch_iactest__nnUNetPlans__2d",
            "retrain": results / "nnUNetTrainerIAC_iactest__nnUNetPlans__2d"}  # fmt: skip


def test_search_ends_by_the_jsd_rule_and_writes_the_genotype(pipeline):
    fold = pipeline["search"] / "fold_0"
    genotype = json.loads((fold / "genotype.json").read_text())
    history = json.loads((fold / "search_history.json").read_text())
    assert genotype["search"]["method"] == "IAC-LTH (JSD pruning)"
    assert genotype["search"]["decided_by_pruning"] is True and history["decided_at"] is not None
    assert history["epochs"][-1]["epoch"] < 8  # stopped by the rule before the budget
    # the rule may decide inside the first epoch: compare with the unpruned space, not the first epoch's count
    assert history["events"] and history["ops_alive_start"] > history["epochs"][-1]["ops_alive"]
    assert "IAC search: 3 search-train and 3 search-val cases" in pipeline["logs"]["search"]
    assert "IAC search done:" in pipeline["logs"]["search"] and "decided by the rule" in pipeline["logs"]["search"]


def test_retrain_carries_the_cells_in_its_plans_and_validates_as_nnunet_does(pipeline):
    genotype = json.loads((pipeline["search"] / "fold_0" / "genotype.json").read_text())
    plans = json.loads((pipeline["retrain"] / "plans.json").read_text())
    iac = plans["configurations"]["2d"]["iac"]
    assert iac["genotype"]["genotypes"] == genotype["genotypes"] and iac["cell_channels"] == 8
    summary = json.loads((pipeline["retrain"] / "fold_0" / "validation" / "summary.json").read_text())
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0
    assert "IAC: baseline weights from" in pipeline["logs"]["retrain"]


def test_prediction_writes_label_maps_in_the_inputs_grid(pipeline):
    pred = nib.load(pipeline["root"] / "pred" / "case_0003.nii.gz")
    image = nib.load(pipeline["test_dir"] / "case_0003_0000.nii.gz")
    assert pred.shape == image.shape
    assert abs(pred.affine - image.affine).max() < 1e-4
    values = set(int(v) for v in set(pred.get_fdata().ravel().tolist()))
    assert values <= {0, 1, 2}
    # nnU-Net's own evaluation of that prediction against the case's label
    summary = json.loads((pipeline["root"] / "pred" / "summary.json").read_text())
    assert [c["prediction_file"].endswith("case_0003.nii.gz") for c in summary["metric_per_case"]] == [True]
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0


def test_an_exported_model_installed_elsewhere_predicts_the_same_labels(pipeline):
    import numpy as np

    original = nib.load(pipeline["root"] / "pred" / "case_0003.nii.gz")
    shared = nib.load(pipeline["root"] / "pred_shared" / "case_0003.nii.gz")
    assert (pipeline["root"] / "shared_results" / DATASET / "nnUNetTrainerIAC_iactest__nnUNetPlans__2d" / "plans.json").is_file()
    np.testing.assert_array_equal(np.asarray(shared.dataobj), np.asarray(original.dataobj))


def test_checkpoints_load_through_nnunets_own_loader(pipeline, monkeypatch):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from iac_components.implant import ImplantedNetwork

    for k, v in nnunet_env(pipeline["root"]).items():
        if k.startswith("nnUNet_"):
            monkeypatch.setenv(k, v)  # nnU-Net reads its paths (and nnUNet_extTrainer) from the environment

    predictor = nnUNetPredictor(device=torch.device("cpu"), perform_everything_on_device=False)
    predictor.initialize_from_trained_model_folder(str(pipeline["retrain"]), (0,), "checkpoint_final.pth")
    assert isinstance(predictor.network, ImplantedNetwork)
    assert predictor.trainer_name == "nnUNetTrainerIAC_iactest"
    # nnU-Net's trainer class, rebuilt from the checkpoint's init args, loads its own checkpoint
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    checkpoint = pipeline["retrain"] / "fold_0" / "checkpoint_final.pth"
    trainer_class = recursive_find_trainer_class_by_name("nnUNetTrainerIAC_iactest")
    plans = json.loads((pipeline["retrain"] / "plans.json").read_text())
    dataset_json = json.loads((pipeline["retrain"] / "dataset.json").read_text())
    plans["continue_training"] = True  # what nnUNetv2_train --c passes: the cells come from the model folder
    trainer = trainer_class(plans, "2d", 0, dataset_json, torch.device("cpu"))
    trainer.load_checkpoint(str(checkpoint))
    assert trainer.current_epoch == 2 and isinstance(trainer.network, ImplantedNetwork)


def test_implanted_network_with_gamma_zero_equals_the_baseline_on_real_plans(pipeline):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from iac_components.nnunet.trainers import load_nnunet_weights, nnUNetTrainerIAC

    plans = PlansManager(json.loads((pipeline["retrain"] / "plans.json").read_text()))
    config = plans.get_configuration("2d")
    weights = load_nnunet_weights(str(pipeline["baseline"] / "fold_0" / "checkpoint_final.pth"), "")
    baseline = nnUNetTrainer.build_network_architecture(plans, config, 2, 3, False)
    baseline.load_state_dict(weights)
    implanted = nnUNetTrainerIAC.build_network_architecture(plans, config, 2, 3, False)
    implanted.backbone.load_state_dict(weights)
    x = torch.randn(2, 2, *config.patch_size)
    with torch.no_grad():
        torch.testing.assert_close(implanted.eval()(x), baseline.eval()(x), rtol=0, atol=0)


def test_iac_report_reads_the_searchs_history(pipeline, tmp_path):
    from iac_components.analysis.report import write_report

    numbers = write_report(str(pipeline["search"] / "fold_0" / "search_history.json"), str(tmp_path / "report"))
    assert numbers["files"] and all(Path(p).is_file() for p in numbers["files"].values())
