"""Implant IAC cells into the skip connections of a U-Net.

One interface, :func:`implant`, and one small adapter per backbone family. An adapter runs the network as
``encoder -> feature list f_0..f_n -> decoder`` so that cell ``i`` can replace skip ``f_i`` (reading ``f_i`` and
``f_{i+1}``) while the encoder itself is untouched: deeper encoder stages still see the original features.

The adapters (MONAI ``FlexibleUNet``, ``BasicUNet``, ``DynUNet``, and the
:class:`~iac_components.networks.padding.PadToMultiple` wrapper) and :func:`get_network_adapter` live in
:mod:`iac_components.networks.adapters` and are re-exported here; more backbone families plug in with
:func:`register_adapter`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn

from iac_components.cell import FixedCells, IACCells, SearchCells
from iac_components.genotype import Genotype, genotype_cell_config, load_genotypes
from iac_components.networks.adapters import (
    BackboneAdapter,
    BasicUNetAdapter,
    FlexibleUNetAdapter,
    get_network_adapter,
    register_adapter,
)

__all__ = [
    "BackboneAdapter",
    "BasicUNetAdapter",
    "FlexibleUNetAdapter",
    "ImplantedNetwork",
    "freeze",
    "get_network_adapter",
    "implant",
    "implant_fixed_cells",
    "implant_search_cells",
    "load_network_weights",
    "register_adapter",
]


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
        adapter = get_network_adapter(network)
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
        channel), ``ratio`` = ``‖γ·cell‖ / ‖skip‖`` (the cell's share of the new skip) and ``forward_macs``, the
        multiply-accumulates of the cells' forward pass per image, counted by torch's FLOP counter (convolutions
        and matrix products; pools and additions are not MACs): a machine-independent measure of what the cells
        cost as they are now (fewer after every cut). Runs in eval mode and restores the training mode; no
        gradients, no norm statistics updated."""
        from torch.utils.flop_counter import FlopCounterMode

        was_training = self.training
        self.eval()
        try:
            x = x.as_tensor() if hasattr(x, "as_tensor") else x
            features = self._adapter.encode(x)
            n = self.cells.num_levels
            with FlopCounterMode(display=False) as counter:
                skips = self.cells(features[: n + 1])
            forward_macs = counter.get_total_flops() // 2 // max(1, x.shape[0])
            ratio = [float((s.float() - f.float()).norm() / f.float().norm().clamp_min(1e-12))
                     for s, f in zip(skips, features[:n])]
        finally:
            self.train(was_training)
        gammas = [c.gamma.detach().float().abs() for c in self.cells.cells]
        return {"gamma_mean_abs": [float(g.mean()) for g in gammas], "gamma_max_abs": [float(g.max()) for g in gammas],
                "ratio": ratio, "forward_macs": int(forward_macs)}

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
    """Load a MONAI ``CheckpointSaver`` file (``{key: state_dict}``), a bare state dict, or the weights of an exported
    ``.ts`` TorchScript model (a release ships model.ts alone) into ``network``.

    Checkpoints load with ``weights_only=True``. A TorchScript model exported from the slice-wise inference wrapper
    keeps its ``network.`` prefix (the wrapper's state-dict hooks do not survive tracing); it is removed here.

    Raises:
        FileNotFoundError: one line naming the file and ``what`` to run first.
        ValueError: the file does not fit the network.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}" + (f" ({what})" if what else ""))
    try:
        if path.endswith(".ts"):
            state = dict(torch.jit.load(path, map_location="cpu").state_dict())
            if state and all(k.startswith("network.") for k in state):
                state = {k[len("network.") :]: v for k, v in state.items()}
        else:
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
    adapter = get_network_adapter(network)
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
    adapter = get_network_adapter(network)
    if isinstance(genotype, (str, os.PathLike)):
        searched_dims = genotype_cell_config(genotype).get("spatial_dims")
        if searched_dims is not None and int(searched_dims) != adapter.spatial_dims:
            raise ValueError(f"{genotype} was searched on a {searched_dims}-D network and this network is "
                             f"{adapter.spatial_dims}-D: search its cells on this network (configs/search.json)")
        genotype = load_genotypes(genotype, num_levels=adapter.num_skips)
    if baseline_checkpoint is not None:
        load_network_weights(network, baseline_checkpoint, what="train the baseline first: run train.json")
    cell_kwargs.setdefault("spatial_dims", adapter.spatial_dims)
    return implant(network, FixedCells(adapter.feature_channels, genotype, **cell_kwargs), freeze_backbone=freeze_backbone)

