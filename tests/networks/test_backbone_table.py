"""The backbone table: every name builds for 1 and 4 channels, at any size; clear errors; bundle JSON."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import DynUNet, FlexibleUNet

from iac_components.networks import BACKBONES, PadToMultiple, build_backbone

OUT = 3
NAMES = list(BACKBONES)


def _kwargs(name: str) -> dict:
    return {"patch_size": (224, 224)} if name == "nnunet" else {}


def test_the_table_holds_the_bundle_names():
    assert NAMES == [
        "vgg16",
        "resnet50",
        "mobilenetv3_large",
        "efficientnetv2_s",
        "efficientnetv2_m",
        "unet",
        "nnunet",
        "attention_unet",
        "unetplusplus",
    ]


# one channel count per size keeps the heavy encoders to two forward passes each; together the two cases cover
# 1 and 4 channels and 224x224 and 200x168 (not a multiple of 32, where bare FlexibleUNet-ResNet/DynUNet fail)
@pytest.mark.parametrize("in_channels, size", [(1, (224, 224)), (4, (200, 168))], ids=["1ch-224x224", "4ch-200x168"])
@pytest.mark.parametrize("name", NAMES)
def test_builds_and_keeps_the_input_size(name, in_channels, size):
    torch.manual_seed(0)
    net = build_backbone(name, in_channels, OUT, **_kwargs(name)).eval()
    assert isinstance(net, PadToMultiple)
    with torch.no_grad():
        y = net(torch.randn(1, in_channels, *size))
    assert y.shape == (1, OUT, *size)
    assert torch.isfinite(y).all()


def test_unknown_name_lists_the_valid_ones_on_one_line():
    with pytest.raises(ValueError) as err:
        build_backbone("resnet5", 1, 2)
    assert str(err.value) == "unknown backbone 'resnet5'; valid names: " + ", ".join(NAMES)


def test_pretrained_is_refused_where_there_are_no_weights():
    msg = r"'unet' has no pretrained weights; pretrained=True works for: vgg16, resnet50, mobilenetv3_large, eff"
    with pytest.raises(ValueError, match=msg):
        build_backbone("unet", 1, 2, pretrained=True)


def test_nnunet_needs_a_patch_size_and_follows_it():
    with pytest.raises(ValueError, match="backbone 'nnunet' needs patch_size"):
        build_backbone("nnunet", 1, 2)
    net = build_backbone("nnunet", 1, 2, patch_size=(256, 128), spacing=(1.0, 2.5))
    assert isinstance(net.network, DynUNet) and net.multiple == (64, 32)


def test_any_size_false_returns_the_bare_network_and_kwargs_reach_it():
    net = build_backbone("mobilenetv3_large", 1, 2, any_size=False, decoder_channels=(32, 16, 16, 8, 8))
    assert isinstance(net, FlexibleUNet) and net.backbone == "tv_mobilenet_v3_large"
    assert net.segmentation_head[0].in_channels == 8


def test_builds_from_bundle_json():
    config = {
        "imports": ["$import iac_components.networks"],
        "by_table": {
            "_target_": "iac_components.networks.build_backbone",
            "name": "mobilenetv3_large",
            "in_channels": 4,
            "out_channels": 2,
            "pretrained": "false",
        },
        "by_registry": {
            "_target_": "FlexibleUNet",
            "in_channels": 4,
            "out_channels": 2,
            "backbone": "tv_mobilenet_v3_large",
        },
    }
    parser = ConfigParser(config)
    by_table = parser.get_parsed_content("by_table")
    by_registry = parser.get_parsed_content("by_registry")
    assert isinstance(by_table, PadToMultiple) and isinstance(by_table.network, FlexibleUNet)
    assert by_registry.encoder.model_name == "tv_mobilenet_v3_large"
    assert by_registry.state_dict().keys() == by_table.network.state_dict().keys()
