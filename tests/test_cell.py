from __future__ import annotations

import pytest
import torch

from iac_components.cell import CellArchitecture, FixedCells, MixedEdge, SearchCells, channel_shuffle
from iac_components.genotype import Genotype
from iac_components.ops import DEFAULT_OPS
from iac_components.search.optim import sync_optimizer

G = Genotype(
    (
        ((0, "sep_conv_3x3"), (1, "skip_connect")),
        ((0, "conv_3x3"), (2, "max_pool_3x3")),
        ((1, "dil_conv_3x3"), (3, "avg_pool_3x3")),
        ((2, "sep_conv_5x5"), (4, "dil_conv_5x5")),
    )
)


def _features(dims: int, channels=(8, 16, 24), size=8):
    return [torch.randn(2, c, *([size // 2**i] * dims)) for i, c in enumerate(channels)]


@pytest.mark.parametrize("dims", [2, 3])
def test_search_and_fixed_cells_keep_skip_shapes(dims):
    feats = _features(dims)
    search = SearchCells([8, 16, 24], cell_channels=8, partial_k=2, spatial_dims=dims)
    fixed = FixedCells([8, 16, 24], G, cell_channels=8, spatial_dims=dims)
    for cells in (search, fixed):
        out = cells(feats)
        assert [o.shape for o in out] == [f.shape for f in feats[:2]]


def test_cell_has_14_edges_and_arch_weight_parameters_split_everything():
    cells = SearchCells([8, 16, 24], cell_channels=8, partial_k=2, share_genotype=False)
    assert len(cells.archs) == 2 and len(cells.archs[0].alphas) == 14
    assert [tuple(b.shape) for b in cells.archs[0].betas.values()] == [(2,), (3,), (4,), (5,)]
    arch = {id(p) for p in cells.arch_parameters()}
    weights = {id(p) for p in cells.weight_parameters()}
    assert arch and weights and not arch & weights
    assert arch | weights == {id(p) for p in cells.parameters()}


def test_shared_genotype_means_one_architecture_for_all_levels():
    cells = SearchCells([8, 16, 24, 32], cell_channels=8, partial_k=2)
    assert len(cells.archs) == 1 and cells.arch_of(0) is cells.arch_of(2)
    assert sum(p.numel() for p in cells.arch_parameters()) == 14 * 8 + (2 + 3 + 4 + 5)


def test_gamma_starts_at_zero_so_the_cell_returns_the_skip():
    feats = _features(2)
    for cells in (SearchCells([8, 16, 24], cell_channels=8, partial_k=2), FixedCells([8, 16, 24], G, cell_channels=8)):
        out = cells(feats)
        assert all(torch.equal(o, f) for o, f in zip(out, feats))


def test_gradients_reach_gamma_then_alpha_beta_and_every_live_op():
    cells = SearchCells([8, 16, 24], cell_channels=8, partial_k=2)
    feats = _features(2)
    cells(feats)[0].square().sum().backward()
    assert cells.cells[0].gamma.grad.abs().item() > 0
    cells.zero_grad()
    for c in cells.cells:
        torch.nn.init.constant_(c.gamma, 0.5)
    sum(o.square().sum() for o in cells(feats)).backward()
    arch = cells.archs[0]
    assert all(a.grad.abs().sum() > 0 for a in arch.alphas.values())
    assert all(b.grad.abs().sum() > 0 for b in arch.betas.values())
    for cell in cells.cells:
        for edge in cell.edges.values():
            for name, op in edge.ops.items():
                for p in op.parameters():
                    assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_partial_channels_route_one_kth_through_the_ops():
    edge = MixedEdge(8, ["skip_connect", "none"], partial_k=4)
    x = torch.arange(8.0).view(1, 8, 1, 1)
    # ops see channels 0-1; skip_connect with weight 1 keeps them, the 6 bypassing channels are shuffled in
    y = edge(x, torch.tensor([1.0, 0.0]))
    assert sorted(y.flatten().tolist()) == list(range(8))
    assert torch.equal(y, channel_shuffle(x, 4))


def test_fixed_cell_holds_exactly_the_genotype_ops():
    fixed = FixedCells([8, 16, 24], G, cell_channels=8)
    for cell in fixed.cells:
        assert sorted(cell.edges.keys()) == sorted(f"e{i}_{j}" for i, j, _ in G.edges())
        built = {name: type(m).__name__ for name, m in cell.edges.items()}
        assert built["e0_2"] == "SepConv" and built["e1_2"] == "Identity" and built["e2_3"] == "MaxPool2d"


def test_fixed_cells_inherit_searched_weights_only_with_k1():
    search = SearchCells([8, 16, 24], cell_channels=8, partial_k=1)
    fixed = FixedCells([8, 16, 24], G, cell_channels=8)
    fixed.inherit_weights(search)
    src = search.cells[0].edges["e0_2"].ops["sep_conv_3x3"][0][1].weight
    assert torch.equal(fixed.cells[0].edges["e0_2"][0][1].weight, src)
    with pytest.raises(ValueError, match="only when partial_k = 1"):
        FixedCells([8, 16, 24], G, cell_channels=8).inherit_weights(SearchCells([8, 16, 24], cell_channels=8))


def test_pruned_ops_are_deleted_not_masked():
    cells = SearchCells([8, 16, 24], cell_channels=8, partial_k=2)
    arch_opt = torch.optim.Adam(list(cells.arch_parameters()), lr=0.1)
    weight_opt = torch.optim.SGD(list(cells.weight_parameters()), lr=0.1, momentum=0.9)
    feats = _features(2)
    for c in cells.cells:
        torch.nn.init.constant_(c.gamma, 0.5)
    sum(o.sum() for o in cells(feats)).backward()
    arch_opt.step(), weight_opt.step()
    n_weights = sum(p.numel() for p in cells.weight_parameters())
    old_alpha = cells.archs[0].alphas["e0_2"]
    calls = []
    pruned_op = cells.cells[0].edges["e0_2"].ops["sep_conv_5x5"]
    pruned_op.register_forward_hook(lambda *a: calls.append(1))
    keep = ["skip_connect", "conv_3x3", "sep_conv_3x3", "dil_conv_3x3"]
    kept_moments = arch_opt.state[old_alpha]["exp_avg"][[0, 3, 4, 6]].clone()
    remap = cells.prune_edge(0, 0, 2, keep)
    remap.update(cells.prune_node(0, 4, [1, 3]))
    sync_optimizer(arch_opt, cells.arch_parameters(), remap)
    sync_optimizer(weight_opt, cells.weight_parameters())

    assert list(cells.cells[1].edges["e0_2"].ops) == keep  # every level of the shared genotype
    assert "e0_4" not in cells.cells[0].edges and "e2_4" not in cells.cells[1].edges
    assert sum(p.numel() for p in cells.weight_parameters()) < n_weights
    held = {id(p) for g in arch_opt.param_groups for p in g["params"]}
    assert id(old_alpha) not in held and held == {id(p) for p in cells.arch_parameters()}
    new_alpha = cells.archs[0].alphas["e0_2"]
    assert new_alpha.shape == (4,) and torch.equal(arch_opt.state[new_alpha]["exp_avg"], kept_moments)
    assert {id(p) for g in weight_opt.param_groups for p in g["params"]} == {id(p) for p in cells.weight_parameters()}
    assert all(id(p) in {id(q) for q in cells.weight_parameters()} for p in weight_opt.state)
    cells(feats)
    assert calls == []
    # the optimisers keep working on the pruned network
    sum(o.sum() for o in cells(feats)).backward()
    arch_opt.step(), weight_opt.step()


def test_structure_round_trip_rebuilds_the_same_parameter_order():
    a = SearchCells([8, 16, 24], cell_channels=8, partial_k=2)
    a.prune_node(0, 5, [0, 4])
    a.prune_edge(0, 0, 2, ["conv_3x3"])
    b = SearchCells([8, 16, 24], cell_channels=8, partial_k=2)
    b.apply_structure(a.structure())
    assert b.structure() == a.structure()
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
    b.load_state_dict(a.state_dict())


def test_structure_from_another_search_space_is_refused():
    a = SearchCells([8, 16, 24], cell_channels=8, partial_k=2, ops=["conv_3x3", "skip_connect"])
    b = SearchCells([8, 16, 24], cell_channels=8, partial_k=2)
    s = b.structure()
    with pytest.raises(ValueError, match=r"checkpoint edge 0->2 with ops .* does not exist in this search space"):
        a.apply_structure(s)
    with pytest.raises(ValueError, match="holds 1 cell architectures but this search space has 2"):
        SearchCells([8, 16, 24], cell_channels=8, partial_k=2, share_genotype=False).apply_structure(s)


def test_architecture_decides_and_derives():
    arch = CellArchitecture(n_nodes=4, ops=DEFAULT_OPS)
    assert not arch.is_decided() and arch.ops_alive() == 14 * 8
    for j in range(2, 6):
        arch.prune_node(j, [0, 1])
    for key in list(arch.edge_ops):
        i, j = map(int, key.split("->"))
        arch.prune_edge(i, j, ["conv_3x3"])
    assert arch.is_decided() and arch.ops_alive() == 8
    assert arch.derive() == Genotype(tuple(((0, "conv_3x3"), (1, "conv_3x3")) for _ in range(4)))


def test_partial_k_must_divide_the_cell_width():
    with pytest.raises(ValueError, match="not divisible by partial_k=3"):
        SearchCells([8, 16, 24], cell_channels=8, partial_k=3)
