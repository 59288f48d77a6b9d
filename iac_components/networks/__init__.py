"""Backbone networks: torchvision encoders for FlexibleUNet, an nnU-Net-style DynUNet, baselines, any input size.

Importing this package registers, process-wide, the torchvision encoders ``tv_vgg16``, ``tv_resnet50``,
``tv_mobilenet_v3_large``, ``tv_efficientnet_v2_s``, ``tv_efficientnet_v2_m`` in MONAI's FlexibleUNet encoder
registry (MONAI's own entries stay as they are).

The implant adapters of every backbone family (how :mod:`iac_components.implant` finds a network's skips) are
in :mod:`iac_components.networks.adapters`, an explicit table.

Start from :func:`build_backbone` and :data:`BACKBONES`.
"""

from __future__ import annotations

from iac_components.networks.adapters import DynUNetAdapter, PadToMultipleAdapter
from iac_components.networks.backbones import BACKBONES, BackboneSpec, build_backbone
from iac_components.networks.deep_supervision import DeepSupervisionStack, StackedDeepSupervisionLoss
from iac_components.networks.nnunet import NNUNetPlan, build_nnunet, nnunet_2d_plan
from iac_components.networks.padding import PadToMultiple, crop_to, pad_to_multiple, size_multiple
from iac_components.networks.slicewise import SliceWise
from iac_components.networks.torchvision_encoders import (
    TV_ENCODERS,
    TorchvisionEncoder,
    TorchvisionEncoderSpec,
    load_imagenet_weights,
    register_flexunet_encoders,
)

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "DeepSupervisionStack",
    "DynUNetAdapter",
    "NNUNetPlan",
    "PadToMultiple",
    "PadToMultipleAdapter",
    "SliceWise",
    "StackedDeepSupervisionLoss",
    "TV_ENCODERS",
    "TorchvisionEncoder",
    "TorchvisionEncoderSpec",
    "build_backbone",
    "build_nnunet",
    "crop_to",
    "load_imagenet_weights",
    "nnunet_2d_plan",
    "pad_to_multiple",
    "register_flexunet_encoders",
    "size_multiple",
]
