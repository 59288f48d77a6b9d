"""What the bundles' JSON configs call: data preparation on first use, the networks of each workflow, and the
patient-level evaluation. Each function fails with one line that says what to do (``SystemExit``), since a
bundle run is a command a person typed.

``inference.json`` never imports this module when it runs on ``models/model.ts`` alone.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from iac_components.utils import as_bool

__all__ = [
    "BundleData",
    "CellContributionHandler",
    "as_bool",
    "deployed_geometry",
    "deployed_model",
    "evaluate_models",
    "export_torchscript",
    "fixed_network",
    "inference_network",
    "release_preprocessing",
    "retrain_param_groups",
    "search_network",
]

def _fail(message: str) -> SystemExit:
    return SystemExit(f"error: {message}")


class BundleData:
    """The data of a bundle run: prepares the slice cache on first use (idempotent) and the patient-level splits.

    The data come from the dataset's official layout (``dataset_dir``) or from a datalist of 3-D files
    (``datalist``: ``train#dataset#data``, ``val_datalist``: ``validate#dataset#data``, as MONAI Label and
    model-zoo users pass them; see :mod:`iac_components.data.datalist`). A datalist is prepared into
    ``<cache_dir>/datalist`` with the dataset's conventions and split by
    :func:`~iac_components.data.splits.datalist_splits`; it needs no ``dataset_dir`` (``custom_iac`` reads its
    classes from the ``dataset.json`` there when one is given).

    Geometry (``spacing``, ``spatial_size``) left as None: what the existing cache was prepared at (so every
    workflow after the baseline's runs at the baseline's geometry), else the dataset's default
    (:data:`~iac_components.data.settings.DEFAULT_SETTINGS`, the one place the defaults live).

    Args:
        dataset: dataset adapter name (``acdc``, ``brats``, ``kits23``, ``amos``, ``msd``, ``nnunet``, ...).
        dataset_dir: the raw dataset in its official layout.
        cache_dir: where the preprocessed slice cache and ``splits.json`` go.
        bundle_root: the bundle folder (for the hint of the message when the data is missing).
        split_seed: seed of the patient-level folds.
        split_fractions: fold -> share of the patients (``search_train``, ``search_val``, ``validation``,
            ``test``; normalised, so counts work too); None: 35/35/10/20 %.
        official_split: ACDC's official 100/50 training/testing split.
        datalist: training entries ``[{"image", "label"}, ...]`` (or a JSON file of them); None: ``dataset_dir``.
        val_datalist: validation entries; None: drawn from ``datalist``.
        conventions: a manifest.json whose channels, classes and label values an ``msd`` / ``nnunet`` datalist
            follows when there is no ``dataset_dir`` (a release's ``models/manifest.json``, as fine-tuning uses).
        settings: preprocessing overrides (``spacing``, ``spatial_size``, ...); None values are left to defaults.
    """

    def __init__(
        self,
        dataset: str,
        dataset_dir: str,
        cache_dir: str,
        bundle_root: str | None = None,
        split_seed: int = 0,
        official_split: bool | str = False,
        num_workers: int | None = None,
        datalist: Any = None,
        split_fractions: Mapping[str, float] | None = None,
        val_datalist: Any = None,
        conventions: str | None = None,
        disjoint_search_folds: bool = False,
        **settings: Any,
    ) -> None:
        from iac_components.data import DatasetError, make_splits, prepare_dataset
        from iac_components.data.datalist import DatalistAdapter, read_datalist
        from iac_components.data.splits import datalist_splits

        self.dataset = dataset
        use_datalist = datalist is not None and datalist != []
        if not use_datalist and not os.path.isdir(dataset_dir):
            from iac_components.data.base import adapter_class

            try:
                source = adapter_class(dataset).source or dataset
            except DatasetError:
                source = dataset
            synth = "acdc" if dataset not in ("msd", "nnunet") else dataset
            raise _fail(
                f"no dataset at {dataset_dir} (--dataset_dir). Get {source}; or try synthetic data: "
                f"iac synth {synth} /tmp/{synth}_synth && add --dataset_dir /tmp/{synth}_synth; or pass a datalist "
                "of 3-D files: --train#dataset#data \"[{'image': ..., 'label': ...}, ...]\""
            )
        if use_datalist:
            cache_dir = os.path.join(str(cache_dir), "datalist")
        from iac_components.distributed import barrier, is_distributed, is_main_process

        if is_distributed() and not is_main_process():
            barrier()  # under torchrun rank 0 prepares the cache and the splits; the others then find them ready
        overrides = {k: v for k, v in settings.items() if v is not None}
        overrides.update({k: v for k, v in _cached_geometry(cache_dir).items() if settings.get(k) is None})
        try:
            if use_datalist:
                like: Any = dataset
                if dataset in ("msd", "nnunet"):  # classes and channels from the user's dataset.json
                    from iac_components.data import get_adapter

                    if os.path.isdir(dataset_dir):
                        like = get_adapter(dataset, dataset_dir)
                    elif conventions and os.path.isfile(conventions):  # or from the model's own manifest
                        import json

                        like = json.loads(Path(conventions).read_text())
                    else:
                        raise DatasetError(f"a {dataset} datalist needs its dataset.json: pass --dataset_dir with it")
                entries = [{**e, "subset": "training"} for e in read_datalist(datalist)]
                entries += [{**e, "subset": "validation"} for e in read_datalist(val_datalist or [])]
                adapter = DatalistAdapter(entries, like=like)
                manifest_path = prepare_dataset(
                    dataset, None, cache_dir, num_workers=num_workers, adapter=adapter, **overrides
                )
                self.splits = datalist_splits(manifest_path, seed=int(split_seed), fractions=split_fractions)
            else:
                manifest_path = prepare_dataset(dataset, dataset_dir, cache_dir, num_workers=num_workers, **overrides)
                self.splits = make_splits(
                    manifest_path, seed=int(split_seed), official=as_bool(official_split), fractions=split_fractions
                )
        except (DatasetError, FileNotFoundError, ValueError, TypeError) as e:
            raise _fail(str(e).splitlines()[0]) from e
        if is_distributed() and is_main_process():
            barrier()
        if disjoint_search_folds and not self.splits.get("search_disjoint", True):
            n = len(self.splits["patients"]["train"])
            raise _fail(f"the search needs at least 2 training patients (different ones for its weight and its α/β "
                        f"steps); the datalist has {n}")
        from iac_components.data import load_manifest
        from iac_components.data.summary import data_summary

        self.manifest = load_manifest(manifest_path)
        self.cache_dir = str(cache_dir)
        if is_main_process():
            import logging

            log = logging.getLogger("iac_components.data")
            for line in data_summary(self.manifest, self.splits):
                log.info("data: %s", line)

    @property
    def num_channels(self) -> int:
        return len(self.manifest["channel_names"])

    @property
    def num_classes(self) -> int:
        return len(self.manifest["class_names"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def spatial_size(self) -> list[int]:
        return list(self.manifest["settings"]["spatial_size"])

    @property
    def spacing(self) -> list[float]:
        return list(self.manifest["settings"]["spacing"])


def search_identity(data: BundleData, seed: int, ops: Any, cell_channels: int, partial_k: int) -> dict[str, Any]:
    """What makes a search this run (saved with its checkpoints; a resume from another run's is refused): the seed,
    the folds (a digest of the patients of each), the search space."""
    import hashlib
    import json

    folds = hashlib.sha256(json.dumps(data.splits.get("patients", {}), sort_keys=True).encode()).hexdigest()[:16]
    return {"seed": int(seed), "folds": folds, "ops": list(ops), "cell_channels": int(cell_channels),
            "partial_k": int(partial_k)}  # fmt: skip


def loader_batch_size(dataset: Any, batch_size: int) -> int:
    """The batch a training loader can fill (it drops the last incomplete one): ``batch_size``, or fewer when the
    fold has fewer slices (a fine-tune from one labelled volume), per rank under torchrun. A fold with no slice at
    all is a one-line error, not a silently empty epoch."""
    from iac_components.distributed import world_size

    n = len(dataset) // max(1, world_size())
    if n < 1:
        fold = getattr(dataset, "fold", "training")
        raise _fail(f"the {fold} fold has no 2-D slice to train on ({len(dataset)} slices for {world_size()} "
                    "process(es)); give it labelled volumes (train#dataset#data) or more patients")
    return max(1, min(int(batch_size), n))


def _cached_geometry(cache_dir: str) -> dict[str, list]:
    """``spacing`` and ``spatial_size`` of the cache in ``cache_dir`` (empty when there is none)."""
    import json

    path = Path(cache_dir) / "manifest.json"
    try:
        s = json.loads(path.read_text())["settings"]
        return {k: list(s[k]) for k in ("spacing", "spatial_size") if s.get(k)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _build_backbone(backbone: nn.Module | Mapping[str, Any]) -> nn.Module:
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
        raise _fail(f"no baseline checkpoint at {baseline_checkpoint}; train the baseline first: {run_first}")
    try:
        return implant_search_cells(_build_backbone(backbone), baseline_checkpoint=baseline_checkpoint, **cell_kwargs)
    except ValueError as e:
        raise _fail(str(e).splitlines()[0]) from e


#: The key of a checkpoint's :class:`ModelRecord` (``model.pt["iac"]``).
MODEL_RECORD_KEY = "iac"


def release_preprocessing(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What inference needs of a prepared cache's manifest: the preprocessing, no case list, no local paths."""
    from iac_components.bundles.package import RELEASE_MANIFEST_KEYS

    m = {k: manifest[k] for k in RELEASE_MANIFEST_KEYS if k in manifest}
    m["transforms"] = {mod: {"image": chains["image"]} for mod, chains in m.get("transforms", {}).items()}
    return m


class ModelRecord:
    """What rebuilds a trained model, kept with its weights: the preprocessing it was trained with (geometry,
    channels, classes, label values, normalisation: the manifest without cases) and, for a network with cells,
    the cell configuration and genotype it was built with.

    ``train.json`` and ``retrain.json`` save it in every checkpoint beside the weights (``model.pt["iac"]``, plain
    values, readable with ``weights_only=True``) and write the preprocessing as ``<ckpt_dir>/manifest.json`` when
    the run starts, so that model.ts exported there (which cannot hold it) and a release packaged from that folder
    carry it too. Evaluation, export and inference rebuild the cells from the record
    (:func:`fixed_network` ``checkpoint=``), whatever genotype.json says about the search's width."""

    def __init__(self, network: nn.Module, data: BundleData, ckpt_dir: str) -> None:
        from iac_components.distributed import unwrap

        self.network, self.preprocessing = unwrap(network), release_preprocessing(data.manifest)
        from iac_components.distributed import is_main_process

        if is_main_process():
            from iac_components.utils import write_json_atomic

            os.makedirs(ckpt_dir, exist_ok=True)
            write_json_atomic(os.path.join(ckpt_dir, "manifest.json"), self.preprocessing, indent=1)

    def state_dict(self) -> dict[str, Any]:
        cells = getattr(self.network, "cells", None)
        return {"format": "iac-model/1", "preprocessing": self.preprocessing,
                "cells": dict(getattr(cells, "config", None) or {}) or None}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: the record describes the run's own network and data."""


def model_record(checkpoint: str | None) -> dict[str, Any]:
    """The :class:`ModelRecord` a checkpoint carries (``{}`` for none, a missing file or a TorchScript file)."""
    if not checkpoint or not os.path.isfile(str(checkpoint)) or str(checkpoint).endswith(".ts"):
        return {}
    try:
        state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a corrupt checkpoint is reported where it is loaded, with its own message
        return {}
    record = state.get(MODEL_RECORD_KEY) if isinstance(state, dict) else None
    return dict(record) if isinstance(record, Mapping) else {}


def _cells_from_record(genotype: str | None, checkpoint: str | None, cell_kwargs: dict[str, Any]) -> Any:
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
        raise _fail(f"--cell_channels {given} does not fit {checkpoint}: its cells were trained at width {width} "
                    "(leave --cell_channels out: the width is read from the checkpoint)")
    cell_kwargs["cell_channels"] = int(width) if width is not None else given
    recorded = [Genotype.from_dict(g) for g in cells.get("genotypes", [])]
    if genotype not in (None, "", "none", "None") and os.path.isfile(str(genotype)) and recorded:
        on_disk = load_genotypes(str(genotype))
        if on_disk[: len(recorded)] != recorded and on_disk != recorded * len(on_disk):
            raise _fail(f"{genotype} ({on_disk[0]}) is not the cell {checkpoint} was trained with ({recorded[0]}); "
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
            raise _fail(str(e)) from e

    network = _build_backbone(backbone)
    if genotype not in (None, "", "none", "None"):
        genotype = _cells_from_record(genotype, checkpoint, cell_kwargs)
    if isinstance(genotype, list):
        cell_kwargs = {k: v for k, v in cell_kwargs.items() if v is not None}
        if "freeze_backbone" in cell_kwargs:
            cell_kwargs["freeze_backbone"] = as_bool(cell_kwargs["freeze_backbone"])
        try:
            return implant_fixed_cells(network, genotype, baseline_checkpoint=baseline_checkpoint, **cell_kwargs)
        except ValueError as e:
            raise _fail(str(e).splitlines()[0]) from e
    if cell_kwargs.get("cell_channels") is None and genotype not in (None, "", "none", "None"):
        # one source of truth: the width the search ran at, as genotype.json records it (32 if it says nothing)
        from iac_components.genotype import genotype_cell_config

        cell_kwargs["cell_channels"] = int(genotype_cell_config(str(genotype)).get("cell_channels", 32))
    cell_kwargs = {k: v for k, v in cell_kwargs.items() if v is not None}
    if "freeze_backbone" in cell_kwargs:
        cell_kwargs["freeze_backbone"] = as_bool(cell_kwargs["freeze_backbone"])
    if baseline_checkpoint is not None and not os.path.isfile(baseline_checkpoint):
        raise _fail(f"no baseline checkpoint at {baseline_checkpoint}; train the baseline first")
    if genotype in (None, "", "none", "None"):
        if baseline_checkpoint is not None:
            load_network_weights(network, baseline_checkpoint)
        return network
    if not os.path.isfile(str(genotype)):
        first = f": {run_first}" if run_first else " (configs/search.json)"
        raise _fail(f"no genotype at {genotype}; run the search first{first}, or pass --ckpt_dir where the search "
                    "wrote genotype.json")
    try:
        return implant_fixed_cells(network, str(genotype), baseline_checkpoint=baseline_checkpoint, **cell_kwargs)
    except ValueError as e:
        raise _fail(str(e).splitlines()[0]) from e


def deployed_model(ckpt_dir: str) -> str:
    """The model a fine-tune starts from: ``<ckpt_dir>/model.pt`` (a retrain's checkpoint) or, in a release that
    ships TorchScript only, ``<ckpt_dir>/model.ts``."""
    for name in ("model.pt", "model.ts"):
        path = os.path.join(str(ckpt_dir), name)
        if os.path.isfile(path):
            return path
    raise _fail(f"no model to fine-tune in {ckpt_dir} (model.pt or model.ts): run configs/retrain.json first, or "
                "download a release of this bundle")


def deployed_geometry(ckpt_dir: str, cache_dir: str) -> dict[str, list]:
    """``spacing`` and ``spatial_size`` the deployed model was trained with: from the release's
    ``<ckpt_dir>/manifest.json``, else from the prepared cache (empty: the dataset's defaults). A fine-tune on new
    data must preprocess as the model was trained, not as the new data's own median would say."""
    for folder in (ckpt_dir, cache_dir):
        geometry = _cached_geometry(str(folder))
        if geometry:
            return geometry
    return {}


def export_torchscript(bundle_root: str, ckpt_dir: str, input_shape: list[int], checkpoint: str = "model.pt") -> str:
    """``<ckpt_dir>/model.ts`` from ``<ckpt_dir>/<checkpoint>``, as the README's ``ckpt_export`` command writes it
    (``network_def`` of ``inference.json``, traced), replaced atomically: a MONAI Label server reloads model.ts when
    its modification time changes, and must never read half a file."""
    import warnings

    from monai.bundle import ckpt_export

    ckpt = os.path.join(str(ckpt_dir), checkpoint)
    if not os.path.isfile(ckpt):
        raise _fail(f"no checkpoint at {ckpt} to export: the run saved none (was there a validation epoch?)")
    final = os.path.join(str(ckpt_dir), "model.ts")
    part = final + ".part"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            ckpt_export(
                "network_def", filepath=part, ckpt_file=ckpt, bundle_root=str(bundle_root), ckpt_dir=str(ckpt_dir),
                config_file=os.path.join(str(bundle_root), "configs", "inference.json"),
                meta_file=os.path.join(str(bundle_root), "configs", "metadata.json"), torchscript="false",
                key_in_ckpt="model", use_trace=True, input_shape=[int(v) for v in input_shape],
                converter_kwargs={"check_trace": False},
            )  # fmt: skip
        os.replace(part, final)
    finally:
        if os.path.exists(part):  # a failed export leaves model.ts as it was and no partial file beside it
            os.remove(part)
    return final


def export_program(bundle_root: str, ckpt_dir: str, input_shape: list[int], checkpoint: str = "model.pt",
                   max_slices: int = 1024) -> str:
    """``<ckpt_dir>/model.pt2``: the inference network (``network_def`` of ``inference.json``, the 2-D network run
    slice-wise, with ``checkpoint``'s weights) as a ``torch.export`` program, the format meant to follow TorchScript,
    whose tracing torch deprecates. The number of slices is dynamic (1 to ``max_slices``): the sliding window's last
    window may be shorter. ``inference.json`` runs it when it is there (without iac_components: the program holds
    only aten operations). The program is checked against the eager network on a random volume before it replaces
    the file (atomically)."""
    from monai.bundle import ConfigParser

    ckpt = os.path.join(str(ckpt_dir), checkpoint)
    if not os.path.isfile(ckpt):
        raise _fail(f"no checkpoint at {ckpt} to export: retrain first (configs/retrain.json)")
    parser = ConfigParser()
    parser.read_config(os.path.join(str(bundle_root), "configs", "inference.json"))
    parser.update({"bundle_root": str(bundle_root), "ckpt_dir": str(ckpt_dir), "torchscript": "false", "program": "false"})
    network = parser.get_parsed_content("network_def")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    network.eval()
    example = torch.randn(*[int(v) for v in input_shape])
    slices = torch.export.Dim("slices", min=1, max=int(max_slices))
    name = next(iter(inspect.signature(network.forward).parameters))
    program = torch.export.export(network, (example,), dynamic_shapes={name: {4: slices}})
    with torch.no_grad():  # the program must compute what the eager network does, on a window shorter than traced
        check = example[..., : max(1, example.shape[-1] // 2)]
        diff = float((program.module()(check) - network(check)).abs().max())
    if not diff <= 1e-3:
        raise _fail(f"the exported program differs from the eager network by {diff:.3g}; model.pt2 not written")
    final = os.path.join(str(ckpt_dir), "model.pt2")
    part = final + ".part"
    try:
        torch.export.save(program, part)
        os.replace(part, final)
    finally:
        if os.path.exists(part):
            os.remove(part)
    return final


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
        raise _fail("nothing to train: the backbone is frozen (or its multiplier is 0) and the network has no cells")
    return groups


class CellContributionHandler:
    """At the end of a training run, log the cells' γ and ``‖γ·cell‖/‖skip‖`` per level (on the last batch)
    and write them to ``output_file`` (JSON). Does nothing for a network without cells."""

    def __init__(self, output_file: str | None = None) -> None:
        self.output_file = output_file

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        from iac_components.distributed import is_main_process
        from iac_components.search.pruning import contribution_text, measure_cells
        from iac_components.utils import write_json_atomic

        c = measure_cells(engine)
        if c is None or not is_main_process():
            return
        engine.logger.info("IAC cells at the end of the retrain: " + contribution_text(c))
        if self.output_file:
            write_json_atomic(self.output_file, {"epoch": engine.state.epoch, **c})


def inference_network(
    backbone: str,
    in_channels: int,
    out_channels: int,
    genotype: str | None,
    backbone_kwargs: Mapping[str, Any] | None = None,
    cell_kwargs: Mapping[str, Any] | None = None,
    checkpoint: str | None = None,
) -> nn.Module:
    """The 3-D inference model: the retrained network (fixed cells) run slice-wise
    (:class:`~iac_components.networks.SliceWise`). Built from plain values only, so ``inference.json`` can
    switch it off (``_disabled_``) when it runs on ``model.ts`` without this package."""
    from iac_components.networks import SliceWise

    spec = {"name": backbone, "in_channels": in_channels, "out_channels": out_channels, **(backbone_kwargs or {})}
    return SliceWise(fixed_network(spec, genotype, checkpoint=checkpoint, **(cell_kwargs or {})))


def evaluate_models(
    models: Mapping[str, tuple[nn.Module, str]],
    data: BundleData,
    output_dir: str,
    fold: str = "test",
    device: str | torch.device | None = None,
    save_predictions: bool | str = False,
    force_geometry: bool | str = False,
) -> dict[str, Any]:
    """Patient-level evaluation in the original grid of each named model, and their paired comparison.

    Args:
        models: name -> (network, checkpoint); a missing checkpoint skips that model with a note (the IAC model
            is required).
        data: the bundle's data.
        output_dir: ``<output_dir>/<name>/metrics_per_case.csv`` and ``metrics_summary.json`` per model, and
            ``comparison.json`` when two or more were evaluated.
        fold: the split to report on.
        device: where to run.
        save_predictions: also write the predicted label maps.
        force_geometry: evaluate even when the data were prepared at another geometry than a model's checkpoint
            records (refused otherwise: the model would be scored on slices it was not trained on).
    """
    from iac_components.data import evaluate_patients
    from iac_components.distributed import is_main_process
    from iac_components.implant import load_network_weights
    from iac_components.utils import write_json_atomic

    results: dict[str, Any] = {}
    for name, (network, checkpoint) in models.items():
        if not os.path.isfile(checkpoint):
            if not results and name == next(iter(models)):
                raise _fail(f"no {name} checkpoint at {checkpoint}; run its workflow first")
            print(f"note: skipping {name}: no checkpoint at {checkpoint}")
            continue
        trained = (model_record(checkpoint).get("preprocessing") or {}).get("settings") or {}
        here = data.manifest["settings"]
        differs = [k for k in ("spacing", "spatial_size") if trained.get(k) and list(trained[k]) != list(here[k])]
        if differs and not as_bool(force_geometry):
            raise _fail(f"{checkpoint} was trained at {', '.join(f'{k} {list(trained[k])}' for k in differs)}; the data "
                        f"here are prepared at {', '.join(f'{k} {list(here[k])}' for k in differs)}: leave --spacing / "
                        "--spatial_size out (or point --cache_dir at the model's cache), or pass --force_geometry true")
        load_network_weights(network, checkpoint)
        network = network.to(device).eval()
        out = Path(output_dir) / name
        summary = evaluate_patients(
            network, data.manifest, fold=fold, splits=data.splits, out_dir=str(out), device=device,
            save_predictions=as_bool(save_predictions),
        )  # fmt: skip
        results[name] = summary
        if is_main_process():
            print(f"{name}: mean Dice {summary['summary']['mean_dice']:.4f} over {summary['summary']['num_patients']} "
                  f"patients ({fold}); {out}")
    report: dict[str, Any] = {n: r["summary"] for n, r in results.items()}
    if len(results) > 1 and is_main_process():
        from iac_components.stats import compare_runs

        reference = "baseline" if "baseline" in results else None
        report["comparison"] = compare_runs({n: r["rows"] for n, r in results.items()}, reference=reference)
        for n, c in report["comparison"]["vs_reference"].items():
            print(f"{n} - {report['comparison']['reference']}: {c['mean_diff']:+.4f} Dice "
                  f"(95% CI {c['ci95'][0]:+.4f}..{c['ci95'][1]:+.4f}, Wilcoxon p={c['wilcoxon_p']:.3g})")
    if is_main_process():  # under torchrun every rank holds all the rows (gathered); rank 0 writes
        write_json_atomic(Path(output_dir) / "evaluation.json", report)
    return report
