"""Candidate operations of the IAC search space.

Every operation keeps the channel count and the spatial resolution (stride 1), so any op can sit on any edge of
a cell. Layers come from MONAI's factories (``Conv``, ``Pool``, ``Norm``) so one definition serves 2-D and 3-D.

The registry :data:`OPS` maps the names that configs use to small factories, following DARTS (Liu et al., ICLR
2019) and PC-DARTS (Xu et al., ICLR 2020) and the DiNTS op dictionaries of MONAI: a search space is data, not a
chain of ``if`` statements. Register a new op with :func:`register_op`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool
from monai.networks.layers.utils import get_norm_layer

__all__ = [
    "ChannelsFirstBatchNorm2d",
    "DEFAULT_OPS",
    "OPS",
    "DilConv",
    "ReLUConvNorm",
    "ReLUFirst",
    "SepConv",
    "Zero",
    "build_op",
    "channels_first_norms",
    "check_op_names",
    "register_op",
    "relu_first_forward",
]

OpFactory = Callable[[int, int, bool], nn.Module]
"""``factory(channels, spatial_dims, affine) -> module``; ``affine`` is off inside the search supernet (DARTS)."""

OPS: dict[str, OpFactory] = {}

#: The ops searched by default (docs/method.md, "Search space"): ``none`` is registered but not searched unless a
#: config asks for it.
DEFAULT_OPS: tuple[str, ...] = (
    "skip_connect",
    "avg_pool_3x3",
    "max_pool_3x3",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Decorator that adds an op factory to :data:`OPS` under ``name``.

    Raises:
        ValueError: when ``name`` is already registered (re-registering would silently change every config that
            names it).
    """

    def wrapper(factory: OpFactory) -> OpFactory:
        if name in OPS:
            raise ValueError(f"operation {name!r} is already registered")
        OPS[name] = factory
        return factory

    return wrapper


def check_op_names(names: Sequence[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple after checking that each is registered and none repeats.

    Raises:
        ValueError: one line naming the unknown or repeated op and listing the valid names.
    """
    names = tuple(names)
    if not names:
        raise ValueError("the op list is empty; give at least one of: " + ", ".join(sorted(OPS)))
    for n in names:
        if n not in OPS:
            raise ValueError(f"unknown operation {n!r}; valid operations: {', '.join(sorted(OPS))}")
    if len(set(names)) != len(names):
        raise ValueError(f"the op list repeats a name: {list(names)}")
    return names


def build_op(name: str, channels: int, spatial_dims: int = 2, affine: bool = True) -> nn.Module:
    """Build the registered op ``name`` for ``channels`` channels."""
    check_op_names([name])
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return OPS[name](channels, spatial_dims, affine)


class ChannelsFirstBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that normalises a channels-last CPU tensor in the channels-first layout and hands it back
    channels-last: the same arithmetic, but torch's CPU batch norm on channels-last maps of the cells' few channels
    is 1.4-2.4x slower than a copy to channels-first, the norm and a copy back (4..16 channels, 32²..128², forward
    and backward, 2 cores), which made a whole search iteration 1.18-1.40x faster
    (``benchmarks/results/norm_layout.md``). Same parameters and buffers as its parent, so checkpoints load
    either way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last
        ):
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def channels_first_norms(module: nn.Module) -> nn.Module:
    """Make every 2-D batch norm of ``module`` a :class:`ChannelsFirstBatchNorm2d` (in place; returns ``module``).
    The search cells' ops use it: their partial channels (width / K) are where the channels-last norm is slow; the
    fixed cells' full-width ops measured no gain (``benchmarks/results/norm_layout.md``)."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = ChannelsFirstBatchNorm2d
    return module


def _norm(channels: int, spatial_dims: int, affine: bool) -> nn.Module:
    return get_norm_layer(("batch", {"affine": affine}), spatial_dims=spatial_dims, channels=channels)


class Zero(nn.Module):
    """The ``none`` op: zeros of the input's shape (a learnable way for an edge to switch itself off)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class ReLUFirst(nn.Sequential):
    """An op whose first step is a ReLU of its input (DARTS's ReLU -> conv -> norm ops). The ops on the edges that
    leave one node all start with the same ReLU of the same tensor, so a cell computes it once per node and calls
    :meth:`after_relu` (same arithmetic: one ReLU, and in training one saved activation and one ReLU backward per
    node, instead of one per op and edge)."""

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The op on ``x`` that is already ``relu(input)``."""
        for i, module in enumerate(self):
            if i:
                x = module(x)
        return x


_RELU_KEY = "relu(input)"  # not an op name: the cache also holds the pools' results under their names


def relu_first_forward(op: nn.Module, x: torch.Tensor, relu_cache: dict) -> torch.Tensor:
    """``op(x)``, taking ``relu(x)`` from ``relu_cache`` (filled on first use) when ``op`` starts with that ReLU;
    ``relu_cache`` belongs to ``x`` (one per node of a cell)."""
    if isinstance(op, ReLUFirst):
        r = relu_cache.get(_RELU_KEY)
        if r is None:
            r = relu_cache[_RELU_KEY] = torch.relu(x)
        return op.after_relu(r)
    return op(x)


class ReLUConvNorm(ReLUFirst):
    """ReLU -> conv (stride 1, 'same' padding) -> norm."""

    def __init__(self, channels: int, kernel_size: int, spatial_dims: int, affine: bool, dilation: int = 1):
        conv = Conv[Conv.CONV, spatial_dims]
        pad = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            conv(channels, channels, kernel_size, padding=pad, dilation=dilation, bias=False),
            _norm(channels, spatial_dims, affine),
        )


class DilConv(ReLUFirst):
    """ReLU -> dilated depthwise conv -> pointwise conv -> norm (DARTS ``dil_conv``)."""

    def __init__(self, channels: int, kernel_size: int, spatial_dims: int, affine: bool, dilation: int = 2):
        conv = Conv[Conv.CONV, spatial_dims]
        pad = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            conv(channels, channels, kernel_size, padding=pad, dilation=dilation, groups=channels, bias=False),
            conv(channels, channels, 1, bias=False),
            _norm(channels, spatial_dims, affine),
        )


class SepConv(ReLUFirst):
    """Two stacked depthwise-separable blocks (DARTS ``sep_conv``): the receptive field of two convs."""

    def __init__(self, channels: int, kernel_size: int, spatial_dims: int, affine: bool):
        super().__init__(
            DilConv(channels, kernel_size, spatial_dims, affine, dilation=1),
            DilConv(channels, kernel_size, spatial_dims, affine, dilation=1),
        )

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        return self[1](self[0].after_relu(x))


def _pool(kind: str) -> OpFactory:
    def factory(channels: int, spatial_dims: int, affine: bool) -> nn.Module:
        if kind == "avg":
            # count_include_pad=False: border pixels average only real neighbours, so a constant map stays constant
            return Pool[Pool.AVG, spatial_dims](3, stride=1, padding=1, count_include_pad=False)
        return Pool[Pool.MAX, spatial_dims](3, stride=1, padding=1)

    return factory


register_op("none")(lambda c, d, a: Zero())
register_op("skip_connect")(lambda c, d, a: nn.Identity())
register_op("avg_pool_3x3")(_pool("avg"))
register_op("max_pool_3x3")(_pool("max"))
register_op("conv_3x3")(lambda c, d, a: ReLUConvNorm(c, 3, d, a))
register_op("conv_1x1")(lambda c, d, a: ReLUConvNorm(c, 1, d, a))
register_op("sep_conv_3x3")(lambda c, d, a: SepConv(c, 3, d, a))
register_op("sep_conv_5x5")(lambda c, d, a: SepConv(c, 5, d, a))
register_op("dil_conv_3x3")(lambda c, d, a: DilConv(c, 3, d, a, dilation=2))
register_op("dil_conv_5x5")(lambda c, d, a: DilConv(c, 5, d, a, dilation=2))
