from __future__ import annotations

import pytest
import torch
from monai.networks.nets import BasicUNet, FlexibleUNet

from iac_components.genotype import Genotype
from iac_components.implant import get_network_adapter, implant_fixed_cells, implant_search_cells, load_network_weights

G = Genotype(tuple(((0, "conv_3x3"), (1, "sep_conv_3x3")) for _ in range(4)))


def _basic_unet(norm="batch"):
    torch.manual_seed(0)
    return BasicUNet(2, 1, 3, features=(8, 8, 16, 16, 32, 8), norm=norm)


def _flexible_unet():
    torch.manual_seed(0)
    return FlexibleUNet(1, 3, "resnet10", spatial_dims=2, decoder_channels=(32, 16, 16, 8, 8))


NETWORKS = {"basic_unet": _basic_unet, "flexible_unet": _flexible_unet}


@pytest.mark.parametrize("make", NETWORKS.values(), ids=NETWORKS.keys())
@pytest.mark.parametrize("fixed", [False, True])
def test_gamma_zero_gives_the_trained_networks_output_and_nonzero_changes_it(make, fixed):
    net = make().eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        plain = net(x)
    imp = implant_fixed_cells(make(), G, cell_channels=8) if fixed else implant_search_cells(make(), cell_channels=8, partial_k=2)
    imp.eval()
    with torch.no_grad():
        assert torch.allclose(imp(x), plain, atol=1e-6)
        for c in imp.cells.cells:
            torch.nn.init.constant_(c.gamma, 0.3)
        assert (imp(x) - plain).abs().max() > 1e-5


@pytest.mark.parametrize("make", NETWORKS.values(), ids=NETWORKS.keys())
def test_cells_do_not_change_deeper_encoder_features(make):
    imp = implant_search_cells(make(), cell_channels=8, partial_k=2).eval()
    for c in imp.cells.cells:
        torch.nn.init.constant_(c.gamma, 1.0)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        feats_plain = imp.adapter.encode(x)
        skips = imp.cells(feats_plain[: imp.cells.num_levels + 1])
        imp(x)  # a full forward must not feed the new skips back into the encoder
        feats_after = imp.adapter.encode(x)
    assert all(torch.equal(a, b) for a, b in zip(feats_plain, feats_after))
    assert not torch.equal(skips[0], feats_plain[0])


@pytest.mark.parametrize("make", NETWORKS.values(), ids=NETWORKS.keys())
def test_adapter_reads_feature_channels_from_the_network(make):
    net = make().eval()
    adapter = get_network_adapter(net)
    with torch.no_grad():
        feats = adapter.encode(torch.randn(1, 1, 32, 32))
    assert adapter.feature_channels == [f.shape[1] for f in feats][: adapter.num_skips + 1]
    assert adapter.num_skips == 4


def test_frozen_backbone_stays_in_eval_mode_and_gets_no_gradient():
    imp = implant_search_cells(_basic_unet(), cell_channels=8, partial_k=2)
    imp.train()
    assert imp.training and not imp.backbone.training
    assert all(m.training for m in imp.cells.modules())
    assert all(not p.requires_grad for p in imp.backbone.parameters())
    names = {id(p) for p in imp.weight_parameters()}
    assert names == {id(p) for p in imp.cells.weight_parameters()}


def test_fine_tuned_backbone_trains():
    imp = implant_fixed_cells(_basic_unet(), G, cell_channels=8)
    imp.train()
    assert imp.backbone.training and all(p.requires_grad for p in imp.backbone.parameters())
    assert list(imp.arch_parameters()) == []


def test_unsupported_network_is_a_clear_error():
    with pytest.raises(TypeError, match=r"cannot implant cells into Linear; supported networks: .*BasicUNet"):
        implant_search_cells(torch.nn.Linear(2, 2))


def test_baseline_checkpoint_loads_and_missing_one_says_what_to_run(tmp_path):
    net = _basic_unet()
    torch.save({"model": net.state_dict()}, tmp_path / "baseline.pt")
    other = BasicUNet(2, 1, 3, features=(8, 8, 16, 16, 32, 8), norm="batch")
    imp = implant_search_cells(other, baseline_checkpoint=str(tmp_path / "baseline.pt"), cell_channels=8, partial_k=2)
    assert torch.equal(imp.backbone.conv_0.conv_0.conv.weight, net.conv_0.conv_0.conv.weight)
    with pytest.raises(FileNotFoundError, match="baseline.pt.*run train.json"):
        implant_search_cells(_basic_unet(), baseline_checkpoint=str(tmp_path / "nope" / "baseline.pt"))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*bad.pt"):
        load_network_weights(_basic_unet(), tmp_path / "bad.pt")
    torch.save({"model": FlexibleUNet(1, 3, "resnet10", spatial_dims=2).state_dict()}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt does not fit BasicUNet"):
        load_network_weights(_basic_unet(), tmp_path / "other.pt")


@pytest.mark.slow  # a fresh interpreter imports torch and MONAI
def test_the_networks_do_not_import_the_implant_and_every_adapter_is_in_one_table():
    """No import cycle implant <-> networks and no registration by import side effect: ``iac_components.networks``
    loads without the implant module, and the adapter table lists every family without anything else imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import iac_components.networks.adapters as a\n"
        "assert 'iac_components.implant' not in sys.modules, sorted(sys.modules)\n"
        "print(sorted(t.__name__ for cls in a.ADAPTERS for t in cls.network_types))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['BasicUNet', 'DynUNet', 'FlexibleUNet', 'PadToMultiple']"


def test_cell_contribution_counts_the_cells_forward_macs_per_image():
    """Parameter-free ops leave only the 1x1 projections (the coarse input at its own resolution, before it is
    resized) and the 1x1 output conv: their MACs by hand, per image whatever the batch; a cut lowers the count."""
    g = Genotype(tuple(((0, "skip_connect"), (1, "max_pool_3x3")) for _ in range(4)))
    imp = implant_fixed_cells(_basic_unet(), g, cell_channels=4)
    levels = [(8, 32, 8, 16), (8, 16, 16, 8), (16, 8, 16, 4), (16, 4, 32, 2)]  # (C, H, coarse C, coarse H)
    width = 4  # min(C, cell_channels)
    by_hand = sum(h * h * c * width + ch * ch * cc * width + h * h * 4 * width * c for c, h, cc, ch in levels)
    for batch in (1, 3):
        assert imp.cell_contribution(torch.randn(batch, 1, 32, 32))["forward_macs"] == by_hand == 244224

    search = implant_search_cells(_basic_unet(), cell_channels=8, partial_k=2)
    x = torch.randn(2, 1, 32, 32)
    before = search.cell_contribution(x)["forward_macs"]
    search.cells.prune_edge(0, 0, 2, ["skip_connect"])
    assert search.cell_contribution(x)["forward_macs"] < before
