"""Implant IAC cells into the skip connections of a U-Net.

One interface, :func:`implant`, and one small adapter per backbone family. An adapter runs the network as
``encoder -> feature list f_0..f_n -> decoder`` so that cell ``i`` can replace skip ``f_i`` (reading ``f_i`` and
``f_{i+1}``) while the encoder itself is untouched: deeper encoder stages still see the original features. (A
forward hook on an encoder stage would be wrong: it would also change what the deeper stages see.)

* MONAI ``FlexibleUNet`` already has this shape (``encoder`` returns the feature list; ``decoder`` takes it).
* MONAI ``BasicUNet`` hard-wires its skips in ``forward``; its adapter re-implements ``forward`` from the same
  submodules.

More backbone families plug in with :func:`register_adapter`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.networks.nets import BasicUNet, FlexibleUNet
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE

from iac_components.cell import FixedCells, IACCells, SearchCells
from iac_components.genotype import Genotype, load_genotypes

__all__ = [
    "BackboneAdapter",
    "BasicUNetAdapter",
    "FlexibleUNetAdapter",
    "ImplantedNetwork",
    "freeze",
    "get_adapter",
    "implant",
    "implant_fixed_cells",
    "implant_search_cells",
    "load_network_weights",
    "register_adapter",
]

_ADAPTERS: list[type[BackboneAdapter]] = []


def register_adapter(cls: type[BackboneAdapter]) -> type[BackboneAdapter]:
    """Class decorator: make :func:`get_adapter` use ``cls`` for networks of ``cls.network_types``.
    Later registrations win, so a more specific adapter can be registered after a general one."""
    _ADAPTERS.insert(0, cls)
    return cls


def get_adapter(network: nn.Module) -> BackboneAdapter:
    """The adapter for ``network``.

    Raises:
        TypeError: one line listing the supported network classes.
    """
    import iac_components.networks  # noqa: F401 - registers the adapters of the other backbone families

    for cls in _ADAPTERS:
        if isinstance(network, cls.network_types):
            return cls(network)
    names = sorted({t.__name__ for cls in _ADAPTERS for t in cls.network_types})
    raise TypeError(f"cannot implant cells into {type(network).__name__}; supported networks: {', '.join(names)}")


def _last_conv_out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        raise ValueError(f"{type(module).__name__} has no convolution to read its channels from")
    return convs[-1].out_channels


class BackboneAdapter:
    """How to run a U-Net family as encoder -> features -> decoder. Holds no weights of its own.

    Subclasses set :attr:`network_types` and implement :meth:`encode`, :meth:`decode` and
    :attr:`feature_channels`.
    """

    network_types: tuple[type[nn.Module], ...] = ()

    def __init__(self, network: nn.Module):
        self.network = network

    @property
    def feature_channels(self) -> list[int]:
        """Channels of the encoder features ``f_0..f_n``; the first ``num_skips`` are skips."""
        raise NotImplementedError

    @property
    def num_skips(self) -> int:
        return len(self.feature_channels) - 1

    @property
    def spatial_dims(self) -> int:
        return int(getattr(self.network, "spatial_dims", getattr(self.network, "dimensions", 2)))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> Any:
        raise NotImplementedError


@register_adapter
class FlexibleUNetAdapter(BackboneAdapter):
    """MONAI ``FlexibleUNet`` (any encoder of its registry, MONAI's own or one registered by this project)."""

    network_types = (FlexibleUNet,)

    @property
    def feature_channels(self) -> list[int]:
        entry = FLEXUNET_BACKBONE.register_dict[self.network.backbone]
        return list(entry["feature_channel"])[: self.network.skip_connect + 1]

    @property
    def spatial_dims(self) -> int:
        return int(self.network.spatial_dims)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.network.encoder(x)
        if not isinstance(features, (list, tuple)) or len(features) < 2:
            raise TypeError(
                f"encoder {self.network.backbone!r} does not return a list of multi-scale features; "
                f"valid encoders: {', '.join(FLEXUNET_BACKBONE.register_dict)}"
            )
        return list(features)

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self.network.segmentation_head(self.network.decoder(features, self.network.skip_connect))


@register_adapter
class BasicUNetAdapter(BackboneAdapter):
    """MONAI ``BasicUNet`` (the base U-Net): five encoder levels ``x0..x4``, four skips."""

    network_types = (BasicUNet,)
    _encoder = ("conv_0", "down_1", "down_2", "down_3", "down_4")

    @property
    def feature_channels(self) -> list[int]:
        return [_last_conv_out_channels(getattr(self.network, n)) for n in self._encoder]

    @property
    def spatial_dims(self) -> int:
        return self.network.final_conv.weight.ndim - 2

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.network
        x0 = net.conv_0(x)
        x1 = net.down_1(x0)
        x2 = net.down_2(x1)
        x3 = net.down_3(x2)
        x4 = net.down_4(x3)
        return [x0, x1, x2, x3, x4]

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        net = self.network
        x0, x1, x2, x3, x4 = features
        u4 = net.upcat_4(x4, x3)
        u3 = net.upcat_3(u4, x2)
        u2 = net.upcat_2(u3, x1)
        u1 = net.upcat_1(u2, x0)
        return net.final_conv(u1)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients to ``module``'s weights and put it in eval mode (norm statistics stay as trained)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class ImplantedNetwork(nn.Module):
    """A U-Net with IAC cells on its skips: ``decoder(cells(encoder(x)))``.

    ``state_dict`` keys are ``backbone.*`` (the original network's keys under a prefix) and ``cells.*``.

    Args:
        network: the U-Net (its class must have an adapter).
        cells: one cell per skip (:class:`~iac_components.cell.SearchCells` or
            :class:`~iac_components.cell.FixedCells`).
        freeze_backbone: freeze the network's weights and norm statistics; ``train()`` then keeps the backbone
            in eval mode (MONAI trainers call ``network.train()`` every iteration).
    """

    def __init__(self, network: nn.Module, cells: IACCells, freeze_backbone: bool = True):
        super().__init__()
        adapter = get_adapter(network)
        if cells.num_levels != adapter.num_skips:
            raise ValueError(
                f"{cells.num_levels} cells for {type(network).__name__} with {adapter.num_skips} skip connections"
            )
        self.backbone = network
        self.cells = cells
        self._adapter = adapter  # a plain object: its `network` is `self.backbone`, registered once
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            freeze(network)

    @property
    def adapter(self) -> BackboneAdapter:
        return self._adapter

    def forward(self, x: torch.Tensor) -> Any:
        features = self._adapter.encode(x)
        n = self.cells.num_levels
        skips = self.cells(features[: n + 1])
        return self._adapter.decode(list(skips) + list(features[n:]), x)

    def train(self, mode: bool = True) -> ImplantedNetwork:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    @torch.no_grad()
    def cell_contribution(self, x: torch.Tensor) -> dict[str, list[float]]:
        """What the cells add, per level, on the batch ``x``: ``gamma_mean_abs`` / ``gamma_max_abs`` (γ per
        channel) and ``ratio`` = ``‖γ·cell‖ / ‖skip‖`` (the cell's share of the new skip). Runs in eval mode and
        restores the training mode; no gradients, no norm statistics updated."""
        was_training = self.training
        self.eval()
        try:
            features = self._adapter.encode(x)
            n = self.cells.num_levels
            skips = self.cells(features[: n + 1])
            ratio = [float((s.float() - f.float()).norm() / f.float().norm().clamp_min(1e-12))
                     for s, f in zip(skips, features[:n])]
        finally:
            self.train(was_training)
        gammas = [c.gamma.detach().float().abs() for c in self.cells.cells]
        return {"gamma_mean_abs": [float(g.mean()) for g in gammas], "gamma_max_abs": [float(g.max()) for g in gammas],
                "ratio": ratio}

    def arch_parameters(self) -> Iterator[nn.Parameter]:
        """α and β (empty for fixed cells)."""
        if isinstance(self.cells, SearchCells):
            yield from self.cells.arch_parameters()

    def weight_parameters(self, trainable_only: bool = True) -> Iterator[nn.Parameter]:
        """Every parameter that is not α/β; by default only those that train (not a frozen backbone)."""
        arch = {id(p) for p in self.arch_parameters()}
        for p in self.parameters():
            if id(p) not in arch and (p.requires_grad or not trainable_only):
                yield p


def implant(network: nn.Module, cells: IACCells, freeze_backbone: bool = True) -> ImplantedNetwork:
    """Put ``cells`` on the skips of ``network``; see :class:`ImplantedNetwork`."""
    return ImplantedNetwork(network, cells, freeze_backbone=freeze_backbone)


def load_network_weights(network: nn.Module, path: str | os.PathLike, key: str = "model", what: str = "") -> nn.Module:
    """Load a MONAI ``CheckpointSaver`` file (``{key: state_dict}``) or a bare state dict into ``network``.

    Loads with ``weights_only=True``.

    Raises:
        FileNotFoundError: one line naming the file and ``what`` to run first.
        ValueError: the file does not fit the network.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}" + (f" ({what})" if what else ""))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    if isinstance(state, dict) and key in state and isinstance(state[key], dict):
        state = state[key]
    try:
        network.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1:2] or [str(e)]
        raise ValueError(f"checkpoint {path} does not fit {type(network).__name__}: {first[0].strip()[:300]}") from e
    return network


def implant_search_cells(
    network: nn.Module,
    baseline_checkpoint: str | None = None,
    freeze_backbone: bool = True,
    **cell_kwargs: Any,
) -> ImplantedNetwork:
    """Build the search supernet: load the trained baseline (if given), then implant :class:`SearchCells`.

    Args:
        network: the U-Net.
        baseline_checkpoint: the trained baseline's checkpoint (``train.json`` writes it).
        freeze_backbone: see :class:`ImplantedNetwork`.
        cell_kwargs: :class:`~iac_components.cell.SearchCells` arguments (``ops``, ``cell_channels``, ...).
    """
    if baseline_checkpoint is not None:
        load_network_weights(network, baseline_checkpoint, what="train the baseline first: run train.json")
    adapter = get_adapter(network)
    cell_kwargs.setdefault("spatial_dims", adapter.spatial_dims)
    return implant(network, SearchCells(adapter.feature_channels, **cell_kwargs), freeze_backbone=freeze_backbone)


def implant_fixed_cells(
    network: nn.Module,
    genotype: str | os.PathLike | Genotype | Sequence[Genotype],
    baseline_checkpoint: str | None = None,
    freeze_backbone: bool = False,
    **cell_kwargs: Any,
) -> ImplantedNetwork:
    """Build the retrain network: load the baseline (if given), then implant :class:`FixedCells`.

    Args:
        network: the U-Net.
        genotype: a ``genotype.json`` path, a genotype, or one genotype per level.
        baseline_checkpoint: initialise the backbone from the trained baseline.
        freeze_backbone: by default the retrain fine-tunes the backbone with the cells.
        cell_kwargs: :class:`~iac_components.cell.FixedCells` arguments (``cell_channels``, ``norm``).
    """
    adapter = get_adapter(network)
    if isinstance(genotype, (str, os.PathLike)):
        genotype = load_genotypes(genotype, num_levels=adapter.num_skips)
    if baseline_checkpoint is not None:
        load_network_weights(network, baseline_checkpoint, what="train the baseline first: run train.json")
    cell_kwargs.setdefault("spatial_dims", adapter.spatial_dims)
    return implant(network, FixedCells(adapter.feature_channels, genotype, **cell_kwargs), freeze_backbone=freeze_backbone)

