"""torchvision ImageNet classifiers as 2-D encoders of MONAI's ``FlexibleUNet``.

Importing this module registers the encoders of :data:`TV_ENCODERS` in MONAI's FlexibleUNet encoder registry
(``monai.networks.nets.flexible_unet.FLEXUNET_BACKBONE``), so that, e.g.::

    FlexibleUNet(in_channels=4, out_channels=4, backbone="tv_resnet50", spatial_dims=2)

works, also from bundle JSON once ``iac_components.networks`` is imported. The names carry a ``tv_`` prefix:
MONAI already registers ``resnet10`` .. ``resnet200`` (its own 3-D-capable ResNets), and registering a name
again would silently replace MONAI's entry for the whole process; registration here refuses to do that.

Each encoder returns five features at strides 2, 4, 8, 16 and 32, each the output of the last layer that runs at
that stride (what ``FlexibleUNet``'s decoder expects). The layers are torchvision's own modules, cut into five
stages; the classifier heads are dropped:

============================  =============================================================  ==========================
encoder                       stages (torchvision modules)                                   channels
============================  =============================================================  ==========================
``tv_vgg16``                  ``features`` before max-pools 2, 3, 4, 5, and after max-pool 5  128, 256, 512, 512, 512
``tv_resnet50``               relu after ``conv1``; ``maxpool + layer1``; ``layer2..4``      64, 256, 512, 1024, 2048
``tv_mobilenet_v3_large``     ``features[0:2], [2:4], [4:7], [7:13], [13:17]``               16, 24, 40, 112, 960
``tv_efficientnet_v2_s``      ``features[0:2], [2:3], [3:4], [4:6], [6:7]``                  24, 48, 64, 160, 256
``tv_efficientnet_v2_m``      ``features[0:2], [2:3], [3:4], [4:6], [6:8]``                  24, 48, 80, 176, 512
============================  =============================================================  ==========================

(VGG's full-resolution block 1 runs before the first stride-2 output and is part of the first stage. The final
1x1 "head" convolution of the EfficientNets (to 1280 channels) is dropped, as timm's ``features_only`` and MONAI's
own EfficientNet encoder do; MobileNetV3 keeps its last 1x1 convolution to 960 channels, as timm does.)

Any number of input channels: when ``in_channels != 3`` the first convolution is replaced by one with
``in_channels`` inputs; with ImageNet weights it starts from the RGB kernel summed over RGB and divided by
``in_channels`` (so an input whose channels are all equal to a grey image gives the RGB network's response to
that grey image), as timm's ``adapt_input_conv`` does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torchvision
from monai.networks.blocks import BaseEncoder
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE

__all__ = [
    "TV_ENCODERS",
    "TorchvisionEncoder",
    "TorchvisionEncoderSpec",
    "load_imagenet_weights",
    "register_flexunet_encoders",
]


def _vgg_features(model_name: str) -> nn.Module:
    """VGG's convolutional part only: torchvision's ``vgg16()`` also builds a 120M-parameter classifier (1.5 s)."""
    from torchvision.models.vgg import cfgs, make_layers

    cfg = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}[model_name]
    holder = nn.Module()
    holder.features = make_layers(cfgs[cfg], batch_norm=False)
    for m in holder.features.modules():  # torchvision's VGG initialisation of its convolutions
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
    return holder


def _features(model: nn.Module) -> nn.Sequential:
    return model.features


def _resnet_layers(model: nn.Module) -> nn.Sequential:
    return nn.Sequential(
        model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3, model.layer4
    )


@dataclass(frozen=True)
class TorchvisionEncoderSpec:
    """How to cut one torchvision model into five stages.

    Args:
        model_name: torchvision builder name (``torchvision.models.get_model``).
        ends: end index (exclusive) of each stage in the model's layer sequence; stage ``i`` is
            ``layers[ends[i-1]:ends[i]]``.
        channels: output channels of the stages (checked against a forward pass in the tests).
        layers: the model's layer sequence (default ``model.features``).
        build: builds the model without weights (default ``torchvision.models.get_model(name, weights=None)``).
    """

    model_name: str
    ends: tuple[int, ...]
    channels: tuple[int, ...]
    layers: Callable[[nn.Module], nn.Sequential] = _features
    build: Callable[[str], nn.Module] | None = None


TV_ENCODERS: dict[str, TorchvisionEncoderSpec] = {
    "tv_vgg16": TorchvisionEncoderSpec("vgg16", (9, 16, 23, 30, 31), (128, 256, 512, 512, 512), build=_vgg_features),
    "tv_resnet50": TorchvisionEncoderSpec("resnet50", (3, 5, 6, 7, 8), (64, 256, 512, 1024, 2048), _resnet_layers),
    "tv_mobilenet_v3_large": TorchvisionEncoderSpec("mobilenet_v3_large", (2, 4, 7, 13, 17), (16, 24, 40, 112, 960)),
    "tv_efficientnet_v2_s": TorchvisionEncoderSpec("efficientnet_v2_s", (2, 3, 4, 6, 7), (24, 48, 64, 160, 256)),
    "tv_efficientnet_v2_m": TorchvisionEncoderSpec("efficientnet_v2_m", (2, 3, 4, 6, 8), (24, 48, 80, 176, 512)),
}
"""The FlexibleUNet encoder name -> how to build it from torchvision."""


def load_imagenet_weights(model_name: str) -> dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights of ``model_name``, from the torch hub cache or downloaded.

    Raises:
        RuntimeError: one line naming the weights, their URL and the folder to put the file in, when they are
            neither cached nor downloadable (offline).
    """
    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # noqa: BLE001 - URLError, HTTPError, a corrupt file: the user needs the same advice
        folder = os.path.join(torch.hub.get_dir(), "checkpoints")
        reason = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise RuntimeError(
            f"cannot load torchvision ImageNet weights {weights} for {model_name} ({type(e).__name__}: {reason}); "
            f"download {weights.url} into {folder}/ (or set TORCH_HOME), or build with pretrained=False"
        ) from None


def _replace_first_conv(model: nn.Module, in_channels: int, from_rgb: bool) -> None:
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    if conv.in_channels == in_channels:
        return
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
        conv.padding_mode,
    )
    if from_rgb:
        with torch.no_grad():
            new.weight.copy_(conv.weight.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, new)


class TorchvisionEncoder(nn.Module, BaseEncoder):
    """A torchvision ImageNet model as a five-stage 2-D encoder for MONAI's ``FlexibleUNet``.

    Args:
        model_name: a key of :data:`TV_ENCODERS` (``"tv_resnet50"``, ...).
        spatial_dims: must be 2 (torchvision's models are 2-D).
        in_channels: input channels; the first convolution is adapted when it is not 3.
        pretrained: load torchvision's ImageNet weights (from the torch hub cache, or downloaded).

    Raises:
        ValueError: for ``spatial_dims != 2`` or an unknown ``model_name`` (one line each).
        RuntimeError: ``pretrained`` and the weights cannot be loaded (see :func:`load_imagenet_weights`).
    """

    def __init__(self, model_name: str, spatial_dims: int = 2, in_channels: int = 3, pretrained: bool = False):
        super().__init__()
        if model_name not in TV_ENCODERS:
            raise ValueError(f"unknown torchvision encoder {model_name!r}; valid names: {', '.join(TV_ENCODERS)}")
        if spatial_dims != 2:
            raise ValueError(
                f"{model_name} is a 2-D torchvision encoder, got spatial_dims={spatial_dims}; for 3-D use one of "
                "MONAI's own encoders (resnet10..resnet200)"
            )
        spec = TV_ENCODERS[model_name]
        model = spec.build(spec.model_name) if spec.build else torchvision.models.get_model(spec.model_name)
        if pretrained:
            state = load_imagenet_weights(spec.model_name)
            own = model.state_dict()
            model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
        _replace_first_conv(model, int(in_channels), from_rgb=bool(pretrained))
        layers = spec.layers(model)
        starts = (0,) + spec.ends[:-1]
        self.stages = nn.ModuleList([layers[a:b] for a, b in zip(starts, spec.ends)])
        self.model_name = model_name
        self.in_channels = int(in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    # --- BaseEncoder: what FLEXUNET_BACKBONE reads, one entry per name -------------------------------------------
    @classmethod
    def get_encoder_names(cls) -> list[str]:
        return list(TV_ENCODERS)

    @classmethod
    def get_encoder_parameters(cls) -> list[dict]:
        return [{"model_name": n, "spatial_dims": 2, "in_channels": 3, "pretrained": False} for n in TV_ENCODERS]

    @classmethod
    def num_channels_per_output(cls) -> list[tuple[int, ...]]:
        return [spec.channels for spec in TV_ENCODERS.values()]

    @classmethod
    def num_outputs(cls) -> list[int]:
        return [len(spec.channels) for spec in TV_ENCODERS.values()]


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_flexunet_encoders(cls: type[BaseEncoder]) -> None:
    """Register ``cls`` in ``FLEXUNET_BACKBONE``, refusing to replace an entry of another class.

    Raises:
        RuntimeError: a name of ``cls`` is already registered by another class (e.g. MONAI's ``resnet50``).
    """
    registry = FLEXUNET_BACKBONE.register_dict
    for name in cls.get_encoder_names():
        owner = registry.get(name, {}).get("type")
        if owner is not None and _qualname(owner) != _qualname(cls):
            raise RuntimeError(
                f"FlexibleUNet encoder {name!r} is already registered by {_qualname(owner)}; registering "
                f"{_qualname(cls)} under the same name would replace it for the whole process: choose another name"
            )
    FLEXUNET_BACKBONE.register_class(cls)


register_flexunet_encoders(TorchvisionEncoder)
