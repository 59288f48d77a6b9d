from __future__ import annotations

import pytest
import torch

from iac_components.cell import CellArchitecture, FixedCells, SearchCells, channel_shuffle
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
    assert cells.cells[0].gamma.grad.abs().max().item() > 0
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


def _pc_darts_reference(cell, arch, skip, coarse):
    """PC-DARTS as published: every edge mixes its ops on the first C/K channels, concatenates the bypass
    channels and shuffles; a node sums its β-weighted edges. Uses the cell's own modules."""
    k = cell.partial_k
    c = cell.cell_channels // k
    states = [cell.preprocess_skip(skip), cell.preprocess_coarse(coarse, skip.shape[2:])]
    for j, inputs in arch.node_inputs.items():
        q = torch.softmax(arch.beta(j), 0)
        node = 0
        for n, i in enumerate(inputs):
            x = states[i]
            p = torch.softmax(arch.alpha(i, j), 0)
            mixed = sum(w * op(x[:, :c]) for w, op in zip(p, cell.edges[f"e{i}_{j}"].ops.values()))
            node = node + q[n] * channel_shuffle(torch.cat([mixed, x[:, c:]], 1), k)
        states.append(node)
    return skip + cell.gamma.view(1, -1, 1, 1) * cell.postprocess(torch.cat(states[2:], 1))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_search_cell_equals_pc_darts_per_edge_formula(k):
    torch.manual_seed(0)
    cells = SearchCells([8, 16, 24], cell_channels=8, partial_k=k).eval()
    arch = cells.archs[0]
    with torch.no_grad():
        for p in arch.parameters():
            p.normal_()
        for c in cells.cells:
            c.gamma.fill_(0.7)
        feats = _features(2)
        ours = cells(feats)[0]
        ref = _pc_darts_reference(cells.cells[0], arch, feats[0], feats[1])
    assert torch.allclose(ours, ref, atol=1e-5)


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_parameter_free_ops_run_once_per_node_not_per_edge():
    cells = SearchCells([8, 16, 24], cell_channels=8, partial_k=2)
    calls = []
    for cell in cells.cells[:1]:
        for edge in cell.edges.values():
            edge.ops["max_pool_3x3"].register_forward_hook(lambda *a: calls.append(1))
    cells(_features(2))
    assert len(calls) == 5  # one per state that feeds edges (0, 1, 2, 3, 4), not one per edge (14)


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


def test_pools_carry_an_affine_free_batchnorm_in_the_supernet_only():
    """DARTS / PC-DARTS: a searched pool's output is normalised so α compares it with the convs on one scale."""
    search = SearchCells([8, 16], cell_channels=8, partial_k=1)
    fixed = FixedCells([8, 16], G, cell_channels=8)
    for op in ("avg_pool_3x3", "max_pool_3x3"):
        searched = search.cells[0].edges["e0_2"].ops[op]
        norms = [m for m in searched.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert len(norms) == 1 and not norms[0].affine
    fixed_pools = [m for name, m in fixed.cells[0].edges.items() if isinstance(m, (torch.nn.AvgPool2d, torch.nn.MaxPool2d))]
    assert len(fixed_pools) == 2  # bare pools, no norm, in the retrained cell
    x = torch.randn(4, 8, 8, 8) * 5 + 3
    y = search.cells[0].edges["e0_2"].ops["max_pool_3x3"](x)
    assert abs(float(y.mean())) < 1e-4 and abs(float(y.std()) - 1) < 0.05


def test_gamma_is_per_channel_and_zero_so_the_cell_adds_nothing_at_first():
    feats = _features(2)
    for cells in (SearchCells([8, 16, 24], cell_channels=8, partial_k=2), FixedCells([8, 16, 24], G, cell_channels=8)):
        assert [tuple(c.gamma.shape) for c in cells.cells] == [(8,), (16,)]
        out = cells(feats)
        assert all(torch.equal(o, f) for o, f in zip(out, feats[:2]))
