"""nnU-Net's 2-D topology rule on hand-worked cases, the DynUNet adapter, and the deep-supervision convention."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNetPlusPlus, DynUNet

from iac_components.implant import get_network_adapter
from iac_components.networks import (
    DeepSupervisionStack,
    DynUNetAdapter,
    StackedDeepSupervisionLoss,
    build_nnunet,
    nnunet_2d_plan,
)

S = (1, 1)
P = (2, 2)


def test_224_square_at_1mm_pools_five_times():
    # both axes: 224 -> 112 -> 56 -> 28 -> 14 -> 7 (each size was >= 8 = 2 * 4 before pooling); 7 < 8 stops.
    # 6 stages; channels 32, 64, 128, 256, 512, then capped at 512.
    plan = nnunet_2d_plan((224, 224), (1.0, 1.0))
    assert plan.strides == (S, P, P, P, P, P)
    assert plan.kernel_size == ((3, 3),) * 6
    assert plan.filters == (32, 64, 128, 256, 512, 512)
    assert plan.pool_per_axis == (5, 5) and plan.divisible_by == (32, 32) and plan.patch_size == (224, 224)
    assert plan.deep_supr_num == 3  # decoder outputs at strides 1, 2, 4, 8, 16; all but the lowest supervised


def test_200x168_pools_five_times_and_pads_the_patch_to_32():
    # 200 -> 100 -> 50 -> 25 -> 13 -> 7 (ceil); 168 -> 84 -> 42 -> 21 -> 11 -> 6.
    # Before the 5th pooling the sizes are 13 and 11, both >= 8: pooled together; then 7 and 6 < 8 stop.
    # nnU-Net pads the patch to a multiple of 2**5: 224 x 192.
    plan = nnunet_2d_plan((200, 168), (1.0, 1.0))
    assert plan.strides == (S, P, P, P, P, P)
    assert plan.patch_size == (224, 192) and plan.divisible_by == (32, 32)


def test_anisotropic_spacing_pools_the_fine_axis_first():
    # spacing (1.0, 2.5), patch 256 x 128:
    # 1st: both sizes >= 8; finest spacing 1.0; axis 1 has 2.5 / 1.0 >= 2 -> only axis 0 (size 256 >= 3 * 4):
    #      stride (2, 1); spacing (2.0, 2.5), size (128, 128).
    # 2nd: 2.5 / 2.0 < 2 -> both: spacing (4, 5), size (64, 64); 3rd: (8, 10), (32, 32); 4th: (16, 20), (16, 16);
    # 5th: (32, 40), (8, 8); 6th: sizes 8 >= 8 -> (64, 80), (4, 4); 7th: 4 < 8 stops.
    plan = nnunet_2d_plan((256, 128), (1.0, 2.5))
    assert plan.strides == (S, (2, 1), P, P, P, P, P)
    assert plan.pool_per_axis == (6, 5) and plan.divisible_by == (64, 32)
    assert plan.filters == (32, 64, 128, 256, 512, 512, 512)


def test_spacing_ratio_below_two_pools_both_axes():
    # spacing (1.0, 1.9): 1.9 / 1.0 < 2, so both axes pool from the start: 64 -> 32 -> 16 -> 8 -> 4.
    plan = nnunet_2d_plan((64, 64), (1.0, 1.9))
    assert plan.strides == (S, P, P, P, P)


def test_small_patch_stops_at_the_four_pixel_minimum():
    # 20 -> 10 -> 5: after two poolings 5 < 8, so no third; 3 stages, the fewest a DynUNet takes.
    plan = nnunet_2d_plan((20, 20))
    assert plan.strides == (S, P, P) and plan.filters == (32, 64, 128) and plan.deep_supr_num == 1
    assert plan.patch_size == (20, 20)  # already a multiple of 4


def test_a_single_remaining_axis_needs_three_times_the_minimum():
    # 64 x 10: 1st both (10 >= 8): (32, 5). Then axis 1 is out (5 < 8); axis 0 alone pools only while its size
    # is >= 12: 32 -> 16 -> 8; at 8 it stops (8 < 12), although 8 >= 8.
    plan = nnunet_2d_plan((64, 10))
    assert plan.strides == (S, P, (2, 1), (2, 1))
    assert plan.divisible_by == (8, 2) and plan.patch_size == (64, 10)


def test_max_stages_caps_the_depth():
    plan = nnunet_2d_plan((224, 224), max_stages=4)
    assert plan.strides == (S, P, P, P) and plan.filters == (32, 64, 128, 256)


def test_too_small_a_patch_is_refused():
    # 12 -> 6: one pooling only
    with pytest.raises(ValueError, match=r"patch \(12, 12\) allows only 1 pooling"):
        nnunet_2d_plan((12, 12))
    with pytest.raises(ValueError, match="2-D"):
        nnunet_2d_plan((64, 64, 64), (1, 1, 1))


@pytest.fixture(scope="module")
def nnunet():
    torch.manual_seed(0)
    return build_nnunet(2, 3, patch_size=(64, 64))  # 64 -> 4: strides (1, 2, 2, 2, 2), 2 heads


def test_build_nnunet_follows_the_plan(nnunet):
    assert isinstance(nnunet, DynUNet)
    assert [list(s) for s in nnunet.strides] == [[1, 1]] + [[2, 2]] * 4
    assert list(nnunet.filters) == [32, 64, 128, 256, 512]
    assert nnunet.deep_supervision and nnunet.deep_supr_num == 2


@pytest.mark.parametrize("training", [True, False])
def test_adapter_reproduces_dynunet_forward_exactly(nnunet, training):
    adapter = get_network_adapter(nnunet)
    assert isinstance(adapter, DynUNetAdapter)
    assert adapter.feature_channels == [32, 64, 128, 256, 512] and adapter.num_skips == 4
    x = torch.randn(2, 2, 64, 64)
    nnunet.train(training)
    with torch.no_grad():
        expected = nnunet(x)
        got = adapter.decode(adapter.encode(x), x)
    nnunet.eval()
    assert got.shape == ((2, 3, 3, 64, 64) if training else (2, 3, 64, 64))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_stacked_loss_weighs_the_outputs_like_deep_supervision_loss():
    torch.manual_seed(0)
    base = DiceCELoss(to_onehot_y=True, softmax=True)
    stack = torch.randn(2, 3, 4, 16, 16)
    target = torch.randint(0, 4, (2, 1, 16, 16)).float()
    loss = StackedDeepSupervisionLoss(base)
    expected = sum(w * base(stack[:, i], target) for i, w in enumerate([1.0, 0.5, 0.25]))
    torch.testing.assert_close(loss(stack, target), expected)
    torch.testing.assert_close(loss(stack[:, 0], target), base(stack[:, 0], target))  # a plain output


def test_unetplusplus_stack_puts_the_main_output_first_and_returns_it_alone_in_eval():
    torch.manual_seed(0)
    inner = BasicUNetPlusPlus(2, 1, 2, features=(4, 4, 8, 8, 16, 4), deep_supervision=True)
    net = DeepSupervisionStack(inner)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        outs = inner.eval()(x)  # [x_0_1, x_0_2, x_0_3, x_0_4]
        stacked = net.train()(x)
        main = net.eval()(x)
    assert stacked.shape == (1, 4, 2, 32, 32)
    torch.testing.assert_close(main, outs[3])
    torch.testing.assert_close(stacked[:, 0], outs[3])
    torch.testing.assert_close(stacked[:, 1], outs[2])


def test_a_2d_nnunet_on_data_resampled_in_3d_plans_on_the_in_plane_spacing():
    """A 2-D bundle given a three-value --spacing (every axis resampled) plans its DynUNet on the slices' spacing."""
    from iac_components.networks import build_backbone

    three = build_backbone("nnunet", 1, 2, patch_size=[64, 48], spacing=[1.0, 2.0, 5.0], any_size=False)
    two = build_backbone("nnunet", 1, 2, patch_size=[64, 48], spacing=[1.0, 2.0], any_size=False)
    assert three.strides == two.strides and three.kernel_size == two.kernel_size
