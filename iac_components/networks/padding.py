"""Any input size for every network: pad the input to the network's size multiple, crop the output back.

Encoders that round strided convolutions or poolings differently from their decoders' upsampling fail at sizes
that are not multiples of their total stride (MONAI's ``FlexibleUNet`` with ResNet encoders, ``DynUNet`` and
``AttentionUnet`` all fail at 200x168). This module handles it in one place, :class:`PadToMultiple`, for every
backbone of :data:`iac_components.networks.BACKBONES`:

* the input is padded at the end of each spatial axis (zeros by default) up to the next multiple,
* the network runs on the padded input,
* every tensor of the output (a tensor, a deep-supervision stack ``(B, N, C, *spatial)``, a list or a dict of
  them) is cropped back to the input's spatial size.

The pad amounts are computed from the input's shape with plain integer arithmetic, which ``torch.jit.trace``
records on the traced sizes, so a network traced at one size runs at any other.

Implantation sees through the wrapper: :class:`~iac_components.networks.adapters.PadToMultipleAdapter`
delegates to the inner network's adapter and pads in ``encode`` / crops in ``decode``, so
``implant(PadToMultiple(FlexibleUNet(...)), cells)`` works, the cells see the padded features, and the state-dict
keys stay ``backbone.network.*`` (the baseline checkpoint saved from the wrapped network loads as it is).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.nets import AttentionUnet, BasicUNet, BasicUNetPlusPlus, DynUNet, FlexibleUNet
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE

__all__ = ["PadToMultiple", "crop_to", "pad_to_multiple", "size_multiple"]

PAD_MODES = ("constant", "replicate", "reflect")


def _per_axis(value: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * spatial_dims
    value = tuple(int(v) for v in value)
    if len(value) != spatial_dims:
        raise ValueError(f"{len(value)} values for {spatial_dims} spatial dims: {value}")
    return value


def pad_to_multiple(x: torch.Tensor, multiple: Sequence[int], mode: str = "constant") -> torch.Tensor:
    """Pad the spatial axes of ``x`` (``(B, C, *spatial)``) at their end up to multiples of ``multiple``.

    Args:
        x: the input.
        multiple: one multiple per spatial axis.
        mode: ``"constant"`` (zeros), ``"replicate"`` or ``"reflect"`` (``torch.nn.functional.pad`` modes).
    """
    pads: list[int] = []
    for size, m in zip(reversed(x.shape[2:]), reversed(multiple)):
        pads += [0, (m - size % m) % m]  # F.pad takes the last axis first
    if not torch.jit.is_tracing() and not any(pads):
        return x  # eager fast path; a trace always records the pad so that it holds for other sizes
    return F.pad(x, pads, mode=mode)


def crop_to(output: Any, size: Sequence[int]) -> Any:
    """Crop the last ``len(size)`` axes of every tensor in ``output`` (tensor, list, tuple or dict) to ``size``."""
    if isinstance(output, torch.Tensor):
        index = (Ellipsis,) + tuple(slice(0, s) for s in size)
        return output[index]
    if isinstance(output, (list, tuple)):
        return type(output)(crop_to(o, size) for o in output)
    if isinstance(output, dict):
        return {k: crop_to(v, size) for k, v in output.items()}
    return output


class PadToMultiple(nn.Module):
    """Run ``network`` on the input padded to a multiple of ``multiple`` per axis; crop the output back.

    Args:
        network: the wrapped network (``state_dict`` keys get the prefix ``network.``).
        multiple: one int for all spatial axes or one per axis; None reads it from the network
            (:func:`size_multiple`).
        mode: padding mode, ``"constant"`` (zeros, as nnU-Net pads images), ``"replicate"`` or ``"reflect"``.

    Example::

        net = PadToMultiple(FlexibleUNet(4, 4, backbone="tv_resnet50"))  # multiple 32
        net(torch.zeros(1, 4, 200, 168)).shape  # (1, 4, 200, 168)
    """

    def __init__(self, network: nn.Module, multiple: int | Sequence[int] | None = None, mode: str = "constant"):
        super().__init__()
        if mode not in PAD_MODES:
            raise ValueError(f"unknown padding mode {mode!r}; valid modes: {', '.join(PAD_MODES)}")
        if multiple is None:
            multiple = size_multiple(network)
        self.network = network
        if not isinstance(multiple, int):
            multiple = tuple(int(m) for m in multiple)
        self.multiple: int | tuple[int, ...] = multiple
        self.mode = mode

    def _multiple_for(self, x: torch.Tensor) -> tuple[int, ...]:
        return _per_axis(self.multiple, x.ndim - 2)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded at the end of each spatial axis to the next multiple."""
        return pad_to_multiple(x, self._multiple_for(x), self.mode)

    def crop(self, output: Any, x: torch.Tensor) -> Any:
        """``output`` cropped to the spatial size of the (unpadded) input ``x``."""
        return crop_to(output, x.shape[2:])

    def forward(self, x: torch.Tensor) -> Any:
        return self.crop(self.network(self.pad(x)), x)

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}, mode={self.mode!r}"


# --- the size multiple of each network family -------------------------------------------------------------------


def _stride_product(strides: Sequence[int | Sequence[int]], spatial_dims: int) -> tuple[int, ...]:
    per_axis = [_per_axis(s, spatial_dims) for s in strides]
    return tuple(math.prod(s[a] for s in per_axis) for a in range(spatial_dims))


def _spatial_dims(network: nn.Module) -> int:
    for attr in ("spatial_dims", "dimensions"):
        if isinstance(getattr(network, attr, None), int):
            return int(getattr(network, attr))
    convs = [m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        raise ValueError(f"cannot tell the spatial dims of {type(network).__name__}")
    return convs[0].weight.ndim - 2


def _flexible_unet_multiple(net: FlexibleUNet) -> tuple[int, ...]:
    depth = FLEXUNET_BACKBONE.register_dict[net.backbone]["feature_number"]
    return (2**depth,) * net.spatial_dims


def _basic_unet_multiple(net: nn.Module) -> tuple[int, ...]:
    return (16,) * _spatial_dims(net)  # four 2x max-poolings


_MULTIPLES: dict[type[nn.Module], Callable[[Any], tuple[int, ...]]] = {
    FlexibleUNet: _flexible_unet_multiple,
    DynUNet: lambda net: _stride_product(net.strides, net.spatial_dims),
    AttentionUnet: lambda net: _stride_product(net.strides, net.dimensions),
    BasicUNet: _basic_unet_multiple,
    BasicUNetPlusPlus: _basic_unet_multiple,
    PadToMultiple: lambda net: _per_axis(net.multiple, _spatial_dims(net.network)),
}

_WRAPPED = ("network", "backbone")
"""Attributes under which a wrapper holds the network it runs (``network``: e.g.
:class:`~iac_components.networks.deep_supervision.DeepSupervisionStack`; ``backbone``:
:class:`~iac_components.implant.ImplantedNetwork`)."""


def size_multiple(network: nn.Module) -> tuple[int, ...]:
    """The input size multiple per spatial axis at which ``network``'s encoder and decoder agree.

    A network of none of the known classes that wraps another one, as ``network.network`` (e.g.
    :class:`~iac_components.networks.deep_supervision.DeepSupervisionStack`) or ``network.backbone`` (e.g.
    :class:`~iac_components.implant.ImplantedNetwork`), has the wrapped network's multiple.

    Raises:
        TypeError: one line listing the supported network classes.
    """
    for cls, rule in _MULTIPLES.items():
        if isinstance(network, cls):
            return tuple(int(m) for m in rule(network))
    for attr in _WRAPPED:
        inner = getattr(network, attr, None)
        if isinstance(inner, nn.Module):
            return size_multiple(inner)
    names = sorted(c.__name__ for c in _MULTIPLES)
    raise TypeError(
        f"cannot tell the input size multiple of {type(network).__name__}; pass `multiple` explicitly "
        f"(known networks: {', '.join(names)})"
    )
