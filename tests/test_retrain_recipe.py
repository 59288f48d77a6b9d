"""The retrain in which cells can matter, and the search recipe the bundles ship (no decay on α/β)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from bundles.bundle_utils import BUNDLES
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNet
from torch.utils.data import DataLoader

from iac_components.bundles.overlays import load_merged
from iac_components.bundles.runtime import CellContributionHandler, retrain_param_groups
from iac_components.genotype import Genotype
from iac_components.implant import implant_fixed_cells
from iac_components.search import IACTrainer

G = Genotype((((0, "conv_3x3"), (1, "skip_connect")), ((0, "sep_conv_3x3"), (2, "avg_pool_3x3")),
              ((1, "dil_conv_3x3"), (3, "max_pool_3x3")), ((2, "sep_conv_5x5"), (4, "dil_conv_5x5"))))


def _data(n=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 16, 16, generator=g)
    y = (torch.nn.functional.avg_pool2d(x, 3, 1, 1) > 0.2).long()
    return [{"image": x[i], "label": y[i]} for i in range(n)]


def _retrain(freeze, steps_epochs=2, lr=1e-3, gamma_lr=1e-2, mult=1.0, out=None):
    torch.manual_seed(0)
    backbone = BasicUNet(2, 1, 2, features=(8, 8, 8, 8, 8, 8), norm="batch")
    net = implant_fixed_cells(backbone, G, cell_channels=8, freeze_backbone=freeze)
    opt = torch.optim.AdamW(retrain_param_groups(net, lr, gamma_lr, mult), lr=lr, weight_decay=1e-5)
    loader = DataLoader(_data(), batch_size=4, shuffle=True, generator=torch.Generator())
    handlers = [CellContributionHandler(str(out)) if out else CellContributionHandler()]
    trainer = IACTrainer("cpu", steps_epochs, loader, net, opt, DiceCELoss(to_onehot_y=True, softmax=True),
                         seed=0, decollate=False, train_handlers=handlers)
    return trainer, net, opt


def test_gamma_has_its_own_group_without_decay_and_grows_past_the_plain_groups_bound(tmp_path):
    trainer, net, opt = _retrain(freeze=False, out=tmp_path / "cells.json")
    names = {g["name"]: g for g in opt.param_groups}
    assert set(names) == {"cells", "gamma", "backbone"}
    assert names["gamma"]["weight_decay"] == 0.0 and names["gamma"]["lr"] == 1e-2
    assert {id(p) for p in names["gamma"]["params"]} == {id(c.gamma) for c in net.cells.cells}
    trainer.run()
    steps = trainer.state.iteration
    bound = steps * 1e-3  # the most Adam at the backbone's rate could move γ from 0
    assert max(float(c.gamma.detach().abs().max()) for c in net.cells.cells) > 2 * bound
    saved = json.loads((tmp_path / "cells.json").read_text())
    assert len(saved["ratio"]) == 4 and max(saved["ratio"]) > 0 and saved["gamma_max_abs"][0] > 0


def test_with_the_backbone_frozen_the_retrain_leaves_it_unchanged():
    trainer, net, opt = _retrain(freeze=True)
    assert {g["name"] for g in opt.param_groups} == {"cells", "gamma"}
    before = copy.deepcopy(net.backbone.state_dict())
    assert any("running_mean" in k for k in before)
    trainer.run()
    after = net.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(float(c.gamma.detach().abs().max()) > 0 for c in net.cells.cells)


def test_backbone_learning_rate_multiplier_and_the_no_cell_control():
    _, _, opt = _retrain(freeze=False, mult=0.1)
    assert {g["name"]: g["lr"] for g in opt.param_groups}["backbone"] == pytest.approx(1e-4)
    plain = BasicUNet(2, 1, 2, features=(8, 8, 8, 8, 8, 8))
    groups = retrain_param_groups(plain, 1e-3, 1e-2, 1.0)
    assert [g["name"] for g in groups] == ["backbone"] and groups[0]["lr"] == 1e-3
    with pytest.raises(SystemExit, match="nothing to train"):
        retrain_param_groups(plain, 1e-3, 1e-2, 0.0)


def _bundle_configs(name):
    return sorted(BUNDLES.glob(f"*/configs/{name}"))


def test_no_weight_decay_reaches_alpha_or_beta_in_any_shipped_search():
    files = _bundle_configs("search.json")
    assert len(files) >= 29
    for f in files:
        config = load_merged(f)
        arch = config["arch_optimizer"]
        assert arch["params"] == "$list(@network.arch_parameters())" and arch.get("weight_decay", 0) == 0, f
        assert config["optimizer"]["params"] == "$list(@network.weight_parameters())", f
        assert "warmup_steps" in config and config["pruning"]["interval"] is None, f


def test_every_retrain_validates_from_epoch_one_and_puts_gamma_apart():
    for f in _bundle_configs("retrain.json"):
        config = load_merged(f)
        assert config["val_interval"] == 1, f
        assert "retrain_param_groups" in config["optimizer"]["params"], f
        assert {"gamma_learning_rate", "freeze_backbone", "backbone_lr_multiplier"} <= set(config), f


def test_retrain_evaluate_and_inference_read_the_cell_width_from_the_genotype(tmp_path):
    """One source of truth: a search at --cell_channels 16 needs no repeated flag downstream."""
    from iac_components.bundles.runtime import fixed_network, inference_network
    from iac_components.genotype import genotype_cell_config, save_genotypes

    path = tmp_path / "genotype.json"
    save_genotypes(path, [G], True, n_nodes=4, search={"cell_config": {"cell_channels": 16, "partial_k": 4}})
    assert genotype_cell_config(path)["cell_channels"] == 16
    spec = {"name": "unet", "in_channels": 1, "out_channels": 2}
    net = fixed_network(spec, str(path), cell_channels=None)
    assert [c.cell_channels for c in net.cells.cells] == [16, 16, 16, 16]
    assert [c.cell_channels for c in inference_network("unet", 1, 2, str(path)).network.cells.cells] == [16] * 4
    assert [c.cell_channels for c in fixed_network(spec, str(path), cell_channels=8).cells.cells] == [8] * 4  # a flag wins
    bare = tmp_path / "hand_written.json"
    save_genotypes(bare, [G], True, n_nodes=4)  # no search record: the default width
    assert genotype_cell_config(bare) == {} and fixed_network(spec, str(bare)).cells.cells[0].cell_channels == 32
