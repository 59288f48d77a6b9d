"""nnU-Net-style 2-D U-Net: MONAI ``DynUNet`` configured by nnU-Net's topology rule.

nnU-Net (Isensee et al., "nnU-Net: a self-configuring method for deep learning-based biomedical image
segmentation", Nature Methods 2021) derives the U-Net's depth and per-axis strides from the patch size and the
voxel spacing. :func:`nnunet_2d_plan` implements the rule of nnU-Net v2's ``get_pool_and_conv_props``
(``nnunetv2/experiment_planning/experiment_planners/network_topology.py``) for 2-D, with 3x3 kernels throughout
(our choice; see the function). :func:`build_nnunet` turns a plan into a ``DynUNet`` with deep supervision.

IAC cells sit on DynUNet's skips through :class:`~iac_components.networks.adapters.DynUNetAdapter`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monai.networks.nets import DynUNet

__all__ = ["NNUNetPlan", "build_nnunet", "nnunet_2d_plan"]


@dataclass(frozen=True)
class NNUNetPlan:
    """A U-Net topology in ``DynUNet``'s terms (one entry per resolution stage, the first at full resolution).

    Attributes:
        kernel_size: conv kernel per stage.
        strides: stride per stage; ``strides[0]`` is ``(1, 1)``, stage ``i > 0`` pools by ``strides[i]``.
        filters: output channels per stage.
        pool_per_axis: number of stride-2 poolings per axis.
        patch_size: the patch size padded to a multiple of ``divisible_by`` (as nnU-Net pads it).
        divisible_by: ``2 ** pool_per_axis``: the input size multiple per axis.
        deep_supr_num: deep-supervision heads (nnU-Net supervises every decoder output but the lowest).
    """

    kernel_size: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    filters: tuple[int, ...]
    pool_per_axis: tuple[int, ...]
    patch_size: tuple[int, ...]
    divisible_by: tuple[int, ...]
    deep_supr_num: int

    @property
    def num_stages(self) -> int:
        return len(self.strides)

    def dynunet_kwargs(self) -> dict[str, Any]:
        """The topology arguments of ``monai.networks.nets.DynUNet``."""
        return {
            "kernel_size": [list(k) for k in self.kernel_size],
            "strides": [list(s) for s in self.strides],
            "upsample_kernel_size": [list(s) for s in self.strides[1:]],
            "filters": list(self.filters),
        }


def nnunet_2d_plan(
    patch_size: Sequence[int],
    spacing: Sequence[float] = (1.0, 1.0),
    min_feature_map: int = 4,
    base_channels: int = 32,
    max_channels: int = 512,
    max_stages: int | None = None,
) -> NNUNetPlan:
    """nnU-Net's 2-D U-Net topology for a patch of ``patch_size`` pixels at ``spacing`` mm.

    The rule (nnU-Net v2 ``get_pool_and_conv_props``), repeated while it pools: with the current feature-map size
    ``s`` and current spacing ``d`` per axis (``d`` doubles when an axis is pooled, ``s`` becomes
    ``ceil(s / 2)``),

    1. the axes that may still be pooled are those with ``s >= 2 * min_feature_map`` (so the pooled map keeps at
       least ``min_feature_map`` = 4 pixels, nnU-Net's minimum);
    2. of these, pool only the axes whose spacing is less than twice the finest spacing among them
       (``d / min(d) < 2``): a much coarser axis waits until the finer ones have caught up;
    3. if only one axis is left, pool it only if ``s >= 3 * min_feature_map``;
    4. stop when no axis is left, or when ``max_stages`` stages exist (nnU-Net itself has no cap).

    Each pooling is a stride-2 convolution on the pooled axes (stride 1 on the others) and starts a new stage.
    Channels start at ``base_channels`` (32) and double per stage up to ``max_channels`` (512, nnU-Net's 2-D cap).
    Kernels are 3x3 in every stage: nnU-Net would use 1 on an axis whose spacing is >= 2x the finest until it
    catches up; in-plane 2-D spacings are near-isotropic, and we keep 3x3 (our choice).
    nnU-Net pads the patch to a multiple of ``2 ** pools`` per axis (:attr:`NNUNetPlan.patch_size`); in this
    package :class:`~iac_components.networks.padding.PadToMultiple` does that for any input.

    Args:
        patch_size: training patch size (pixels) per axis.
        spacing: pixel spacing (mm) per axis.
        min_feature_map: smallest feature-map edge at the bottleneck.
        base_channels: channels of the first stage.
        max_channels: channel cap.
        max_stages: cap on the number of stages (None: as many as the rule allows).

    Returns:
        the :class:`NNUNetPlan`.

    Raises:
        ValueError: not 2-D, or the patch is so small that fewer than 3 stages result (``DynUNet`` needs 3).
    """
    if len(patch_size) != 2 or len(spacing) != 2:
        raise ValueError(f"nnunet_2d_plan needs a 2-D patch size and spacing, got {patch_size} and {spacing}")
    if min(spacing) <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    dim = 2
    size = [int(s) for s in patch_size]
    current = [float(d) for d in spacing]
    strides: list[tuple[int, ...]] = [(1,) * dim]
    pools = [0] * dim
    while max_stages is None or len(strides) < max_stages:
        axes = [a for a in range(dim) if size[a] >= 2 * min_feature_map]
        if not axes:
            break
        finest = min(current[a] for a in axes)
        axes = [a for a in axes if current[a] / finest < 2]
        if len(axes) == 1 and size[axes[0]] < 3 * min_feature_map:
            break
        for a in axes:
            current[a] *= 2
            size[a] = math.ceil(size[a] / 2)
            pools[a] += 1
        strides.append(tuple(2 if a in axes else 1 for a in range(dim)))
    n = len(strides)
    if n < 3:
        raise ValueError(
            f"patch {tuple(patch_size)} allows only {n - 1} pooling(s) with min_feature_map={min_feature_map}; "
            "a DynUNet needs at least 2: use a larger patch"
        )
    divisible = tuple(2**p for p in pools)
    return NNUNetPlan(
        kernel_size=((3,) * dim,) * n,
        strides=tuple(strides),
        filters=tuple(min(base_channels * 2**i, max_channels) for i in range(n)),
        pool_per_axis=tuple(pools),
        patch_size=tuple(math.ceil(s / m) * m for s, m in zip(patch_size, divisible)),
        divisible_by=divisible,
        deep_supr_num=max(1, n - 3),
    )


def build_nnunet(
    in_channels: int,
    out_channels: int,
    patch_size: Sequence[int],
    spacing: Sequence[float] = (1.0, 1.0),
    spatial_dims: int = 2,
    deep_supervision: bool = True,
    deep_supr_num: int | None = None,
    min_feature_map: int = 4,
    base_channels: int = 32,
    max_channels: int = 512,
    max_stages: int | None = None,
    norm_name: str | tuple = ("INSTANCE", {"affine": True}),
    act_name: str | tuple = ("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
    res_block: bool = False,
) -> DynUNet:
    """MONAI ``DynUNet`` with the topology of :func:`nnunet_2d_plan`, instance norm and leaky ReLU (nnU-Net).

    With ``deep_supervision`` the network returns, in training mode, the main output and the upsampled outputs
    of the ``deep_supr_num`` next-coarser decoder stages stacked as ``(B, 1 + deep_supr_num, C, H, W)`` (train
    it with :class:`~iac_components.networks.deep_supervision.StackedDeepSupervisionLoss`); in eval mode the
    main output ``(B, C, H, W)``.

    Args:
        in_channels, out_channels: channels of the input and of the logits.
        patch_size, spacing, min_feature_map, base_channels, max_channels, max_stages: see :func:`nnunet_2d_plan`.
        spatial_dims: must be 2.
        deep_supervision: deep-supervision heads (nnU-Net trains with them).
        deep_supr_num: number of heads; default the plan's (all decoder outputs but the lowest, as nnU-Net).
        norm_name, act_name, res_block: ``DynUNet`` arguments.
    """
    if spatial_dims != 2:
        raise ValueError(f"the nnU-Net backbone here is 2-D, got spatial_dims={spatial_dims}")
    plan = nnunet_2d_plan(patch_size, spacing, min_feature_map, base_channels, max_channels, max_stages)
    return DynUNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        norm_name=norm_name,
        act_name=act_name,
        deep_supervision=deep_supervision,
        deep_supr_num=plan.deep_supr_num if deep_supr_num is None else deep_supr_num,
        res_block=res_block,
        **plan.dynunet_kwargs(),
    )

