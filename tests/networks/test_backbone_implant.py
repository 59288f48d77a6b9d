"""IAC cells in every implantable backbone: γ = 0 changes nothing, cells change only the skips, one search step and
one fixed-cell step train what they should and leave a frozen backbone (weights and norm statistics) alone."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.losses import DiceCELoss

from iac_components.genotype import Genotype
from iac_components.implant import implant_fixed_cells, implant_search_cells
from iac_components.networks import BACKBONES, StackedDeepSupervisionLoss, build_backbone
from iac_components.search.engine import IACSearchTrainer, IACTrainer

IMPLANTABLE = [n for n, spec in BACKBONES.items() if spec.implantable]
SIZE = (64, 64)
CLASSES = 3
CELLS = {"cell_channels": 8}
GENOTYPE = Genotype(
    (
        ((0, "conv_3x3"), (1, "skip_connect")),
        ((0, "sep_conv_3x3"), (2, "max_pool_3x3")),
        ((1, "dil_conv_3x3"), (3, "avg_pool_3x3")),
        ((2, "skip_connect"), (4, "sep_conv_5x5")),
    )
)
_BUILT: dict[str, torch.nn.Module] = {}


def test_every_backbone_but_the_baselines_is_implantable():
    baselines = [n for n in BACKBONES if n not in IMPLANTABLE]
    assert baselines == ["attention_unet", "unetplusplus"]


def plain(name: str) -> torch.nn.Module:
    """A fresh copy of the backbone ``name`` (built once per session), 1 input channel."""
    if name not in _BUILT:
        torch.manual_seed(0)
        kwargs = {"patch_size": SIZE} if name == "nnunet" else {}
        _BUILT[name] = build_backbone(name, 1, CLASSES, **kwargs)
    return copy.deepcopy(_BUILT[name])


def _batch(seed: int, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, *SIZE, generator=g), torch.randint(0, CLASSES, (n, 1, *SIZE), generator=g).float()


LOSS = StackedDeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))


def _step(net, optimizer, params, x, y) -> float:
    loss = LOSS(net(x), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = g
    optimizer.step()
    return float(loss.detach())


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", IMPLANTABLE)
def test_gamma_zero_is_the_plain_network_and_cells_change_only_the_skips(name):
    base = plain(name).eval()
    x, _ = _batch(0, n=1)
    net = implant_search_cells(copy.deepcopy(base), **CELLS).eval()
    adapter = net.adapter
    assert net.cells.num_levels == adapter.num_skips == len(adapter.feature_channels) - 1
    with torch.no_grad():
        expected = base(x)
        encoded = adapter.encode(x)
        torch.testing.assert_close(net(x), expected, rtol=0, atol=0)

        seen: dict[str, list[torch.Tensor]] = {}
        encode, decode = adapter.encode, adapter.decode
        adapter.encode = lambda x: seen.setdefault("encoded", encode(x))
        adapter.decode = lambda features, x: decode(seen.setdefault("decoded", features), x)
        for cell in net.cells.cells:
            cell.gamma.fill_(1.0)
        out = net(x)
    assert (out - expected).abs().max() > 1e-2 * expected.abs().max()
    # every encoder stage saw the original features; every skip (and only the skips) reached the decoder changed
    n = adapter.num_skips
    for level, (a, b) in enumerate(zip(seen["encoded"], encoded)):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"encoder feature {level}")
    for level in range(n):
        change = (seen["decoded"][level] - encoded[level]).abs().max()
        assert change > 1e-2 * encoded[level].abs().max(), f"skip {level}"
    torch.testing.assert_close(seen["decoded"][n], encoded[n], rtol=0, atol=0)


@pytest.mark.parametrize("name", IMPLANTABLE)
def test_search_step_trains_cells_and_leaves_the_frozen_backbone_alone(name):
    net = implant_search_cells(plain(name), **CELLS)
    before = _snapshot(net.backbone)
    alphas = [a.detach().clone() for a in net.arch_parameters()]
    weights, arch = list(net.weight_parameters()), list(net.arch_parameters())
    w_opt = torch.optim.SGD(weights, lr=0.1)
    a_opt = torch.optim.Adam(arch, lr=1e-2, betas=(0.5, 0.999))
    net.train()
    # weight step first: with γ = 0 the architecture gets no gradient yet
    loss_w = _step(net, w_opt, weights, *_batch(1))
    loss_a = _step(net, a_opt, arch, *_batch(2))
    assert all(torch.isfinite(torch.tensor(v)) for v in (loss_w, loss_a))
    assert all(float(c.gamma.detach().abs().max()) > 0 for c in net.cells.cells)
    assert any(not torch.equal(a, b) for a, b in zip(alphas, net.arch_parameters()))
    after = net.backbone.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert changed == []  # weights and BatchNorm running statistics


@pytest.mark.parametrize("name", IMPLANTABLE)
def test_fixed_cell_step_trains_cells_and_backbone(name):
    net = implant_fixed_cells(plain(name), GENOTYPE, **CELLS)
    before = {k: v.detach().clone() for k, v in net.backbone.named_parameters()}
    weights = list(net.weight_parameters())
    assert len(weights) == len(list(net.parameters()))  # the retrain fine-tunes the backbone too
    net.train()
    loss = _step(net, torch.optim.SGD(weights, lr=0.1), weights, *_batch(3))
    assert torch.isfinite(torch.tensor(loss))
    assert all(float(c.gamma.detach().abs().max()) > 0 for c in net.cells.cells)
    assert any(not torch.equal(v, p) for (_, v), p in zip(before.items(), net.backbone.parameters()))


def test_engines_search_and_retrain_the_nnunet_with_deep_supervision():
    data = [{"image": x, "label": y} for x, y in (_batch(4), _batch(5))]
    search = implant_search_cells(plain("nnunet"), **CELLS)
    engine = IACSearchTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=data,
        val_data_loader=data[::-1],
        network=search,
        optimizer=torch.optim.SGD(search.weight_parameters(), lr=0.1),
        arch_optimizer=torch.optim.Adam(search.arch_parameters(), lr=1e-2),
        loss_function=LOSS,
        decollate=False,
    )
    engine.run()
    assert engine.state.iteration == 2 and engine.arch_steps == 2
    assert engine.state.output["pred"].shape == (2, CLASSES, *SIZE)  # frozen (eval) backbone: main output only

    retrain = implant_fixed_cells(plain("nnunet"), GENOTYPE, **CELLS)
    trainer = IACTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=data[:1],
        network=retrain,
        optimizer=torch.optim.SGD(retrain.weight_parameters(), lr=0.1),
        loss_function=LOSS,
        decollate=False,
    )
    trainer.run()
    # the fine-tuned DynUNet trains with its deep-supervision stack (main + 2 heads at 64x64)
    assert trainer.state.output["pred"].shape == (2, 3, CLASSES, *SIZE)
    assert torch.isfinite(trainer.state.output["loss"])


def test_an_encoder_without_multiscale_features_fails_with_the_valid_names():
    net = implant_search_cells(plain("mobilenetv3_large"), **CELLS)
    net.backbone.network.encoder.forward = lambda x: x  # a single tensor, not a feature list
    with pytest.raises(TypeError) as err:
        net(torch.zeros(1, 1, *SIZE))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("encoder 'tv_mobilenet_v3_large' does not return a list of multi-scale features")
    assert "tv_resnet50" in msg and "resnet50" in msg and "efficientnet-b0" in msg
