"""The nnU-Net v2 integration's parts, without nnU-Net's pipeline: the implant adapter on nnU-Net's own networks,
the search split, the checkpoint reader, the retrain's network builder and its learning-rate schedule."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("nnunetv2", reason="the [nnunet] extra is not installed")

from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet  # noqa: E402
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager  # noqa: E402

from iac_components.genotype import GENOTYPE_FORMAT, Genotype  # noqa: E402
from iac_components.implant import get_network_adapter, implant_fixed_cells, implant_search_cells  # noqa: E402
from iac_components.nnunet import NNUNetNetworkAdapter  # noqa: E402
from iac_components.nnunet.trainers import (  # noqa: E402
    CosinePerGroup,
    load_nnunet_weights,
    nnUNetTrainerIAC,
    patient_of,
    split_search_cases,
)

GENOTYPE = Genotype((((0, "sep_conv_3x3"), (1, "skip_connect")), ((0, "conv_3x3"), (2, "avg_pool_3x3")),
                     ((1, "dil_conv_3x3"), (3, "max_pool_3x3")), ((2, "sep_conv_5x5"), (4, "conv_3x3"))))

ARCH_KWARGS = {
    "n_stages": 4, "features_per_stage": [8, 16, 32, 64], "conv_op": "torch.nn.modules.conv.Conv2d",
    "kernel_sizes": [[3, 3]] * 4, "strides": [[1, 1], [2, 2], [2, 2], [2, 2]], "n_conv_per_stage": [2, 2, 2, 2],
    "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
}  # fmt: skip


def _plans(iac: dict | None = None) -> PlansManager:
    configuration = {
        "data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [32, 32], "spacing": [1.0, 1.0], "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False], "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": ARCH_KWARGS, "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
    }  # fmt: skip
    if iac is not None:
        configuration["iac"] = iac
    return PlansManager({"dataset_name": "Dataset001_T", "plans_name": "nnUNetPlans", "configurations": {"2d": configuration},
                         "label_manager": "LabelManager"})  # fmt: skip


def _plain_unet(deep_supervision: bool) -> PlainConvUNet:
    torch.manual_seed(0)
    return PlainConvUNet(2, 4, [8, 16, 32, 64], torch.nn.Conv2d, 3, [1, 2, 2, 2], 2, 3, 2, True,
                         torch.nn.InstanceNorm2d, {"eps": 1e-5, "affine": True}, None, None, torch.nn.LeakyReLU,
                         {"inplace": True}, deep_supervision=deep_supervision)  # fmt: skip


def test_adapter_reads_the_encoders_stages():
    net = _plain_unet(True)
    adapter = get_network_adapter(net)
    assert isinstance(adapter, NNUNetNetworkAdapter)
    assert adapter.feature_channels == [8, 16, 32, 64] and adapter.num_skips == 3 and adapter.spatial_dims == 2
    features = adapter.encode(torch.randn(1, 2, 32, 32))
    assert [f.shape[1] for f in features] == [8, 16, 32, 64] and features[0].shape[2:] == (32, 32)


@pytest.mark.parametrize("deep_supervision", [True, False])
@pytest.mark.parametrize("family", ["plain", "residual"])
def test_fixed_cells_with_gamma_zero_leave_nnunets_output_unchanged(family, deep_supervision):
    if family == "plain":
        net = _plain_unet(deep_supervision)
    else:
        torch.manual_seed(0)
        net = ResidualEncoderUNet(1, 4, [8, 16, 32, 64], torch.nn.Conv2d, 3, [1, 2, 2, 2], [1, 1, 1, 1], 3, [1, 1, 1],
                                  True, torch.nn.InstanceNorm2d, {"eps": 1e-5, "affine": True}, None, None,
                                  torch.nn.LeakyReLU, {"inplace": True}, deep_supervision=deep_supervision)  # fmt: skip
    x = torch.randn(2, 2 if family == "plain" else 1, 32, 32)
    net.eval()
    with torch.no_grad():
        expected = net(x)
        implanted = implant_fixed_cells(copy.deepcopy(net), GENOTYPE, cell_channels=8).eval()
        got = implanted(x)
    if deep_supervision:
        assert isinstance(got, list) and len(got) == len(expected) == 3
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, rtol=0, atol=0)
    else:
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_search_cells_train_only_the_cells_on_a_frozen_nnunet():
    net = implant_search_cells(_plain_unet(True), cell_channels=8, partial_k=4)
    out = net(torch.randn(2, 2, 32, 32))
    assert isinstance(out, list) and out[0].shape == (2, 3, 32, 32)
    assert all(not p.requires_grad for p in net.backbone.parameters())
    assert list(net.arch_parameters()) and all(p.requires_grad for p in net.weight_parameters())


def test_search_split_keeps_a_patients_frames_together():
    cases = [f"patient{i:03d}_frame{f:02d}" for i in range(1, 9) for f in (1, 12)]
    train, val = split_search_cases(cases, 0.5, seed=3)
    assert sorted(train + val) == sorted(cases) and not set(train) & set(val)
    assert {patient_of(c) for c in train}.isdisjoint({patient_of(c) for c in val})
    assert len({patient_of(c) for c in val}) == 4
    assert split_search_cases(cases, 0.5, seed=3) == (train, val)  # seeded
    assert patient_of("case_0003") == "case_0003"


def test_search_split_refuses_what_cannot_be_split():
    with pytest.raises(ValueError, match="1 patient"):
        split_search_cases(["p1_frame01", "p1_frame12"], 0.5, seed=0)
    with pytest.raises(ValueError, match=r"search_val_fraction must be in \(0, 1\)"):
        split_search_cases(["a", "b"], 1.0, seed=0)
    train, val = split_search_cases(["a", "b"], 0.9, seed=0)  # at least one patient on each side
    assert len(train) == len(val) == 1


def test_checkpoint_reader(tmp_path):
    net = _plain_unet(True)
    with pytest.raises(FileNotFoundError, match=r"nnU-Net checkpoint not found: .*missing.pth \(train it first\)"):
        load_nnunet_weights(str(tmp_path / "missing.pth"), "train it first")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read nnU-Net checkpoint .*bad.pth"):
        load_nnunet_weights(str(bad), "")
    other = tmp_path / "other.pth"
    torch.save({"model": net.state_dict()}, other)
    with pytest.raises(ValueError, match="not an nnU-Net checkpoint"):
        load_nnunet_weights(str(other), "")
    # what nnU-Net writes (numpy values in its logger), a DDP prefix: read with weights_only, prefix dropped
    import numpy as np

    good = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"module." + k: v for k, v in net.state_dict().items()},
                "logging": {"ema_fg_dice": [np.float64(0.5)], "dice": [np.float32(0.25)]},
                "init_args": {"device": torch.device("cpu")}, "current_epoch": 3}, good)  # fmt: skip
    weights = load_nnunet_weights(str(good), "")
    assert weights.keys() == net.state_dict().keys()


def test_retrain_network_comes_from_the_plans_iac_entry():
    doc = {"format": GENOTYPE_FORMAT, "share_genotype": True, "genotypes": [GENOTYPE.to_dict()]}
    plans = _plans({"genotype": doc, "cell_channels": 8})
    net = nnUNetTrainerIAC.build_network_architecture(plans, plans.get_configuration("2d"), 2, 4, True)
    assert net.cells.num_levels == 3 and [c.genotype for c in net.cells.cells] == [GENOTYPE] * 3
    assert all(float(c.gamma.detach().abs().max()) == 0.0 for c in net.cells.cells)
    plain = _plans()
    with pytest.raises(ValueError, match="no 'iac' entry"):
        nnUNetTrainerIAC.build_network_architecture(plain, plain.get_configuration("2d"), 2, 4, True)
    broken = _plans({"genotype": {"format": "other"}, "cell_channels": 8})
    with pytest.raises(ValueError, match="the plans' iac entry is not a genotype file"):
        nnUNetTrainerIAC.build_network_architecture(broken, broken.get_configuration("2d"), 2, 4, True)


def test_cosine_per_group_keeps_each_groups_own_rate():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p1], "lr": 1e-3}, {"params": [p2], "lr": 1e-2}])
    sched = CosinePerGroup(opt, 10)
    sched.step(0)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-2]
    sched.step(5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([5e-4, 5e-3])
    sched.step(10)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0, 0.0], abs=1e-12)


def test_the_search_refuses_to_resume_in_one_line():
    from iac_components.nnunet.trainers import nnUNetTrainerIACSearch

    trainer = object.__new__(nnUNetTrainerIACSearch)  # the refusal needs no dataset
    with pytest.raises(RuntimeError, match=r"does not resume \(--c\) or validate \(--val\).*without those flags"):
        trainer.load_checkpoint("checkpoint_final.pth")
