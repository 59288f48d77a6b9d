"""Implant adapters: how to run each U-Net family as ``encoder -> feature list f_0..f_n -> decoder``.

:func:`~iac_components.implant.implant` puts cell ``i`` on skip ``f_i`` (reading ``f_i`` and ``f_{i+1}``) while
the encoder itself is untouched: deeper encoder stages still see the original features. (A forward hook on an
encoder stage would be wrong: it would also change what the deeper stages see.) An adapter holds no weights; it
re-runs the network's own submodules in that shape.

* :class:`FlexibleUNetAdapter`: MONAI ``FlexibleUNet`` (``encoder`` returns the feature list; ``decoder`` takes it);
* :class:`BasicUNetAdapter`: MONAI ``BasicUNet`` (its skips are hard-wired in ``forward``, re-implemented here);
* :class:`DynUNetAdapter`: MONAI ``DynUNet`` (recursive skip layers), the nnU-Net backbone;
* :class:`PadToMultipleAdapter`: :class:`~iac_components.networks.padding.PadToMultiple` around any of these.

:func:`get_network_adapter` picks the adapter from the table :data:`ADAPTERS`, written out below (nothing registers
itself on import). Another backbone family plugs in with :func:`register_adapter`, called explicitly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from monai.networks.nets import BasicUNet, DynUNet, FlexibleUNet
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from torch.nn.functional import interpolate

from iac_components.networks.padding import PadToMultiple

__all__ = [
    "ADAPTERS",
    "BackboneAdapter",
    "BasicUNetAdapter",
    "DynUNetAdapter",
    "FlexibleUNetAdapter",
    "PadToMultipleAdapter",
    "get_network_adapter",
    "register_adapter",
]


def _last_conv_out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        raise ValueError(f"{type(module).__name__} has no convolution to read its channels from")
    return int(convs[-1].out_channels)


class BackboneAdapter:
    """How to run a U-Net family as encoder -> features -> decoder. Holds no weights of its own.

    Subclasses set :attr:`network_types` and implement :meth:`encode`, :meth:`decode` and
    :attr:`feature_channels`.
    """

    network_types: tuple[type[nn.Module], ...] = ()

    def __init__(self, network: nn.Module):
        self.network = network

    @property
    def feature_channels(self) -> list[int]:
        """Channels of the encoder features ``f_0..f_n``; the first ``num_skips`` are skips."""
        raise NotImplementedError

    @property
    def num_skips(self) -> int:
        return len(self.feature_channels) - 1

    @property
    def spatial_dims(self) -> int:
        return int(getattr(self.network, "spatial_dims", getattr(self.network, "dimensions", 2)))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> Any:
        raise NotImplementedError


class FlexibleUNetAdapter(BackboneAdapter):
    """MONAI ``FlexibleUNet`` (any encoder of its registry, MONAI's own or one registered by this project)."""

    network_types = (FlexibleUNet,)

    @property
    def feature_channels(self) -> list[int]:
        entry = FLEXUNET_BACKBONE.register_dict[self.network.backbone]
        return list(entry["feature_channel"])[: self.network.skip_connect + 1]

    @property
    def spatial_dims(self) -> int:
        return int(self.network.spatial_dims)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.network.encoder(x)
        if not isinstance(features, (list, tuple)) or len(features) < 2:
            raise TypeError(
                f"encoder {self.network.backbone!r} does not return a list of multi-scale features; "
                f"valid encoders: {', '.join(FLEXUNET_BACKBONE.register_dict)}"
            )
        return list(features)

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self.network.segmentation_head(self.network.decoder(features, self.network.skip_connect))


class BasicUNetAdapter(BackboneAdapter):
    """MONAI ``BasicUNet`` (the base U-Net): five encoder levels ``x0..x4``, four skips."""

    network_types = (BasicUNet,)
    _encoder = ("conv_0", "down_1", "down_2", "down_3", "down_4")

    @property
    def feature_channels(self) -> list[int]:
        return [_last_conv_out_channels(getattr(self.network, n)) for n in self._encoder]

    @property
    def spatial_dims(self) -> int:
        return self.network.final_conv.weight.ndim - 2

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.network
        x0 = net.conv_0(x)
        x1 = net.down_1(x0)
        x2 = net.down_2(x1)
        x3 = net.down_3(x2)
        x4 = net.down_4(x3)
        return [x0, x1, x2, x3, x4]

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        net = self.network
        x0, x1, x2, x3, x4 = features
        u4 = net.upcat_4(x4, x3)
        u3 = net.upcat_3(u4, x2)
        u2 = net.upcat_2(u3, x1)
        u1 = net.upcat_1(u2, x0)
        return net.final_conv(u1)


class DynUNetAdapter(BackboneAdapter):
    """MONAI ``DynUNet``: features ``f_0`` (``input_block``), ``f_1..f_{n-1}`` (``downsamples``), ``f_n``
    (``bottleneck``); ``n`` skips ``f_0..f_{n-1}``.

    DynUNet wires its skips recursively (``DynUNetSkipLayer``: ``upsample(next_layer(downsample(x)),
    downsample(x))``); this adapter re-runs the same submodules, so with the skips unchanged it returns exactly
    what ``DynUNet.forward`` returns, in training mode (deep-supervision stack) and in eval mode. The decoder runs
    ``upsamples`` from the deepest, each on the previous output and its skip, then ``output_block``; in training
    mode with deep supervision it also runs the heads on the outputs of decoder levels ``1..deep_supr_num`` and
    stacks them, nearest-upsampled, after the main output, as ``DynUNet.forward`` does.
    """

    network_types = (DynUNet,)

    def _encoder_blocks(self) -> list[nn.Module]:
        net = self.network
        return [net.input_block, *net.downsamples, net.bottleneck]

    @property
    def feature_channels(self) -> list[int]:
        return [_last_conv_out_channels(b) for b in self._encoder_blocks()]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self._encoder_blocks():
            x = block(x)
            features.append(x)
        return features

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        net = self.network
        n = len(features) - 1  # skips; net.upsamples[0] is the deepest
        supervise = net.training and net.deep_supervision
        heads: list[torch.Tensor] = []
        out = features[n]
        for level in range(n - 1, -1, -1):
            out = net.upsamples[n - 1 - level](out, features[level])
            if supervise and 1 <= level <= net.deep_supr_num:
                heads.insert(0, net.deep_supervision_heads[level - 1](out))
        out = net.output_block(out)
        if supervise:
            return torch.stack([out] + [interpolate(h, out.shape[2:]) for h in heads], dim=1)
        return out


class PadToMultipleAdapter(BackboneAdapter):
    """Implant through a :class:`~iac_components.networks.padding.PadToMultiple`: the inner network's adapter,
    with the input padded in :meth:`encode` and the output cropped in :meth:`decode`, so the cells see the padded
    features and the state-dict keys stay ``backbone.network.*``."""

    network_types = (PadToMultiple,)

    def __init__(self, network: PadToMultiple):
        super().__init__(network)
        self.inner = get_network_adapter(network.network)

    @property
    def feature_channels(self) -> list[int]:
        return self.inner.feature_channels

    @property
    def num_skips(self) -> int:
        return self.inner.num_skips

    @property
    def spatial_dims(self) -> int:
        return self.inner.spatial_dims

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.inner.encode(self.network.pad(x))

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> Any:
        # the inner decoder gets the padded input too, as it would inside PadToMultiple.forward
        return self.network.crop(self.inner.decode(features, self.network.pad(x)), x)


ADAPTERS: list[type[BackboneAdapter]] = [PadToMultipleAdapter, DynUNetAdapter, BasicUNetAdapter, FlexibleUNetAdapter]
"""The adapters :func:`get_network_adapter` tries, first match wins; :func:`register_adapter` adds to the front."""


def register_adapter(cls: type[BackboneAdapter]) -> type[BackboneAdapter]:
    """Make :func:`get_network_adapter` use ``cls`` for networks of ``cls.network_types`` (usable as a class decorator).
    Later registrations win, so a more specific adapter can be registered after a general one."""
    ADAPTERS.insert(0, cls)
    return cls


def get_network_adapter(network: nn.Module) -> BackboneAdapter:
    """The adapter for ``network``.

    Raises:
        TypeError: one line listing the supported network classes.
    """
    for cls in ADAPTERS:
        if isinstance(network, cls.network_types):
            return cls(network)
    names = sorted({t.__name__ for cls in ADAPTERS for t in cls.network_types})
    raise TypeError(f"cannot implant cells into {type(network).__name__}; supported networks: {', '.join(names)}")
