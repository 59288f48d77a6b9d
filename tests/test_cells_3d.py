"""IAC cells in 3-D U-Nets: the ops are built for ``spatial_dims`` 3, the cells sit between the encoder's
volumetric features and the decoder, and with γ = 0 the implanted network computes exactly what the U-Net does;
a genotype searched on a 2-D network is refused on a 3-D one (and the reverse), in one line."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from monai.networks.nets import BasicUNet, DynUNet

from iac_components.evidence.genotypes import random_genotype
from iac_components.genotype import save_genotypes
from iac_components.implant import implant_fixed_cells, implant_search_cells


def _basic():
    return BasicUNet(spatial_dims=3, in_channels=1, out_channels=3, features=(8, 8, 16, 32, 64, 8))


def _dynunet():
    return DynUNet(3, 1, 3, kernel_size=[3, 3, 3, 3], strides=[1, 2, 2, 2], upsample_kernel_size=[2, 2, 2],
                   filters=[8, 16, 32, 64])  # fmt: skip


def _nnunet(family):
    nets = pytest.importorskip("dynamic_network_architectures.architectures.unet")
    pytest.importorskip("iac_components.nnunet")  # registers the adapter of nnU-Net's networks
    common = dict(conv_bias=True, norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                  nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})  # fmt: skip
    if family == "plain":
        return nets.PlainConvUNet(1, 4, [8, 16, 32, 64], torch.nn.Conv3d, 3, [1, 2, 2, 2], 2, 3, 2, **common)
    return nets.ResidualEncoderUNet(1, 4, [8, 16, 32, 64], torch.nn.Conv3d, 3, [1, 2, 2, 2], [1, 1, 1, 1], 3,
                                    [1, 1, 1], **common)  # fmt: skip


BACKBONES = {"basicunet": _basic, "dynunet": _dynunet, "nnunet_plain": lambda: _nnunet("plain"),
             "nnunet_residual": lambda: _nnunet("residual")}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("kind", ["fixed", "search"])
def test_cells_with_gamma_zero_leave_a_3d_unets_output_unchanged(name, kind):
    torch.manual_seed(0)
    net = BACKBONES[name]().eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        expected = net(x)
        if kind == "fixed":
            implanted = implant_fixed_cells(copy.deepcopy(net), random_genotype(1), cell_channels=8)
        else:
            implanted = implant_search_cells(copy.deepcopy(net), cell_channels=8, ops=["skip_connect", "conv_3x3",
                                                                                      "dil_conv_3x3"])  # fmt: skip
        out = implanted.eval()(x)
    assert implanted.cells.cells[0].gamma.ndim == 1 and float(implanted.cells.cells[0].gamma.abs().max()) == 0.0
    assert torch.equal(out, expected)
    # the cells are volumetric: 3-D convolutions on 3-D features
    assert any(isinstance(m, torch.nn.Conv3d) for m in implanted.cells.modules())
    assert implanted.cells.config["spatial_dims"] == 3


def test_a_genotype_of_another_dimensionality_is_refused(tmp_path):
    path = tmp_path / "genotype.json"
    save_genotypes(path, [random_genotype(0)], share_genotype=True, n_nodes=4, search={"cell_config": {"spatial_dims": 2}})
    with pytest.raises(ValueError, match=r"was searched on a 2-D network and this network is 3-D: search its cells"):
        implant_fixed_cells(_basic(), str(path), cell_channels=8)
    save_genotypes(path, [random_genotype(0)], share_genotype=True, n_nodes=4, search={"cell_config": {"spatial_dims": 3}})
    assert implant_fixed_cells(_basic(), str(path), cell_channels=8).cells.config["spatial_dims"] == 3
    from iac_components.networks import build_backbone

    with pytest.raises(ValueError, match=r"searched on a 3-D network and this network is 2-D"):
        implant_fixed_cells(build_backbone("unet", 1, 3), str(path), cell_channels=8)


def _volumes(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, 16, generator=g)
    y = (torch.nn.functional.avg_pool3d(x, 3, 1, 1) > 0.2).long()
    return [{"image": x[i], "label": y[i]} for i in range(n)]


@pytest.mark.slow
def test_a_3d_search_ends_by_the_rule_and_its_genotype_implants_in_3d(tmp_path):
    """The search engine and the JSD rule on a 3-D U-Net (MONAI's BasicUNet, 16^3 volumes): the rule decides the
    cell before the budget, the genotype records 3-D, and it implants as fixed 3-D cells."""
    from monai.losses import DiceCELoss
    from torch.utils.data import DataLoader

    from iac_components.genotype import load_genotypes
    from iac_components.search import IACSearchTrainer, JSDPruningHandler

    torch.manual_seed(0)
    backbone = BasicUNet(spatial_dims=3, in_channels=1, out_channels=2, features=(8, 8, 8, 8, 8, 8), norm="batch")
    net = implant_search_cells(backbone, cell_channels=8, partial_k=2, ops=["skip_connect", "max_pool_3x3", "conv_3x3"])
    loader = lambda data: DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator())  # noqa: E731
    pruning = JSDPruningHandler(epsilon=0.5, window=4, patience=1, margin=0.05, keep_schedule=(2, 1),
                                genotype_path=tmp_path / "genotype.json", history_path=tmp_path / "search_history.json")  # fmt: skip
    engine = IACSearchTrainer(
        "cpu", 40, loader(_volumes(16, 1)), loader(_volumes(16, 2)), net,
        torch.optim.SGD(list(net.weight_parameters()), lr=0.05, momentum=0.9),
        torch.optim.Adam(list(net.arch_parameters()), lr=0.05, betas=(0.5, 0.999)),
        DiceCELoss(to_onehot_y=True, softmax=True), warmup_steps=4, seed=0, train_handlers=[pruning], decollate=False,
    )  # fmt: skip
    engine.run()
    assert engine.state.epoch < 40 and engine.network.cells.is_decided() and pruning.decided_at is not None
    saved = json.loads((tmp_path / "genotype.json").read_text())
    assert saved["search"]["cell_config"]["spatial_dims"] == 3 and saved["search"]["decided_by_pruning"]
    fixed = implant_fixed_cells(_basic(), str(tmp_path / "genotype.json"), cell_channels=8)
    assert fixed.cells.config["spatial_dims"] == 3
    assert load_genotypes(tmp_path / "genotype.json")[0] == engine.network.cells.genotypes()[0]
