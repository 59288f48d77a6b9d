"""IAC in nnU-Net's 3d_fullres configuration, end to end through nnU-Net's own entry points on the CPU (slow tier).

The same chain as the 2-D pipeline test at the smallest size nnU-Net plans a 3-D U-Net for: ``nnUNetv2_plan_and_preprocess
-c 3d_fullres``, a baseline ``nnUNetv2_train ... 3d_fullres``, the IAC search on it (3-D cells, ended by the JSD
rule), the retrain with nnU-Net's validation, and ``nnUNetv2_predict -c 3d_fullres``. The trainers are the small
variants in ``tests/nnunet/trainers``; the cells are volumetric (``Conv3d``) and the genotype says so.
"""

from __future__ import annotations

import json

import pytest
import torch
from nnunet_run import DATASET, run_nnunet, synthetic_dataset

pytest.importorskip("nnunetv2", reason="the [nnunet] extra is not installed")
nib = pytest.importorskip("nibabel")

pytestmark = pytest.mark.slow

CONFIG = "3d_fullres"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet3d")
    # 8-10 slices of 24x24: nnU-Net plans a 3-stage 3-D U-Net with an [8, 24, 24] patch
    _, test_dir = synthetic_dataset(root, size=24, slices=(8, 10))
    logs = {
        "plan": run_nnunet(root, "nnUNetv2_plan_and_preprocess", "-d", "1", "-c", CONFIG, "-np", "1",
                           "--verify_dataset_integrity", nnUNet_n_proc_DA="1"),
        "baseline": run_nnunet(root, "nnUNetv2_train", "1", CONFIG, "0", "-tr", "nnUNetTrainer_iactest", "-device", "cpu"),
        "search": run_nnunet(root, "nnUNetv2_train", "1", CONFIG, "0", "-tr", "nnUNetTrainerIACSearch_iactest", "-device",
                             "cpu"),
        "retrain": run_nnunet(root, "nnUNetv2_train", "1", CONFIG, "0", "-tr", "nnUNetTrainerIAC_iactest", "-device", "cpu"),
        "predict": run_nnunet(root, "nnUNetv2_predict", "-i", str(test_dir), "-o", str(root / "pred"), "-d", "1", "-c",
                              CONFIG, "-f", "0", "-tr", "nnUNetTrainerIAC_iactest", "-device", "cpu", "-npp", "1", "-nps", "1"),
    }  # fmt: skip
    results = root / "nnUNet_results" / DATASET
    return {"root": root, "logs": logs, "test_dir": test_dir,
            "baseline": results / f"nnUNetTrainer_iactest__nnUNetPlans__{CONFIG}",
            "search": results / f"nnUNetTrainerIACSearch_iactest__nnUNetPlans__{CONFIG}",
            "retrain": results / f"nnUNetTrainerIAC_iactest__nnUNetPlans__{CONFIG}"}  # fmt: skip


def test_the_3d_search_ends_by_the_rule_with_volumetric_cells(pipeline):
    fold = pipeline["search"] / "fold_0"
    genotype = json.loads((fold / "genotype.json").read_text())
    history = json.loads((fold / "search_history.json").read_text())
    assert genotype["search"]["decided_by_pruning"] is True and history["decided_at"] is not None
    assert history["ops_alive_start"] > history["epochs"][-1]["ops_alive"]
    # the genotype records the dimensionality it was searched at: a 2-D network refuses it in one line
    assert genotype["search"]["cell_config"]["spatial_dims"] == 3
    assert "decided by the rule" in pipeline["logs"]["search"]


def test_the_3d_retrain_carries_3d_cells_and_equals_the_baseline_at_gamma_zero(pipeline):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from iac_components.nnunet.trainers import load_nnunet_weights, nnUNetTrainerIAC

    plans = PlansManager(json.loads((pipeline["retrain"] / "plans.json").read_text()))
    config = plans.get_configuration(CONFIG)
    assert len(config.patch_size) == 3
    weights = load_nnunet_weights(str(pipeline["baseline"] / "fold_0" / "checkpoint_final.pth"), "")
    baseline = nnUNetTrainer.build_network_architecture(plans, config, 2, 3, False)
    baseline.load_state_dict(weights)
    implanted = nnUNetTrainerIAC.build_network_architecture(plans, config, 2, 3, False)
    implanted.backbone.load_state_dict(weights)
    assert any(isinstance(m, torch.nn.Conv3d) for m in implanted.cells.modules())
    x = torch.randn(1, 2, *config.patch_size)
    with torch.no_grad():
        torch.testing.assert_close(implanted.eval()(x), baseline.eval()(x), rtol=0, atol=0)
    summary = json.loads((pipeline["retrain"] / "fold_0" / "validation" / "summary.json").read_text())
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0


def test_3d_prediction_writes_label_maps_in_the_inputs_grid(pipeline):
    pred = nib.load(pipeline["root"] / "pred" / "case_0003.nii.gz")
    image = nib.load(pipeline["test_dir"] / "case_0003_0000.nii.gz")
    assert pred.shape == image.shape and len(pred.shape) == 3
    assert abs(pred.affine - image.affine).max() < 1e-4
    assert {int(v) for v in set(pred.get_fdata().ravel().tolist())} <= {0, 1, 2}
