from __future__ import annotations

import pytest
import torch

from iac_components.ops import DEFAULT_OPS, OPS, build_op, check_op_names, register_op


@pytest.mark.parametrize("spatial_dims,shape", [(2, (2, 8, 13, 10)), (3, (1, 8, 9, 6, 7))])
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_keeps_channels_and_resolution(name, spatial_dims, shape):
    op = build_op(name, 8, spatial_dims, affine=True)
    y = op(torch.randn(shape))
    assert y.shape == shape


def test_default_ops_are_the_design_set_and_none_is_off():
    assert set(DEFAULT_OPS) == {
        "skip_connect", "avg_pool_3x3", "max_pool_3x3", "conv_3x3",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    }
    assert "none" in OPS and "none" not in DEFAULT_OPS


def test_none_is_zero_and_skip_is_identity():
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(build_op("none", 4)(x), torch.zeros_like(x))
    assert torch.equal(build_op("skip_connect", 4)(x), x)


def test_avg_pool_keeps_a_constant_map_constant_at_the_border():
    x = torch.full((1, 2, 6, 6), 3.0)
    assert torch.allclose(build_op("avg_pool_3x3", 2)(x), x)


def test_unknown_op_is_one_line_error_listing_valid_names():
    with pytest.raises(ValueError, match=r"unknown operation 'conv_7x7'; valid operations: .*sep_conv_3x3") as e:
        check_op_names(["skip_connect", "conv_7x7"])
    assert "\n" not in str(e.value)


def test_repeated_or_reregistered_op_is_refused():
    with pytest.raises(ValueError, match="repeats"):
        check_op_names(["conv_3x3", "conv_3x3"])
    with pytest.raises(ValueError, match="already registered"):
        register_op("conv_3x3")(lambda c, d, a: None)


def test_search_ops_have_no_affine_norm():
    op = build_op("sep_conv_3x3", 4, 2, affine=False)
    norms = [m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.affine for m in norms)


def test_channels_first_batch_norm_is_torchs_batch_norm_in_the_inputs_layout():
    import torch

    from iac_components.ops import ChannelsFirstBatchNorm2d

    torch.manual_seed(0)
    ref, ours = torch.nn.BatchNorm2d(4), ChannelsFirstBatchNorm2d(4)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4, 9, 7).contiguous(memory_format=torch.channels_last)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yo = ref(xr), ours(xo)
    assert yo.is_contiguous(memory_format=torch.channels_last) and not yo.is_contiguous()
    torch.testing.assert_close(yo, yr)
    (yr * yr).sum().backward()
    (yo * yo).sum().backward()
    torch.testing.assert_close(xo.grad, xr.grad)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)


def test_only_the_search_cells_ops_get_the_channels_first_norm():
    import torch

    from iac_components.cell import FixedCell, MixedEdge
    from iac_components.genotype import Genotype
    from iac_components.ops import ChannelsFirstBatchNorm2d

    edge = MixedEdge(16, ["conv_3x3", "avg_pool_3x3", "sep_conv_3x3"], partial_k=4)
    norms = [m for m in edge.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(type(m) is ChannelsFirstBatchNorm2d for m in norms)
    genotype = Genotype((((0, "conv_3x3"), (1, "skip_connect")),) * 4)
    fixed = FixedCell(16, 32, genotype, 16, 2, "batch")
    assert not any(type(m) is ChannelsFirstBatchNorm2d for m in fixed.modules())


@pytest.mark.parametrize("name", ["conv_3x3", "conv_1x1", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"])
def test_relu_first_ops_after_a_shared_relu_are_the_op(name):
    from iac_components.ops import ReLUFirst, relu_first_forward

    torch.manual_seed(0)
    op = build_op(name, 4, 2, affine=True).eval()
    first = op[0] if isinstance(op[0], torch.nn.ReLU) else op[0][0]  # sep_conv: its first block's ReLU
    assert isinstance(op, ReLUFirst) and isinstance(first, torch.nn.ReLU)
    x = torch.randn(2, 4, 9, 7)
    cache: dict = {}
    torch.testing.assert_close(relu_first_forward(op, x, cache), op(x), rtol=0, atol=0)
    (relu,) = cache.values()
    torch.testing.assert_close(relu, torch.relu(x), rtol=0, atol=0)


def test_a_cache_computes_the_relu_once_for_every_op_that_starts_with_it(monkeypatch):
    from iac_components.ops import relu_first_forward

    calls = []
    real_relu = torch.relu
    monkeypatch.setattr(torch, "relu", lambda t: calls.append(1) or real_relu(t))
    x, cache = torch.randn(1, 4, 6, 6), {}
    # (sep_conv's second block has a ReLU of its own inside: left out so that every call counted is the input's)
    for name in ("conv_3x3", "conv_1x1", "dil_conv_3x3", "dil_conv_5x5", "avg_pool_3x3"):
        relu_first_forward(build_op(name, 4), x, cache)
    assert len(calls) == 1


@pytest.mark.parametrize("kind", ["fixed", "search"])
def test_cells_sharing_the_relu_compute_what_the_ops_compute_alone(kind, monkeypatch):
    """The shared ReLU is the same arithmetic: outputs equal, gradients equal up to the summation order."""
    import copy

    import iac_components.cell as cell_module
    from iac_components.cell import FixedCells, SearchCells
    from iac_components.genotype import Genotype

    torch.manual_seed(0)
    genotype = Genotype(
        (((0, "sep_conv_3x3"), (1, "conv_3x3")), ((0, "dil_conv_3x3"), (1, "sep_conv_5x5")),
         ((0, "conv_3x3"), (3, "max_pool_3x3")), ((2, "dil_conv_5x5"), (3, "sep_conv_3x3")))
    )  # fmt: skip
    shared = (FixedCells((8, 16, 32), genotype, cell_channels=8) if kind == "fixed"
              else SearchCells((8, 16, 32), cell_channels=8, partial_k=2)).train()  # fmt: skip
    for c in shared.cells:
        c.gamma.data.normal_()
    alone = copy.deepcopy(shared)
    features = [torch.randn(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate((8, 16, 32))]

    def loss_and_grads(cells):
        out = cells([f.clone() for f in features])
        sum((o**2).sum() for o in out).backward()
        return out, [p.grad for p in cells.parameters()]

    out_shared, grads_shared = loss_and_grads(shared)
    monkeypatch.setattr(cell_module, "relu_first_forward", lambda op, x, cache: op(x))
    out_alone, grads_alone = loss_and_grads(alone)
    for a, b in zip(out_shared, out_alone):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert len(grads_shared) == len(grads_alone) and all(g is not None for g in grads_shared)
    for a, b in zip(grads_shared, grads_alone):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
