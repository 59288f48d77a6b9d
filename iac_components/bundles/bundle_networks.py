"""The networks of a bundle's workflows: the search supernet over the trained baseline, the network with fixed cells
(retrain, evaluate, fine-tune), the slice-wise inference network, and the retrain's parameter groups."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch.nn as nn

from iac_components.bundles.errors import fail
from iac_components.bundles.model_record import model_record
from iac_components.utils import as_bool

__all__ = ["build_backbone_from", "cells_from_record", "fixed_network", "inference_network", "retrain_param_groups", "search_network"]


def build_backbone_from(backbone: nn.Module | Mapping[str, Any]) -> nn.Module:
    if isinstance(backbone, nn.Module):
        return backbone
    from iac_components.networks import build_backbone

    return build_backbone(**backbone)


def search_network(
    backbone: nn.Module | Mapping[str, Any],
    baseline_checkpoint: str,
    run_first: str = "",
    **cell_kwargs: Any,
) -> nn.Module:
    """The search supernet on the trained, frozen baseline (see
    :func:`~iac_components.implant.implant_search_cells`); a missing baseline is a one-line error."""
    from iac_components.implant import implant_search_cells

    if not os.path.isfile(baseline_checkpoint):
        raise fail(f"no baseline checkpoint at {baseline_checkpoint}; train the baseline first: {run_first}")
    try:
        return implant_search_cells(build_backbone_from(backbone), baseline_checkpoint=baseline_checkpoint, **cell_kwargs)
    except ValueError as e:
        raise fail(str(e).splitlines()[0]) from e


def cells_from_record(genotype: str | None, checkpoint: str | None, cell_kwargs: dict[str, Any]) -> Any:
    """The genotype and width to build: the checkpoint's record first (the cells the weights were trained with),
    else genotype.json (and the width the search recorded there). A given width or genotype that does not match
    the record is a one-line error."""
    from iac_components.genotype import Genotype, load_genotypes

    cells = model_record(checkpoint).get("cells")
    if not cells:
        return genotype
    width = cells.get("cell_channels")
    given = cell_kwargs.get("cell_channels")
    if given is not None and width is not None and int(given) != int(width):
        raise fail(f"--cell_channels {given} does not fit {checkpoint}: its cells were trained at width {width} "
                    "(leave --cell_channels out: the width is read from the checkpoint)")
    cell_kwargs["cell_channels"] = int(width) if width is not None else given
    recorded = [Genotype.from_dict(g) for g in cells.get("genotypes", [])]
    if genotype not in (None, "", "none", "None") and os.path.isfile(str(genotype)) and recorded:
        on_disk = load_genotypes(str(genotype))
        if on_disk[: len(recorded)] != recorded and on_disk != recorded * len(on_disk):
            raise fail(f"{genotype} ({on_disk[0]}) is not the cell {checkpoint} was trained with ({recorded[0]}); "
                        "pass --genotype_file with the right genotype, or leave it out to use the checkpoint's")
    return recorded if recorded else genotype


def fixed_network(
    backbone: nn.Module | Mapping[str, Any],
    genotype: str | None,
    baseline_checkpoint: str | None = None,
    run_first: str = "",
    init_checkpoint: str | None = None,
    checkpoint: str | None = None,
    **cell_kwargs: Any,
) -> nn.Module:
    """The retrain network: the baseline with the fixed cells of ``genotype.json`` (see
    :func:`~iac_components.implant.implant_fixed_cells`). ``genotype=None`` gives the baseline itself (the
    no-cell control of the benchmark). ``checkpoint``: the model.pt these weights will be loaded from; its
    :class:`ModelRecord` says which cells (genotype and width) it was trained with, and those are built. Without
    a record, ``cell_channels`` left out or None is the width recorded in ``genotype.json`` by the search.
    ``init_checkpoint``: the whole network's weights (backbone and cells) from a retrained model (model.pt or
    model.ts), as fine-tuning starts (``finetune.json``). Missing files are one-line errors."""
    from iac_components.implant import implant_fixed_cells, load_network_weights

    if init_checkpoint is not None:
        network = fixed_network(backbone, genotype, None, run_first, checkpoint=init_checkpoint, **cell_kwargs)
        try:
            return load_network_weights(network, init_checkpoint)
        except (FileNotFoundError, ValueError) as e:
            raise fail(str(e)) from e

    network = build_backbone_from(backbone)
    if genotype not in (None, "", "none", "None"):
        genotype = cells_from_record(genotype, checkpoint, cell_kwargs)
    if isinstance(genotype, list):
        cell_kwargs = {k: v for k, v in cell_kwargs.items() if v is not None}
        if "freeze_backbone" in cell_kwargs:
            cell_kwargs["freeze_backbone"] = as_bool(cell_kwargs["freeze_backbone"])
        try:
            return implant_fixed_cells(network, genotype, baseline_checkpoint=baseline_checkpoint, **cell_kwargs)
        except ValueError as e:
            raise fail(str(e).splitlines()[0]) from e
    if cell_kwargs.get("cell_channels") is None and genotype not in (None, "", "none", "None"):
        # one source of truth: the width the search ran at, as genotype.json records it (32 if it says nothing)
        from iac_components.genotype import genotype_cell_config

        cell_kwargs["cell_channels"] = int(genotype_cell_config(str(genotype)).get("cell_channels", 32))
    cell_kwargs = {k: v for k, v in cell_kwargs.items() if v is not None}
    if "freeze_backbone" in cell_kwargs:
        cell_kwargs["freeze_backbone"] = as_bool(cell_kwargs["freeze_backbone"])
    if baseline_checkpoint is not None and not os.path.isfile(baseline_checkpoint):
        raise fail(f"no baseline checkpoint at {baseline_checkpoint}; train the baseline first")
    if genotype in (None, "", "none", "None"):
        if baseline_checkpoint is not None:
            load_network_weights(network, baseline_checkpoint)
        return network
    if not os.path.isfile(str(genotype)):
        first = f": {run_first}" if run_first else " (configs/search.json)"
        raise fail(f"no genotype at {genotype}; run the search first{first}, or pass --ckpt_dir where the search "
                    "wrote genotype.json")
    try:
        return implant_fixed_cells(network, str(genotype), baseline_checkpoint=baseline_checkpoint, **cell_kwargs)
    except ValueError as e:
        raise fail(str(e).splitlines()[0]) from e


def inference_network(
    backbone: str,
    in_channels: int,
    out_channels: int,
    genotype: str | None,
    backbone_kwargs: Mapping[str, Any] | None = None,
    cell_kwargs: Mapping[str, Any] | None = None,
    checkpoint: str | None = None,
    slice_wise: bool = True,
) -> nn.Module:
    """The 3-D inference model: the retrained network (fixed cells) run slice-wise
    (:class:`~iac_components.networks.SliceWise`), or a 3-D bundle's 3-D network as it is (``slice_wise=False``).
    Built from plain values only, so ``inference.json`` can switch it off (``_disabled_``) when it runs on
    ``model.ts`` without this package."""
    from iac_components.networks import SliceWise

    spec = {"name": backbone, "in_channels": in_channels, "out_channels": out_channels, **(backbone_kwargs or {})}
    network = fixed_network(spec, genotype, checkpoint=checkpoint, **(cell_kwargs or {}))
    return SliceWise(network) if as_bool(slice_wise) else network


def retrain_param_groups(
    network: nn.Module, learning_rate: float, gamma_learning_rate: float, backbone_lr_multiplier: float = 1.0
) -> list[dict[str, Any]]:
    """The retrain's parameter groups: the cells at ``learning_rate``, their γ at ``gamma_learning_rate`` with no
    weight decay, the backbone at ``backbone_lr_multiplier × learning_rate`` (left out when frozen or when the
    multiplier is 0). A network without cells (the no-cell control) is all backbone.

    Why γ apart: γ starts at 0 and Adam moves a parameter by about its learning rate per step, so in a group at
    the backbone's rate |γ| stays below Σ lr and a trainable backbone absorbs what the cells could add.
    """
    from iac_components.distributed import unwrap
    from iac_components.implant import ImplantedNetwork

    network = unwrap(network)  # multi_gpu_train.json (over retrain.json) wraps it in DistributedDataParallel
    lr, mult = float(learning_rate), float(backbone_lr_multiplier)
    if isinstance(network, ImplantedNetwork):
        cells = network.cells
        gamma = [c.gamma for c in cells.cells]
        gamma_ids = {id(p) for p in gamma}
        groups = [
            {"params": [p for p in cells.parameters() if id(p) not in gamma_ids and p.requires_grad], "lr": lr,
             "name": "cells"},
            {"params": gamma, "lr": float(gamma_learning_rate), "weight_decay": 0.0, "name": "gamma"},
        ]
        backbone = [p for p in network.backbone.parameters() if p.requires_grad]
    else:
        groups, backbone = [], [p for p in network.parameters() if p.requires_grad]
    if backbone and mult > 0:
        groups.append({"params": backbone, "lr": lr * mult, "name": "backbone"})
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise fail("nothing to train: the backbone is frozen (or its multiplier is 0) and the network has no cells")
    return groups
