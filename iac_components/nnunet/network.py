"""The implant adapter for nnU-Net v2's networks (dynamic-network-architectures ``PlainConvUNet`` and
``ResidualEncoderUNet``): ``encoder(x)`` returns every stage's output (the last is the bottleneck) and
``decoder(skips)`` takes that list, so the cells go between the two, on the returned list, and the encoder's
deeper stages still see the original features (a hook on a stage would change them)."""

from __future__ import annotations

import torch
import torch.nn as nn
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet

from iac_components.networks.adapters import ADAPTERS, BackboneAdapter, register_adapter

__all__ = ["NNUNetNetworkAdapter", "register_nnunet_adapter"]


class NNUNetNetworkAdapter(BackboneAdapter):
    """nnU-Net's U-Nets: features ``f_0..f_n`` are the encoder's stage outputs, ``f_n`` the bottleneck. The decoder
    returns one map, or the deep-supervision list (largest first) while ``decoder.deep_supervision`` is on."""

    network_types = (PlainConvUNet, ResidualEncoderUNet)

    @property
    def feature_channels(self) -> list[int]:
        return [int(c) for c in self.network.encoder.output_channels]

    @property
    def spatial_dims(self) -> int:
        conv = self.network.encoder.conv_op
        return {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[conv]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.network.encoder(x)
        if not isinstance(features, (list, tuple)):
            raise TypeError("the nnU-Net encoder returned one tensor: it must be built with return_skips=True")
        return list(features)

    def decode(self, features: list[torch.Tensor], x: torch.Tensor):
        return self.network.decoder(features)


def register_nnunet_adapter() -> None:
    """Put :class:`NNUNetNetworkAdapter` in the adapters' table once (importing :mod:`iac_components.nnunet` does)."""
    if NNUNetNetworkAdapter not in ADAPTERS:
        register_adapter(NNUNetNetworkAdapter)
