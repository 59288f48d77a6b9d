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
from torch.utils.data import DataLoader, DistributedSampler

from iac_components.implant import implant_search_cells
from iac_components.search import IACSearchTrainer, IACTrainer, JSDPruningHandler

FAST_RULE = {"epsilon": 0.5, "window": 4, "patience": 1, "margin": 0.05, "keep_schedule": (2, 1)}
# four ops keep the supernet (and the test) small; the rule does not depend on the op count
OPS = ["skip_connect", "max_pool_3x3", "conv_3x3", "sep_conv_3x3"]


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, generator=g)
    y = (torch.nn.functional.avg_pool2d(x, 3, 1, 1) > 0.2).long()
    return [{"image": x[i], "label": y[i]} for i in range(n)]


def make_search(max_epochs=30, seed=0, rule=None, handlers=(), warmup_steps=4, amp=False, out=None, k=2, val=None,
                distributed=False):  # fmt: skip
    """A tiny search; ``distributed``: both loaders shard by ``DistributedSampler`` (under a process group)."""
    torch.manual_seed(seed)
    backbone = BasicUNet(2, 1, 2, features=(8, 8, 8, 8, 8, 8), norm="batch")
    net = implant_search_cells(backbone, cell_channels=8, partial_k=k, ops=OPS)

    def loader(data):
        if distributed:
            return DataLoader(data, batch_size=4, sampler=DistributedSampler(data, shuffle=True))
        return DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator())

    train, val = loader(_data(16, 1)), loader(val or _data(16, 2))
    wopt = torch.optim.SGD(list(net.weight_parameters()), lr=0.05, momentum=0.9)
    aopt = torch.optim.Adam(list(net.arch_parameters()), lr=0.05, betas=(0.5, 0.999))
    paths = {} if out is None else {"genotype_path": out / "genotype.json", "history_path": out / "search_history.json"}
    pruning = JSDPruningHandler(**{**FAST_RULE, **(rule or {})}, **paths)
    engine = IACSearchTrainer(
        "cpu", max_epochs, train, val, net, wopt, aopt, DiceCELoss(to_onehot_y=True, softmax=True),
        warmup_steps=warmup_steps, amp=amp, seed=seed, train_handlers=[pruning, *handlers], decollate=False,
    )
    return engine, pruning


@pytest.mark.slow
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
    engine, _ = make_search(max_epochs=1, warmup_steps=4)
    alpha0 = [a.detach().clone() for a in engine.network.arch_parameters()]
    gamma0 = engine.network.cells.cells[0].gamma.detach().clone()
    engine.run()
    assert all(torch.equal(a, b) for a, b in zip(alpha0, engine.network.arch_parameters()))
    assert not torch.equal(gamma0, engine.network.cells.cells[0].gamma)
    assert engine.arch_steps == 0
    engine2, _ = make_search(max_epochs=2, warmup_steps=4)
    engine2.run()
    assert engine2.arch_steps == 4
    assert any(not torch.equal(a, b) for a, b in zip(alpha0, engine2.network.arch_parameters()))


def test_frozen_backbone_weights_and_batchnorm_statistics_do_not_change():
    engine, _ = make_search(max_epochs=2, warmup_steps=4)
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


def _plain_trainer(**kwargs):
    torch.manual_seed(0)
    net = BasicUNet(2, 1, 2, features=(8, 8, 8, 8, 8, 8), norm="batch")
    loader = DataLoader(_data(8, 1), batch_size=4)
    trainer = IACTrainer("cpu", 1, loader, net, torch.optim.SGD(net.parameters(), lr=0.01),
                         DiceCELoss(to_onehot_y=True, softmax=True), decollate=False, **kwargs)  # fmt: skip
    return trainer, net


def test_amp_kwargs_reach_the_autocast():
    """SupervisedTrainer's ``amp_kwargs`` go to ``torch.autocast``; a ``dtype`` there is the autocast dtype."""
    trainer, net = _plain_trainer(amp=True, amp_kwargs={"dtype": "bfloat16", "cache_enabled": False})
    seen = []
    net.final_conv.register_forward_hook(
        lambda m, i, o: seen.append((o.dtype, torch.is_autocast_enabled("cpu"), torch.is_autocast_cache_enabled()))
    )
    trainer.run()
    assert trainer.autocast_dtype == torch.bfloat16 and trainer.amp_kwargs == {"cache_enabled": False}
    assert seen == [(torch.bfloat16, True, False)] * 2
    off, net_off = _plain_trainer(amp=True, amp_kwargs={"enabled": False})
    seen.clear()
    net_off.final_conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    off.run()
    assert seen == [torch.float32] * 2


def test_amp_kwargs_that_contradict_the_engine_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^amp_kwargs cannot set device_type: IACTrainer autocasts on the device"):
        _plain_trainer(amp=True, amp_kwargs={"device_type": "cuda"})
    with pytest.raises(ValueError, match=r"^amp_dtype=float16 and amp_kwargs dtype=torch.bfloat16 disagree"):
        _plain_trainer(amp=True, amp_dtype="float16", amp_kwargs={"dtype": torch.bfloat16})


@pytest.mark.slow  # torch.compile's first call costs seconds
def test_compile_is_honoured_with_metatensor_batches():
    """``compile=True`` compiles the network as SupervisedTrainer does; MetaTensor batches reach it as plain
    tensors and the prediction in ``engine.state.output`` carries the input's meta."""
    from monai.data import MetaTensor

    torch.manual_seed(0)
    net = BasicUNet(2, 1, 2, features=(8, 8, 8, 8, 8, 8), norm="batch")
    data = [{"image": MetaTensor(d["image"], meta={"case": "c1"}), "label": MetaTensor(d["label"])} for d in _data(8, 1)]
    loader = DataLoader(data, batch_size=4)
    trainer = IACTrainer("cpu", 1, loader, net, torch.optim.SGD(net.parameters(), lr=0.01),
                         DiceCELoss(to_onehot_y=True, softmax=True), decollate=False, compile="true",
                         compile_kwargs={"backend": "eager"})  # fmt: skip
    assert isinstance(trainer.network, torch._dynamo.eval_frame.OptimizedModule)
    assert trainer.network._orig_mod is net
    before = net.final_conv.weight.detach().clone()
    trainer.run()
    assert not torch.equal(before, net.final_conv.weight)  # the compiled network's weights are the net's
    image, pred = trainer.state.output["image"], trainer.state.output["pred"]
    assert isinstance(image, MetaTensor) and isinstance(pred, MetaTensor)
    assert pred.meta["case"] == image.meta["case"] and "c1" in image.meta["case"]  # collated: one per item


def test_the_search_refuses_compile_with_one_line():
    with pytest.raises(ValueError, match=r"^IACSearchTrainer does not support compile=True: pruning deletes ops"):
        IACSearchTrainer("cpu", 1, [], [], implant_search_cells(BasicUNet(2, 1, 2, features=(8, 8, 8, 8, 8, 8)),
                         cell_channels=8, ops=OPS), torch.optim.SGD([torch.zeros(1, requires_grad=True)]), None,
                         None, compile=True)  # fmt: skip


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


@pytest.mark.slow
def test_resume_after_a_pruning_epoch_gives_the_same_search(tmp_path):
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    engine, pruning = make_search(max_epochs=40, out=full_dir)
    engine.run()
    full = json.loads((full_dir / "search_history.json").read_text())
    prune_epochs = sorted({e["epoch"] for e in full["events"]})
    stop = next(e for e in prune_epochs if e < full["epochs"][-1]["epoch"])  # a pruning epoch before the decision

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


def test_warmup_is_counted_in_weight_steps_across_epochs():
    engine, _ = make_search(max_epochs=3, warmup_steps=6)  # 4 iterations per epoch: arch steps start mid-epoch 2
    steps = []
    from iac_components.search import SearchEvents

    engine.add_event_handler(SearchEvents.ARCH_STEP_COMPLETED, lambda e: steps.append((e.state.iteration, e.arch_steps)))
    engine.run()
    assert steps[0] == (7, 1) and steps[-1] == (12, 6)


def test_a_nan_in_the_arch_step_stops_the_search_with_one_line_and_no_genotype(tmp_path):
    from iac_components.search import NonFiniteError

    bad = _data(16, 2)
    bad[5]["image"] = torch.full_like(bad[5]["image"], float("nan"))
    engine, pruning = make_search(max_epochs=5, out=tmp_path, val=bad)
    CheckpointSaver(str(tmp_path / "ckpt"), _checkpoint_handlers(engine, pruning, None), save_interval=1).attach(engine)
    with pytest.raises(NonFiniteError) as err:
        engine.run()
    message = str(err.value)
    assert "\n" not in message and "non-finite arch-step loss" in message
    assert "epoch 2" in message and "arch step" in message and "no genotype written" in message
    assert not (tmp_path / "genotype.json").exists()
    hist = json.loads((tmp_path / "search_history.json").read_text())
    assert [e["epoch"] for e in hist["epochs"]] == [1]  # the last good epoch's history stays
    assert [p.name for p in (tmp_path / "ckpt").glob("*.pt")] == ["checkpoint_epoch=1.pt"]  # and its checkpoint


def test_a_nan_architecture_parameter_is_named():
    from iac_components.search import NonFiniteError

    engine, _ = make_search(max_epochs=3)

    def poison(e):  # the loss stays finite; the arch step itself makes α infinite
        if e.state.iteration == 6:
            e.arch_optimizer.param_groups[0]["lr"] = float("inf")

    from ignite.engine import Events

    engine.add_event_handler(Events.ITERATION_STARTED, poison)
    message = r"non-finite architecture parameter cells\.archs\.0\.alphas\.e0_2 \(α\) at epoch 2, iteration 6"
    with pytest.raises(NonFiniteError, match=message):
        engine.run()


def test_an_arch_step_skipped_by_the_grad_scaler_is_not_counted():
    engine, _ = make_search(max_epochs=2)

    class SkippingScaler:  # the GradScaler protocol, skipping every other step as fp16 overflow would
        def __init__(self):
            self.scale_value, self.calls = 1024.0, 0

        def scale(self, loss):
            return loss

        def get_scale(self):
            return self.scale_value

        def step(self, optimizer):
            self.calls += 1
            if self.calls % 4 != 1:  # arch, weight, arch, weight ...: skip every second arch step
                optimizer.step()

        def update(self):
            if self.calls % 4 == 1:
                self.scale_value /= 2

    fired = []
    from iac_components.search import SearchEvents

    engine.add_event_handler(SearchEvents.ARCH_STEP_COMPLETED, lambda e: fired.append(e.arch_steps))
    engine.scaler = SkippingScaler()
    from monai.engines.workflow import Workflow

    Workflow.run(engine)  # what IACTrainer.run does, keeping this scaler
    assert engine.state.skipped_arch_steps == 2 and engine.arch_steps == 2 and fired == [1, 2]
    assert "skipped_arch_steps" in engine.state_dict()


@pytest.mark.slow
def test_a_bf16_search_on_the_cpu_stays_finite_with_dilated_convs():
    """Issue 9, item 9: CPU bf16 weight gradients of dilated depthwise convs in channels-last are non-finite in a
    sizeable share of cases (benchmarks/results/bf16_depthwise_grad.md); the cells run contiguous under autocast."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 1, 64, 64, generator=g)
    data = [{"image": x[i], "label": (x[i] > 0.3).long()} for i in range(16)]
    backbone = BasicUNet(2, 1, 2, features=(16, 16, 16, 16, 16, 16), norm="batch")
    net = implant_search_cells(backbone, cell_channels=16, partial_k=4, ops=["skip_connect", "dil_conv_3x3", "dil_conv_5x5"])
    loaders = [DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator()) for _ in range(2)]
    engine = IACSearchTrainer(
        "cpu", 4, loaders[0], loaders[1], net, torch.optim.SGD(list(net.weight_parameters()), lr=0.05, momentum=0.9),
        torch.optim.Adam(list(net.arch_parameters()), lr=0.05, betas=(0.5, 0.999)), DiceCELoss(to_onehot_y=True, softmax=True),
        warmup_steps=2, amp=True, seed=0, decollate=False,
    )  # fmt: skip
    engine.run()  # a NonFiniteError would stop it
    assert engine.arch_steps == 6 and all(torch.isfinite(p).all() for p in net.parameters())


def test_a_checkpoint_of_another_run_is_refused_in_one_line():
    """Parallel folds writing into one output folder: --resume would take another run's newest checkpoint."""
    engine, pruning = make_search(max_epochs=1)
    pruning.identity = {"seed": 0, "folds": "aaaa", "ops": OPS, "cell_channels": 8, "partial_k": 4}
    state = pruning.state_dict()
    other, other_pruning = make_search(max_epochs=1)
    other_pruning.identity = {**pruning.identity, "folds": "bbbb"}
    with pytest.raises(SystemExit, match=r"error: --resume: the newest checkpoint .* belongs to another search "
                                         r"\(folds 'aaaa' there, 'bbbb' here\)"):
        other_pruning.load_state_dict(state)
    same, same_pruning = make_search(max_epochs=1)
    same_pruning.identity = dict(pruning.identity)
    same_pruning.load_state_dict(state)  # the same run resumes
