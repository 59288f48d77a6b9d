"""IAC cells in 3-D U-Nets: the ops are built for ``spatial_dims`` 3, the cells sit between the encoder's
volumetric features and the decoder, and with γ = 0 the implanted network computes exactly what the U-Net does;
a genotype searched on a 2-D network is refused on a 3-D one (and the reverse), in one line."""

from __future__ import annotations

import copy

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
