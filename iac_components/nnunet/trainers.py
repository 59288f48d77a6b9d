"""nnU-Net v2 trainers that search and retrain IAC cells with nnU-Net's own plans, data loading, augmentation,
deep supervision and loss.

* :class:`nnUNetTrainerIACSearch`: IAC-LTH on the fold's trained baseline (frozen). The fold's training cases are
  split into search-train (weight steps, nnU-Net's training augmentation) and search-val patients (architecture
  steps, nnU-Net's validation transforms); each iteration is the bundles' bilevel step
  (:class:`~iac_components.search.IACSearchTrainer`) and the JSD rule decides the cell
  (:class:`~iac_components.search.JSDPruningHandler`, the one implementation of the rule). Writes
  ``genotype.json`` and ``search_history.json`` in the fold's output folder.
* :class:`nnUNetTrainerIACFullSearch`: the same search with the rule observe-only (the full search; its history
  feeds ``iac report`` and LTH-vs-full comparisons).
* :class:`nnUNetTrainerIAC`: the retrain. It carries the genotype inside the plans it saves in its model folder,
  so ``nnUNetv2_predict -tr nnUNetTrainerIAC``, nnU-Net's validation and evaluation, and a model exported with
  ``nnUNetv2_export_model_to_zip`` rebuild the network from the model folder alone (with this package installed
  and ``nnUNet_extTrainer`` set). It fine-tunes from the baseline's checkpoint with the bundles' retrain recipe.

Where things are found (nnU-Net's results layout; each can be overridden by an environment variable):

* the baseline: ``$nnUNet_results/<dataset>/<baseline_trainer>__<plans>__<configuration>/fold_<f>/checkpoint_final.pth``
  (``IAC_NNUNET_BASELINE``: a checkpoint file);
* the genotype: ``.../<search_trainer>__<plans>__<configuration>/fold_<f>/genotype.json``
  (``IAC_NNUNET_GENOTYPE``: a genotype.json).

Settings are attributes set in ``__init__``, as in nnU-Net's own trainer variants: subclass to change them
(``tests/nnunet/trainers`` has small ones for the tests).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
from os.path import isfile, join
from typing import Any

import numpy as np
import torch
from nnunetv2.paths import nnUNet_results
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch._dynamo import OptimizedModule

import iac_components.nnunet  # noqa: F401 - registers the adapter for nnU-Net's networks
from iac_components.bundles.bundle_networks import retrain_param_groups
from iac_components.genotype import genotype_cell_config, genotypes_from_doc
from iac_components.implant import ImplantedNetwork, get_network_adapter, implant_fixed_cells, implant_search_cells
from iac_components.search import IACSearchTrainer, JSDPruningHandler
from iac_components.search.recipe import SEARCH_RECIPE
from iac_components.search.record import PROGRESS

__all__ = [
    "CosinePerGroup",
    "load_nnunet_weights",
    "nnUNetTrainerIAC",
    "nnUNetTrainerIACFullSearch",
    "nnUNetTrainerIACSearch",
    "patient_of",
    "split_search_cases",
]

BASELINE_ENV = "IAC_NNUNET_BASELINE"
GENOTYPE_ENV = "IAC_NNUNET_GENOTYPE"


def patient_of(case: str) -> str:
    """The patient a case belongs to: the identifier without an ACDC-style ``_frameNN`` suffix, so that both
    frames of a patient land on the same side of the search split."""
    return re.sub(r"_frame\d+$", "", case)


def split_search_cases(cases: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split the fold's training cases by patient into search-train and search-val (seeded; both non-empty).

    Raises:
        ValueError: fewer than two patients, or a fraction outside (0, 1).
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"search_val_fraction must be in (0, 1), got {val_fraction}")
    patients = sorted({patient_of(c) for c in cases})
    if len(patients) < 2:
        raise ValueError(f"the fold's training split has {len(patients)} patient(s): the search needs at least 2 "
                         "(one for search-train, one for search-val)")
    random.Random(seed).shuffle(patients)
    n_val = min(len(patients) - 1, max(1, round(len(patients) * float(val_fraction))))
    val = set(patients[:n_val])
    return [c for c in cases if patient_of(c) not in val], [c for c in cases if patient_of(c) in val]


def _weights_only_globals() -> list:
    # what nnU-Net puts into a checkpoint besides tensors: numpy scalars and arrays in the logger's lists
    return [np.core.multiarray.scalar, np.ndarray, np.dtype, np.core.multiarray._reconstruct,
            type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64)), torch.device]


def load_nnunet_weights(path: str, what: str) -> dict[str, torch.Tensor]:
    """The network weights of an nnU-Net checkpoint, read with ``weights_only=True`` (nnU-Net's own numpy
    scalars allowed), without a DDP ``module.`` or ``torch.compile`` ``_orig_mod.`` prefix.

    Raises:
        FileNotFoundError: one line naming the file and ``what`` to run first.
        ValueError: the file is not an nnU-Net checkpoint.
    """
    if not isfile(path):
        raise FileNotFoundError(f"nnU-Net checkpoint not found: {path} ({what})")
    try:
        with torch.serialization.safe_globals(_weights_only_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(f"cannot read nnU-Net checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("network_weights"), dict):
        raise ValueError(f"{path} is not an nnU-Net checkpoint (no 'network_weights')")
    return {re.sub(r"^(module\.)?(_orig_mod\.)?", "", k): v for k, v in checkpoint["network_weights"].items()}


def _load_into(network: torch.nn.Module, weights: dict[str, torch.Tensor], path: str) -> None:
    try:
        network.load_state_dict(weights)
    except RuntimeError as e:
        first = (str(e).splitlines()[1:2] or [str(e)])[0].strip()
        raise ValueError(f"the baseline checkpoint {path} does not fit this plans' network: {first[:300]} (was it "
                         "trained with the same plans and configuration?)") from e


def _plain(network: torch.nn.Module) -> torch.nn.Module:
    network = getattr(network, "module", network)  # DDP
    return network._orig_mod if isinstance(network, OptimizedModule) else network


#: Arch steps between two checks of the rule in the nnU-Net search (its epochs are 250 iterations: a check per epoch
#: would be five times rarer than the bundles' on real ACDC, about 45 arch steps per epoch at batch 16).
NNUNET_CHECK_INTERVAL = 50

class _IACTrainerBase(nnUNetTrainer):
    """What both IAC trainers share: where the baseline is, and deep supervision on the implanted network."""

    #: the trainer that trained the baseline of this fold (its results folder holds checkpoint_final.pth)
    baseline_trainer: str = "nnUNetTrainer"

    def _trainer_folder(self, trainer: str) -> str:
        return join(nnUNet_results, self.plans_manager.dataset_name,
                    f"{trainer}__{self.plans_manager.plans_name}__{self.configuration_name}", f"fold_{self.fold}")

    def baseline_checkpoint(self) -> str:
        return os.environ.get(BASELINE_ENV) or join(self._trainer_folder(self.baseline_trainer), "checkpoint_final.pth")

    def _load_baseline(self, backbone: torch.nn.Module) -> None:
        path = self.baseline_checkpoint()
        what = (f"train the baseline first: nnUNetv2_train {self.plans_manager.dataset_name} {self.configuration_name} "
                f"{self.fold}" + ("" if self.baseline_trainer == "nnUNetTrainer" else f" -tr {self.baseline_trainer}")
                + f", or point {BASELINE_ENV} at its checkpoint_final.pth")
        _load_into(backbone, load_nnunet_weights(path, what), path)
        self.print_to_log_file(f"IAC: baseline weights from {path}")

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        network = _plain(self.network)
        backbone = network.backbone if isinstance(network, ImplantedNetwork) else network
        backbone.decoder.deep_supervision = enabled


class nnUNetTrainerIACSearch(_IACTrainerBase):
    """IAC-LTH: search cells on the skips of the fold's trained nnU-Net (frozen), pruned by the JSD rule.

    Budget: ``num_epochs`` x ``num_iterations_per_epoch`` iterations (nnU-Net's epoch of 250), each one weight step
    on search-train and, after ``warmup_iterations``, one architecture step on search-val. The rule checks every
    ``pruning["interval"]`` architecture steps; its window and tolerances are those of the bundles (relative to how
    far Adam can move the logits, so they carry over to this cadence). The search stops when the rule has decided
    every cell, or at the budget, and writes ``genotype.json``/``search_history.json``; there is no nnU-Net
    validation (nothing to segment with yet), the retrain (:class:`nnUNetTrainerIAC`) has it.
    """

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        # 50 x 250 = 12,500 iterations: about the bundles' 200-epoch search on ACDC (60 batches per epoch)
        self.num_epochs = 50
        self.num_iterations_per_epoch = 250
        # the bundles' search recipe (iac_components.search.recipe): SGD on the cells' weights, Adam on α/β, a
        # warm-up before the first α step, the JSD rule; nnU-Net's epochs are 250 iterations, so the rule checks
        # every NNUNET_CHECK_INTERVAL arch steps instead of once per epoch
        self.initial_lr = SEARCH_RECIPE.learning_rate
        self.weight_decay = SEARCH_RECIPE.weight_decay
        self.arch_lr = SEARCH_RECIPE.arch_learning_rate
        self.warmup_iterations = SEARCH_RECIPE.warmup_steps
        self.cell_channels = SEARCH_RECIPE.cell_channels
        self.partial_k = SEARCH_RECIPE.partial_k
        self.n_nodes = SEARCH_RECIPE.n_nodes
        self.ops = list(SEARCH_RECIPE.ops)
        self.share_genotype = SEARCH_RECIPE.share_genotype
        self.search_val_fraction = 0.5
        self.pruning: dict[str, Any] = {**SEARCH_RECIPE.rule.to_config(), "interval": NNUNET_CHECK_INTERVAL,
                                        "prune": True}
        self.arch_optimizer: torch.optim.Optimizer | None = None

    def _do_i_compile(self) -> bool:
        return False  # pruning deletes ops from the network during the search: every cut would recompile it

    def do_split(self):
        tr_keys, _ = super().do_split()
        search_train, search_val = split_search_cases(list(tr_keys), self.search_val_fraction, seed=12345 + int(
            self.fold if self.fold != "all" else 0))
        self.print_to_log_file(f"IAC search: {len(search_train)} search-train and {len(search_val)} search-val cases "
                               "from the fold's training cases (split by patient)")
        return search_train, search_val

    def initialize(self) -> None:
        if self.is_ddp:
            raise RuntimeError(f"{type(self).__name__} runs on one device: drop -num_gpus (the bundles' "
                               "multi_gpu_search.json is the multi-GPU search)")
        super().initialize()  # nnU-Net's network from the plans (and a loss); configure_optimizers waits for cells
        backbone = self.network
        self._load_baseline(backbone)
        self.network = implant_search_cells(
            backbone, freeze_backbone=True, cell_channels=self.cell_channels, partial_k=self.partial_k,
            n_nodes=self.n_nodes, ops=self.ops, share_genotype=self.share_genotype,
        ).to(self.device)
        self.optimizer, self.lr_scheduler = self.configure_optimizers()

    def configure_optimizers(self):
        if not isinstance(self.network, ImplantedNetwork):  # nnUNetTrainer.initialize, before the cells exist
            return None, None
        optimizer = torch.optim.SGD(list(self.network.weight_parameters()), lr=self.initial_lr, momentum=SEARCH_RECIPE.momentum,
                                    weight_decay=self.weight_decay)
        self.arch_optimizer = torch.optim.Adam(list(self.network.arch_parameters()), lr=self.arch_lr,
                                               betas=SEARCH_RECIPE.arch_betas,
                                               weight_decay=SEARCH_RECIPE.arch_weight_decay)
        return optimizer, None

    def run_training(self) -> None:
        self.on_train_start()
        engine = IACSearchTrainer(
            self.device, self.num_epochs, _Endless(self.dataloader_train), _Endless(self.dataloader_val),
            self.network, self.optimizer, self.arch_optimizer, self.loss,
            warmup_steps=self.warmup_iterations, epoch_length=self.num_iterations_per_epoch,
            prepare_batch=_prepare_nnunet_batch, decollate=False, amp=self.device.type == "cuda",
        )  # fmt: skip
        handler = JSDPruningHandler(
            **self.pruning, genotype_path=join(self.output_folder, "genotype.json"),
            history_path=join(self.output_folder, "search_history.json"), terminate=True,
        )  # fmt: skip
        handler.attach(engine)
        to_log = _ToTrainerLog(self)
        PROGRESS.addHandler(to_log)
        previous_level = PROGRESS.level
        PROGRESS.setLevel(logging.INFO)
        try:
            self.print_to_log_file(f"IAC search: {handler.method}; {self.num_epochs} epochs of "
                                   f"{self.num_iterations_per_epoch} iterations at most, warm-up "
                                   f"{self.warmup_iterations} iterations; rule {handler.rule.config()}")
            engine.run()
        finally:
            PROGRESS.removeHandler(to_log)
            PROGRESS.setLevel(previous_level)
        self.current_epoch = engine.state.epoch
        self.print_to_log_file(f"IAC search done: {engine.arch_steps} architecture steps, "
                               f"{'decided by the rule' if handler.decided_at else 'stopped at the budget'}; "
                               f"genotype: {join(self.output_folder, 'genotype.json')}")
        self.on_train_end()

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        raise RuntimeError(f"{type(self).__name__} does not resume (--c) or validate (--val) from a checkpoint: run the "
                           "search again without those flags (its genotype.json and search_history.json are rewritten)")

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        self.print_to_log_file("IAC search: no validation here (nothing to segment with yet); retrain the cells "
                               "with nnUNetTrainerIAC, which validates as nnU-Net does")


class nnUNetTrainerIACFullSearch(nnUNetTrainerIACSearch):
    """The full search: the same search with the rule observe-only (its checks recorded, nothing pruned, the full
    budget), for comparisons with IAC-LTH."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.pruning["prune"] = False


class nnUNetTrainerIAC(_IACTrainerBase):
    """The retrain: nnU-Net's network with the searched cells on its skips, fine-tuned from the baseline with the
    bundles' retrain recipe (AdamW; cells at ``initial_lr``, their γ at ``gamma_lr``, the backbone at
    ``backbone_lr_multiplier`` times it; cosine over ``num_epochs``). γ starts at 0, so the network starts as the
    baseline. The genotype goes into the plans (``configurations/<c>/iac``) that nnU-Net saves in the model folder,
    which is what :meth:`build_network_architecture` (also nnU-Net's predictor) reads."""

    #: the search whose genotype.json this retrain uses (its fold folder); IAC_NNUNET_GENOTYPE overrides it
    search_trainer: str = "nnUNetTrainerIACSearch"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        continuing = bool(plans.get("continue_training", False))
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 100
        self.initial_lr = 3e-4
        self.gamma_lr = 1e-2
        self.backbone_lr_multiplier = 0.1
        self.weight_decay = 1e-5
        iac = self._iac_entry(continuing)
        # the plans dict is the one nnU-Net saves (plans.json in the model folder, init_args in the checkpoints)
        self.plans_manager.plans["configurations"][configuration]["iac"] = iac
        self.configuration_manager.configuration["iac"] = iac  # the manager holds a copy (and is cached)
        self.print_to_log_file(f"IAC retrain: cells {iac['text']} (width {iac['cell_channels']}) from {iac['source']}")

    def genotype_file(self) -> str:
        return os.environ.get(GENOTYPE_ENV) or join(self._trainer_folder(self.search_trainer), "genotype.json")

    def _iac_entry(self, continuing: bool) -> dict[str, Any]:
        saved = join(self.output_folder_base, "plans.json") if self.output_folder_base else None
        if continuing and saved and isfile(saved):  # a resumed retrain keeps the cells it started with
            with open(saved) as f:
                entry = json.load(f)["configurations"].get(self.configuration_name, {}).get("iac")
            if entry:
                return entry
        path = self.genotype_file()
        if not isfile(path):
            raise FileNotFoundError(
                f"genotype not found: {path} (run the search first: nnUNetv2_train {self.plans_manager.dataset_name} "
                f"{self.configuration_name} {self.fold} -tr {self.search_trainer}, or point {GENOTYPE_ENV} at a "
                "genotype.json)")
        with open(path) as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"genotype file {path} is not valid JSON: {e}") from e
        genotypes_from_doc(doc, source=path)  # a broken file fails here, in one line
        width = int(genotype_cell_config(path).get("cell_channels", 32))
        return {"genotype": doc, "cell_channels": width, "source": path, "text": doc.get("text")}

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> torch.nn.Module:
        base = nnUNetTrainer.build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                        num_output_channels, enable_deep_supervision)
        iac = configuration_manager.configuration.get("iac")
        if not iac:
            raise ValueError("the plans' configuration has no 'iac' entry: this model folder was not written by "
                             "nnUNetTrainerIAC (its plans.json carries the cells)")
        genotypes = genotypes_from_doc(iac["genotype"], get_network_adapter(base).num_skips, source="the plans' iac entry")
        return implant_fixed_cells(base, genotypes, cell_channels=int(iac["cell_channels"]), freeze_backbone=False)

    def on_train_start(self) -> None:
        if not self.was_initialized:
            self.initialize()
        if self.current_epoch == 0:  # a fresh retrain starts from the baseline; a resumed one from its checkpoint
            self._load_baseline(_plain(self.network).backbone)
        super().on_train_start()

    def configure_optimizers(self):
        groups = retrain_param_groups(_plain(self.network), self.initial_lr, self.gamma_lr, self.backbone_lr_multiplier)
        optimizer = torch.optim.AdamW(groups, lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, CosinePerGroup(optimizer, self.num_epochs)


class CosinePerGroup:
    """Cosine annealing of every parameter group from its own starting rate, stepped by nnU-Net's loop with the
    epoch (``step(epoch)``); nnU-Net's PolyLRScheduler would give every group the same rate."""

    def __init__(self, optimizer: torch.optim.Optimizer, max_epochs: int):
        self.optimizer = optimizer
        self.max_epochs = max(1, int(max_epochs))
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]

    def step(self, epoch: int) -> None:
        factor = 0.5 * (1.0 + math.cos(math.pi * min(int(epoch), self.max_epochs) / self.max_epochs))
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor


class _Endless:
    """nnU-Net's augmenters are endless iterators; the search engine asks its loaders for ``iter()`` each epoch."""

    def __init__(self, augmenter):
        self.augmenter = augmenter

    def __iter__(self):
        return self.augmenter


def _prepare_nnunet_batch(batch: dict, device: torch.device, non_blocking: bool = False, **kwargs: Any):
    target = batch["target"]
    target = [t.to(device, non_blocking=non_blocking) for t in target] if isinstance(target, list) else \
        target.to(device, non_blocking=non_blocking)
    return batch["data"].to(device, non_blocking=non_blocking), target


class _ToTrainerLog(logging.Handler):
    """The search's per-epoch progress lines into nnU-Net's training log (and console)."""

    def __init__(self, trainer: nnUNetTrainer):
        super().__init__(logging.INFO)
        self.trainer = trainer

    def emit(self, record: logging.LogRecord) -> None:
        self.trainer.print_to_log_file(record.getMessage())
