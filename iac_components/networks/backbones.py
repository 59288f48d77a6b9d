"""The backbone table: every U-Net this project trains, searches cells in, or compares against, by bundle name.

:func:`build_backbone` is the one entry point (a ``_target_`` in bundle JSON)::

    "network_def": {
        "_target_": "iac_components.networks.build_backbone",
        "name": "resnet50", "in_channels": 4, "out_channels": 4
    }

Every network it returns accepts any input size: it is wrapped in
:class:`~iac_components.networks.padding.PadToMultiple` (pad to the network's size multiple, crop back), and
:func:`~iac_components.implant.implant_search_cells` / :func:`~iac_components.implant.implant_fixed_cells` see
through the wrapper.

========================  =====================================================================  ============
name                      network                                                                IAC cells
========================  =====================================================================  ============
``vgg16``                 ``FlexibleUNet(backbone="tv_vgg16")`` (torchvision VGG-16 encoder)      4 skips
``resnet50``              ``FlexibleUNet(backbone="tv_resnet50")``                               4 skips
``mobilenetv3_large``     ``FlexibleUNet(backbone="tv_mobilenet_v3_large")``                     4 skips
``efficientnetv2_s``      ``FlexibleUNet(backbone="tv_efficientnet_v2_s")``                      4 skips
``efficientnetv2_m``      ``FlexibleUNet(backbone="tv_efficientnet_v2_m")``                      4 skips
``unet``                  MONAI ``BasicUNet``                                                    4 skips
``nnunet``                MONAI ``DynUNet`` planned by :func:`~.nnunet.nnunet_2d_plan`             stages - 1
``attention_unet``        MONAI ``AttentionUnet`` (baseline)                                     none
``unetplusplus``          MONAI ``BasicUNetPlusPlus`` (baseline, dense skips)                     none
========================  =====================================================================  ============

Extra keyword arguments go to the network's constructor (e.g. ``decoder_channels`` for the FlexibleUNets,
``features`` for ``unet``/``unetplusplus``, ``channels`` for ``attention_unet``; ``patch_size`` (required) and
``spacing`` for ``nnunet``). ``pretrained=True`` loads torchvision's ImageNet weights into the five torchvision
encoders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch.nn as nn
from monai.networks.nets import AttentionUnet, BasicUNet, BasicUNetPlusPlus, FlexibleUNet

from iac_components.networks.deep_supervision import DeepSupervisionStack
from iac_components.networks.nnunet import build_nnunet
from iac_components.networks.padding import PAD_MODES, PadToMultiple
from iac_components.utils import as_bool

__all__ = ["BACKBONES", "BackboneSpec", "build_backbone"]


@dataclass(frozen=True)
class BackboneSpec:
    """One row of :data:`BACKBONES`.

    Args:
        build: ``build(in_channels, out_channels, spatial_dims, pretrained, **kwargs)`` -> the bare network.
        description: what it is, for listings.
        pretrained: whether ImageNet weights exist (``pretrained=True`` is refused otherwise).
        implantable: whether it has skips for IAC cells (an adapter); False for the baselines.
    """

    build: Callable[..., nn.Module]
    description: str
    pretrained: bool = False
    implantable: bool = True


def _flexible_unet(
    encoder: str, in_channels: int, out_channels: int, spatial_dims: int, pretrained: bool, **kwargs: Any
) -> nn.Module:
    return FlexibleUNet(
        in_channels, out_channels, backbone=encoder, pretrained=pretrained, spatial_dims=spatial_dims, **kwargs
    )


def _basic_unet(in_channels: int, out_channels: int, spatial_dims: int, pretrained: bool, **kwargs: Any) -> nn.Module:
    return BasicUNet(spatial_dims, in_channels, out_channels, **kwargs)


def _nnunet(in_channels: int, out_channels: int, spatial_dims: int, pretrained: bool, **kwargs: Any) -> nn.Module:
    if "patch_size" not in kwargs:
        raise ValueError("backbone 'nnunet' needs patch_size (and spacing, default (1.0, 1.0)) to plan its topology")
    if spatial_dims == 2 and len(kwargs.get("spacing") or ()) == 3:  # data resampled in 3-D, planned in its slices
        kwargs["spacing"] = tuple(kwargs["spacing"])[:2]
    return build_nnunet(in_channels, out_channels, spatial_dims=spatial_dims, **kwargs)


def _attention_unet(
    in_channels: int,
    out_channels: int,
    spatial_dims: int,
    pretrained: bool,
    channels: tuple[int, ...] = (32, 64, 128, 256, 512),
    strides: tuple[int, ...] = (2, 2, 2, 2),
    **kwargs: Any,
) -> nn.Module:
    return AttentionUnet(spatial_dims, in_channels, out_channels, channels=channels, strides=strides, **kwargs)


def _unetplusplus(
    in_channels: int,
    out_channels: int,
    spatial_dims: int,
    pretrained: bool,
    deep_supervision: bool = True,
    **kwargs: Any,
) -> nn.Module:
    net = BasicUNetPlusPlus(spatial_dims, in_channels, out_channels, deep_supervision=deep_supervision, **kwargs)
    return DeepSupervisionStack(net, main_index=-1, deep_supervision=deep_supervision)


BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(partial(_flexible_unet, "tv_vgg16"), "FlexibleUNet, torchvision VGG-16 encoder", True),
    "resnet50": BackboneSpec(partial(_flexible_unet, "tv_resnet50"), "FlexibleUNet, torchvision ResNet-50", True),
    "mobilenetv3_large": BackboneSpec(
        partial(_flexible_unet, "tv_mobilenet_v3_large"), "FlexibleUNet, torchvision MobileNetV3-Large", True
    ),
    "efficientnetv2_s": BackboneSpec(
        partial(_flexible_unet, "tv_efficientnet_v2_s"), "FlexibleUNet, torchvision EfficientNetV2-S", True
    ),
    "efficientnetv2_m": BackboneSpec(
        partial(_flexible_unet, "tv_efficientnet_v2_m"), "FlexibleUNet, torchvision EfficientNetV2-M", True
    ),
    "unet": BackboneSpec(_basic_unet, "MONAI BasicUNet"),
    "nnunet": BackboneSpec(_nnunet, "MONAI DynUNet with nnU-Net's 2-D topology and deep supervision"),
    "attention_unet": BackboneSpec(_attention_unet, "MONAI AttentionUnet (baseline, no cells)", implantable=False),
    "unetplusplus": BackboneSpec(
        _unetplusplus, "MONAI BasicUNetPlusPlus, deep supervision (baseline, no cells)", implantable=False
    ),
}
"""Bundle backbone name -> how to build it."""


def build_backbone(
    name: str,
    in_channels: int,
    out_channels: int,
    spatial_dims: int = 2,
    pretrained: bool = False,
    pad_mode: str = "constant",
    any_size: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Build the backbone ``name`` of :data:`BACKBONES`, accepting any input size.

    Args:
        name: a key of :data:`BACKBONES`.
        in_channels: input channels (any number; the torchvision encoders adapt their first convolution).
        out_channels: output channels (classes).
        spatial_dims: 2 (the torchvision encoders and the nnU-Net plan are 2-D).
        pretrained: ImageNet weights for the torchvision encoders (needs them in the torch hub cache offline).
        pad_mode: how :class:`~iac_components.networks.padding.PadToMultiple` pads: ``"constant"`` (zeros),
            ``"replicate"`` or ``"reflect"``.
        any_size: wrap in ``PadToMultiple`` (default); False returns the bare network.
        kwargs: passed to the network's constructor (see the module docstring).

    Returns:
        ``PadToMultiple(network)`` (``state_dict`` keys ``network.*``), or the bare network.

    Raises:
        ValueError: one line, for an unknown name (listing the valid ones) or ``pretrained`` without weights.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(BACKBONES)}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"unknown pad_mode {pad_mode!r}; valid modes: {', '.join(PAD_MODES)}")
    spec = BACKBONES[name]
    pretrained = as_bool(pretrained)
    if pretrained and not spec.pretrained:
        with_weights = [n for n, s in BACKBONES.items() if s.pretrained]
        raise ValueError(
            f"backbone {name!r} has no pretrained weights; pretrained=True works for: {', '.join(with_weights)}"
        )
    network = spec.build(int(in_channels), int(out_channels), int(spatial_dims), pretrained, **kwargs)
    return PadToMultiple(network, mode=pad_mode) if as_bool(any_size) else network
