"""PadToMultiple: any input size for every network, deep-supervision stacks, tracing, implanting through it."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from monai.networks.nets import AttentionUnet, BasicUNet, BasicUNetPlusPlus, DynUNet, FlexibleUNet

from iac_components.genotype import Genotype
from iac_components.implant import ImplantedNetwork, get_network_adapter, implant_fixed_cells
from iac_components.networks import PadToMultiple, PadToMultipleAdapter, build_nnunet, crop_to, size_multiple

GENOTYPE = Genotype(
    (
        ((0, "conv_3x3"), (1, "skip_connect")),
        ((0, "sep_conv_3x3"), (2, "max_pool_3x3")),
        ((1, "dil_conv_3x3"), (3, "avg_pool_3x3")),
        ((2, "skip_connect"), (4, "sep_conv_5x5")),
    )
)


def _small_dynunet(deep_supervision: bool = False) -> DynUNet:
    torch.manual_seed(0)
    return DynUNet(
        2, 1, 2, [3] * 5, [1, 2, 2, 2, 2], [2] * 4, filters=[4, 4, 8, 8, 16], deep_supervision=deep_supervision
    )


class _Recorder(nn.Module):
    """Identity that remembers the shape it saw."""

    def forward(self, x):
        self.seen = tuple(x.shape)
        return x


def test_pads_at_the_end_to_the_multiple_and_crops_back_exactly():
    net = PadToMultiple(_Recorder(), multiple=(32, 16))
    x = torch.randn(1, 2, 200, 168)
    y = net(x)
    assert net.network.seen == (1, 2, 224, 176)
    torch.testing.assert_close(y, x, rtol=0, atol=0)


def test_replicate_mode_repeats_the_edge():
    rec = _Recorder()
    net = PadToMultiple(nn.Sequential(rec, nn.Identity()), multiple=8, mode="replicate")
    padded = net.pad(torch.arange(30.0).view(1, 1, 5, 6))
    assert padded.shape == (1, 1, 8, 8)
    torch.testing.assert_close(padded[0, 0, 7, :6], torch.arange(24.0, 30.0))  # last row repeated
    torch.testing.assert_close(padded[0, 0, 0, 6:], torch.tensor([5.0, 5.0]))  # last column repeated
    with pytest.raises(ValueError, match="valid modes: constant, replicate, reflect"):
        PadToMultiple(nn.Identity(), 8, mode="circular")


@pytest.mark.parametrize(
    "make",
    [
        lambda: _small_dynunet(),
        lambda: AttentionUnet(2, 1, 2, channels=(4, 4, 8, 8, 16), strides=(2, 2, 2, 2)),
    ],
    ids=["DynUNet", "AttentionUnet"],
)
def test_monai_networks_that_fail_at_200x168_work_wrapped(make):
    net = make().eval()
    x = torch.randn(1, 1, 200, 168)
    with torch.no_grad():
        with pytest.raises(RuntimeError, match="[Ss]ize"):
            net(x)
        assert PadToMultiple(net)(x).shape == (1, 2, 200, 168)


def test_deep_supervision_stack_is_cropped_on_its_spatial_axes():
    net = PadToMultiple(_small_dynunet(deep_supervision=True)).train()
    assert net(torch.randn(2, 1, 50, 37)).shape == (2, 2, 2, 50, 37)  # (B, 1 + heads, C, H, W)
    assert crop_to([torch.zeros(1, 1, 8, 8), {"a": torch.zeros(8, 8)}], (3, 5))[1]["a"].shape == (3, 5)


def test_size_multiple_of_each_family():
    torch.manual_seed(0)
    aniso = DynUNet(2, 1, 2, [3] * 4, [1, (2, 1), 2, 2], [(2, 1), 2, 2], filters=[4, 4, 4, 4])
    assert size_multiple(aniso) == (8, 4)
    assert size_multiple(AttentionUnet(2, 1, 2, channels=(4, 8, 8), strides=(2, 2))) == (4, 4)
    assert size_multiple(BasicUNet(2, 1, 2, features=(4, 4, 4, 4, 4, 4))) == (16, 16)
    assert size_multiple(BasicUNetPlusPlus(2, 1, 2, features=(4, 4, 4, 4, 4, 4))) == (16, 16)
    assert size_multiple(FlexibleUNet(1, 2, backbone="efficientnet-b0", spatial_dims=2)) == (32, 32)
    with pytest.raises(TypeError, match="cannot tell the input size multiple of Linear; pass `multiple`"):
        size_multiple(nn.Linear(2, 2))


def test_trace_at_one_size_runs_at_another():
    net = PadToMultiple(_small_dynunet()).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, torch.randn(1, 1, 64, 64))
        x = torch.randn(1, 1, 50, 37)
        torch.testing.assert_close(traced(x), net(x))


def test_implanting_sees_through_the_wrapper_and_keeps_predictable_keys():
    wrapped = PadToMultiple(build_nnunet(1, 2, patch_size=(32, 32), deep_supervision=False))
    adapter = get_network_adapter(wrapped)
    assert isinstance(adapter, PadToMultipleAdapter)
    assert adapter.feature_channels == [32, 64, 128, 256] and adapter.spatial_dims == 2
    net = implant_fixed_cells(wrapped, GENOTYPE, cell_channels=8)
    assert isinstance(net, ImplantedNetwork)
    keys = net.state_dict().keys()
    assert "backbone.network.input_block.conv1.conv.weight" in keys and "cells.cells.0.gamma" in keys
    with torch.no_grad():
        for cell in net.cells.cells:
            cell.gamma.fill_(0.5)
        x = torch.randn(1, 1, 45, 30)  # not a multiple of 8
        y = net.eval()(x)
        assert y.shape == (1, 2, 45, 30)
        # the wrapper can equally go outside: same weights, same output
        torch.testing.assert_close(PadToMultiple(ImplantedNetwork(wrapped.network, net.cells, False), 8)(x), y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(net, torch.randn(1, 1, 32, 32))
        torch.testing.assert_close(traced(x), y)
