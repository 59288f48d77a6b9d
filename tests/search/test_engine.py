"""The real search engine on tiny tensors: end to end, frozen backbone, AMP on the CPU, exact resume."""

from __future__ import annotations

import copy
import glob
import json

import pytest
import torch
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNet
from torch.utils.data import DataLoader

from iac_components.implant import implant_search_cells
from iac_components.search import IACSearchTrainer, IACTrainer, JSDPruningHandler

FAST_RULE = {"epsilon": 0.02, "window": 1, "patience": 1, "margin": 0.002, "keep_schedule": (2, 1)}
# four ops keep the supernet (and the test) small; the rule does not depend on the op count
OPS = ["skip_connect", "max_pool_3x3", "conv_3x3", "sep_conv_3x3"]


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, generator=g)
    y = (torch.nn.functional.avg_pool2d(x, 3, 1, 1) > 0.2).long()
    return [{"image": x[i], "label": y[i]} for i in range(n)]


def make_search(max_epochs=30, seed=0, rule=None, handlers=(), warmup_epochs=1, amp=False, out=None, k=2):
    torch.manual_seed(seed)
    backbone = BasicUNet(2, 1, 2, features=(8, 8, 8, 8, 8, 8), norm="batch")
    net = implant_search_cells(backbone, cell_channels=8, partial_k=k, ops=OPS)
    train = DataLoader(_data(16, 1), batch_size=4, shuffle=True, generator=torch.Generator())
    val = DataLoader(_data(16, 2), batch_size=4, shuffle=True, generator=torch.Generator())
    wopt = torch.optim.SGD(list(net.weight_parameters()), lr=0.05, momentum=0.9)
    aopt = torch.optim.Adam(list(net.arch_parameters()), lr=0.05, betas=(0.5, 0.999), weight_decay=1e-3)
    paths = {} if out is None else {"genotype_path": out / "genotype.json", "history_path": out / "search_history.json"}
    pruning = JSDPruningHandler(**{**FAST_RULE, **(rule or {})}, **paths)
    engine = IACSearchTrainer(
        "cpu", max_epochs, train, val, net, wopt, aopt, DiceCELoss(to_onehot_y=True, softmax=True),
        warmup_epochs=warmup_epochs, amp=amp, seed=seed, train_handlers=[pruning, *handlers], decollate=False,
    )
    return engine, pruning


def test_short_search_terminates_early_by_itself(tmp_path):
    engine, pruning = make_search(max_epochs=40, out=tmp_path)
    engine.run()
    assert engine.state.epoch < 40 and engine.network.cells.is_decided()
    hist = json.loads((tmp_path / "search_history.json").read_text())
    assert hist["decided_at"] is not None and hist["epochs"][-1]["ops_alive"] == 8
    assert (tmp_path / "genotype.json").exists()
    alive = [e["ops_alive"] for e in hist["epochs"]]
    assert alive[0] == 14 * 4 and alive[-1] == 8
    params = [e["weight_parameters"] for e in hist["epochs"]]
    assert params[-1] < params[0]


def test_warmup_moves_weights_but_not_alpha():
    engine, _ = make_search(max_epochs=1, warmup_epochs=1)
    alpha0 = [a.detach().clone() for a in engine.network.arch_parameters()]
    gamma0 = engine.network.cells.cells[0].gamma.detach().clone()
    engine.run()
    assert all(torch.equal(a, b) for a, b in zip(alpha0, engine.network.arch_parameters()))
    assert not torch.equal(gamma0, engine.network.cells.cells[0].gamma)
    assert engine.arch_steps == 0
    engine2, _ = make_search(max_epochs=2, warmup_epochs=1)
    engine2.run()
    assert engine2.arch_steps == 4
    assert any(not torch.equal(a, b) for a, b in zip(alpha0, engine2.network.arch_parameters()))


def test_frozen_backbone_weights_and_batchnorm_statistics_do_not_change():
    engine, _ = make_search(max_epochs=2, warmup_epochs=1)
    before = copy.deepcopy(engine.network.backbone.state_dict())
    assert any("running_mean" in k for k in before)
    engine.run()
    after = engine.network.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_amp_on_cpu_autocasts_to_bfloat16_without_a_scaler():
    engine, _ = make_search(max_epochs=2, amp="true")
    seen = []
    engine.network.backbone.final_conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    engine.run()
    assert engine.scaler is None and engine.autocast_dtype == torch.bfloat16
    assert set(seen) == {torch.bfloat16}
    engine_off, _ = make_search(max_epochs=1, amp="false")
    assert engine_off.autocast_dtype is None


def test_plain_trainer_autocasts_on_cpu_too():
    torch.manual_seed(0)
    net = BasicUNet(2, 1, 2, features=(8, 8, 8, 8, 8, 8), norm="batch")
    loader = DataLoader(_data(8, 1), batch_size=4)
    trainer = IACTrainer("cpu", 1, loader, net, torch.optim.SGD(net.parameters(), lr=0.01),
                         DiceCELoss(to_onehot_y=True, softmax=True), amp=True, decollate=False)
    seen = []
    net.final_conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    trainer.run()
    assert seen == [torch.bfloat16, torch.bfloat16]


def _comparable(hist):
    """The history without wall-clock numbers."""
    drop = {"wall_clock_s", "elapsed_s", "total_wall_clock_s"}
    if isinstance(hist, dict):
        return {k: _comparable(v) for k, v in hist.items() if k not in drop}
    if isinstance(hist, list):
        return [_comparable(v) for v in hist]
    return hist


def _checkpoint_handlers(engine, pruning, ckpt_dir):
    # the pruning handler first: its state re-prunes the network before weights and optimisers load
    save_dict = {
        "pruning": pruning, "network": engine.network, "optimizer": engine.optimizer,
        "arch_optimizer": engine.arch_optimizer, "trainer": engine,
    }
    return save_dict


def test_resume_after_a_pruning_epoch_gives_the_same_search(tmp_path):
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    engine, pruning = make_search(max_epochs=40, out=full_dir)
    engine.run()
    full = json.loads((full_dir / "search_history.json").read_text())
    prune_epochs = sorted({e["epoch"] for e in full["events"]})
    stop = next(e for e in prune_epochs if e < full["epochs"][-1]["epoch"] - 1)  # a pruning epoch, not the last

    first, first_pruning = make_search(max_epochs=stop, out=part_dir)
    saver = CheckpointSaver(str(part_dir / "ckpt"), _checkpoint_handlers(first, first_pruning, None), save_interval=1)
    saver.attach(first)
    first.run()
    ckpt = sorted(glob.glob(str(part_dir / "ckpt" / "*.pt")), key=lambda p: int(p.split("=")[-1][:-3]))[-1]
    assert ckpt.endswith(f"={stop}.pt")

    resumed, resumed_pruning = make_search(max_epochs=40, out=part_dir)
    CheckpointLoader(ckpt, _checkpoint_handlers(resumed, resumed_pruning, None), map_location="cpu").attach(resumed)
    resumed.run()
    part = json.loads((part_dir / "search_history.json").read_text())
    assert (part_dir / "genotype.json").read_text().split('"search"')[0] == (full_dir / "genotype.json").read_text().split('"search"')[0]
    assert _comparable(part["epochs"]) == _comparable(full["epochs"])
    assert part["events"] == full["events"]


def test_checkpoint_from_another_search_space_is_a_clear_error(tmp_path):
    engine, pruning = make_search(max_epochs=1)
    state = pruning.state_dict()
    other, other_pruning = make_search(max_epochs=1)
    other.network.cells.archs[0].edge_ops.pop("0->2")  # pretend another space: the edge does not exist
    with pytest.raises(ValueError, match="checkpoint edge 0->2 .* does not exist in this search space"):
        other_pruning.load_state_dict(state)
