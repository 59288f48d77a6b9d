from __future__ import annotations

import json

import pytest
import torch

from iac_components.genotype import Genotype, derive_genotype, edge_key, load_genotypes, save_genotypes

G = Genotype(
    (
        ((0, "sep_conv_3x3"), (1, "skip_connect")),
        ((0, "conv_3x3"), (2, "max_pool_3x3")),
        ((1, "dil_conv_3x3"), (3, "avg_pool_3x3")),
        ((2, "sep_conv_5x5"), (4, "dil_conv_5x5")),
    )
)


def test_json_round_trip(tmp_path):
    save_genotypes(tmp_path / "g.json", [G], share_genotype=True, n_nodes=4)
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["share_genotype"] is True and doc["n_nodes"] == 4
    loaded = load_genotypes(tmp_path / "g.json", num_levels=4)
    assert loaded == [G] * 4
    assert Genotype.from_dict(G.to_dict()) == G


def test_per_level_genotypes_round_trip_and_count_checked(tmp_path):
    other = Genotype(tuple(((0, "conv_3x3"), (1, "conv_3x3")) for _ in range(4)))
    save_genotypes(tmp_path / "g.json", [G, other, G, other], share_genotype=False)
    assert load_genotypes(tmp_path / "g.json", num_levels=4) == [G, other, G, other]
    with pytest.raises(ValueError, match="4 per-level genotypes but the network has 3 skips"):
        load_genotypes(tmp_path / "g.json", num_levels=3)


def test_edges_list_node_states():
    assert G.edges()[:3] == [(0, 2, "sep_conv_3x3"), (1, 2, "skip_connect"), (0, 3, "conv_3x3")]


@pytest.mark.parametrize(
    "nodes,msg",
    [
        ((((0, "conv_9x9"), (1, "skip_connect")),), "node 2 uses unknown op 'conv_9x9'"),
        ((((0, "conv_3x3"), (2, "skip_connect")),), "node 2 cannot take input 2"),
        ((((1, "conv_3x3"), (1, "skip_connect")),), "node 2 takes input 1 twice"),
    ],
)
def test_validation_names_the_problem(nodes, msg):
    with pytest.raises(ValueError, match=msg):
        Genotype(nodes).validate()


def test_genotype_with_wrong_node_count_is_refused(tmp_path):
    save_genotypes(tmp_path / "g.json", [G], share_genotype=True, n_nodes=3)
    with pytest.raises(ValueError, match="genotype has 4 nodes but the cell has 3"):
        load_genotypes(tmp_path / "g.json")


def test_missing_and_foreign_files_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the search workflow first"):
        load_genotypes(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="is not a genotype file"):
        load_genotypes(tmp_path / "x.json")


def test_derivation_ranks_inputs_by_beta_and_skips_none():
    ops = ["none", "conv_3x3", "skip_connect"]
    node_inputs = {2: [0, 1], 3: [0, 1, 2]}
    alphas = {
        edge_key(0, 2): torch.tensor([5.0, 1.0, 0.0]),  # `none` strongest: must not be chosen
        edge_key(1, 2): torch.tensor([0.0, 0.0, 2.0]),
        edge_key(0, 3): torch.tensor([0.0, 3.0, 0.0]),  # very decided op ...
        edge_key(1, 3): torch.tensor([0.0, 0.0, 0.0]),
        edge_key(2, 3): torch.tensor([0.0, 0.0, 1.0]),
    }
    # ... but node 3 weights input 0 so little that inputs 1 and 2 win by β
    betas = {2: torch.tensor([0.0, 0.0]), 3: torch.tensor([-5.0, 1.0, 1.0])}
    g = derive_genotype(alphas, betas, node_inputs, {k: ops for k in alphas})
    assert g.nodes == (((0, "conv_3x3"), (1, "skip_connect")), ((1, "conv_3x3"), (2, "skip_connect")))


def test_node_choice_does_not_favour_an_edge_already_cut_to_one_op():
    """An edge cut to one op has p = 1 against ~1/8 on an uncut edge: a q·max p score kept it whatever β said."""
    ops = ["skip_connect", "avg_pool_3x3", "max_pool_3x3", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
    node_inputs = {2: [0, 1], 3: [0, 1, 2]}
    edge_ops = {edge_key(0, 2): ops, edge_key(1, 2): ops, edge_key(0, 3): ["conv_3x3"], edge_key(1, 3): ops, edge_key(2, 3): ops}
    alphas = {k: torch.zeros(len(v)) for k, v in edge_ops.items()}
    betas = {2: torch.zeros(2), 3: torch.tensor([0.0, 1.5, 1.5])}
    g = derive_genotype(alphas, betas, node_inputs, edge_ops)
    assert [i for i, _ in g.nodes[1]] == [1, 2]
