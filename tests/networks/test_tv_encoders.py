"""torchvision encoders in MONAI's FlexibleUNet registry: stages, channels, MONAI's own entries, weights."""

from __future__ import annotations

import os
import urllib.error

import pytest
import torch
import torch.nn as nn
import torchvision
from monai.networks.blocks import BaseEncoder
from monai.networks.nets import FlexibleUNet
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from monai.networks.nets.resnet import ResNetEncoder

import iac_components.networks  # noqa: F401 - registers the tv_ encoders
from iac_components.networks.torchvision_encoders import (
    TV_ENCODERS,
    TorchvisionEncoder,
    load_imagenet_weights,
    register_flexunet_encoders,
)


@pytest.mark.parametrize("name", list(TV_ENCODERS))
def test_features_have_the_registered_channels_at_strides_2_to_32(name):
    enc = TorchvisionEncoder(name, in_channels=4).eval()
    with torch.no_grad():
        features = enc(torch.zeros(1, 4, 64, 96))
    entry = FLEXUNET_BACKBONE.register_dict[name]
    assert entry["type"] is TorchvisionEncoder and entry["feature_number"] == 5
    assert [f.shape[1] for f in features] == list(entry["feature_channel"])
    assert [(64 // f.shape[2], 96 // f.shape[3]) for f in features] == [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]


def test_importing_the_package_leaves_monai_resnet_entries_unchanged():
    import iac_components.implant  # noqa: F401
    import iac_components.networks.backbones  # noqa: F401

    registry = FLEXUNET_BACKBONE.register_dict
    for name in ResNetEncoder.backbone_names:
        assert registry[name]["type"] is ResNetEncoder, name
    assert tuple(registry["resnet50"]["feature_channel"]) == (64, 256, 512, 1024, 2048)
    assert registry["resnet50"]["parameter"]["model_name"] == "resnet50"
    assert not set(TV_ENCODERS) & set(ResNetEncoder.backbone_names)


def test_registering_a_name_monai_owns_is_refused_and_changes_nothing():
    class Impostor(nn.Module, BaseEncoder):
        @classmethod
        def get_encoder_names(cls):
            return ["resnet50"]

        @classmethod
        def get_encoder_parameters(cls):
            return [{"spatial_dims": 2, "in_channels": 3, "pretrained": False}]

        @classmethod
        def num_channels_per_output(cls):
            return [(1, 2, 3, 4, 5)]

        @classmethod
        def num_outputs(cls):
            return [5]

    with pytest.raises(RuntimeError, match=r"'resnet50' is already registered by monai\.networks\.nets\.resnet"):
        register_flexunet_encoders(Impostor)
    assert FLEXUNET_BACKBONE.register_dict["resnet50"]["type"] is ResNetEncoder


def test_reregistering_our_own_encoders_is_idempotent():
    register_flexunet_encoders(TorchvisionEncoder)
    assert FLEXUNET_BACKBONE.register_dict["tv_resnet50"]["feature_channel"] == (64, 256, 512, 1024, 2048)


def test_3d_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"tv_resnet50 is a 2-D torchvision encoder, got spatial_dims=3"):
        FlexibleUNet(1, 2, backbone="tv_resnet50", spatial_dims=3)


def test_flexible_unet_builds_from_the_registry_name():
    net = FlexibleUNet(4, 3, backbone="tv_mobilenet_v3_large", spatial_dims=2).eval()
    assert isinstance(net.encoder, TorchvisionEncoder) and net.encoder.model_name == "tv_mobilenet_v3_large"
    assert net.encoder.stages[0][0][0].in_channels == 4
    with torch.no_grad():
        assert net(torch.zeros(1, 4, 64, 64)).shape == (1, 3, 64, 64)


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(old)


def test_pretrained_weights_load_from_the_hub_cache_and_seed_the_first_conv(hub_dir):
    # a stand-in for the ImageNet file, under the name torchvision looks for (no download, no hash check)
    weights = torchvision.models.MobileNet_V3_Large_Weights.DEFAULT
    reference = torchvision.models.mobilenet_v3_large().eval()
    os.makedirs(hub_dir / "checkpoints")
    torch.save(reference.state_dict(), hub_dir / "checkpoints" / os.path.basename(weights.url))

    rgb = TorchvisionEncoder("tv_mobilenet_v3_large", in_channels=3, pretrained=True).eval()
    four = TorchvisionEncoder("tv_mobilenet_v3_large", in_channels=4, pretrained=True).eval()
    stem = reference.features[0][0].weight
    torch.testing.assert_close(rgb.stages[0][0][0].weight, stem, rtol=0, atol=0)
    torch.testing.assert_close(four.stages[0][0][0].weight, stem.sum(1, keepdim=True).repeat(1, 4, 1, 1) / 4)
    torch.testing.assert_close(four.stages[4][-1][0].weight, reference.features[16][0].weight, rtol=0, atol=0)
    # a grey image in every channel gives the RGB network's response to the grey image
    grey = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(four(grey.repeat(1, 4, 1, 1))[-1], rgb(grey.repeat(1, 3, 1, 1))[-1])


def test_pretrained_offline_fails_with_one_line_naming_the_weights_and_the_folder(hub_dir, monkeypatch):
    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError) as err:
        load_imagenet_weights("resnet50")
    msg = str(err.value)
    assert "\n" not in msg
    assert "ResNet50_Weights.IMAGENET1K_V2" in msg and "https://download.pytorch.org/models/resnet50-" in msg
    assert f"into {hub_dir / 'checkpoints'}/" in msg and "pretrained=False" in msg
    with pytest.raises(RuntimeError, match="cannot load torchvision ImageNet weights"):
        FlexibleUNet(1, 2, backbone="tv_resnet50", pretrained=True)
