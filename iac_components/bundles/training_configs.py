"""``train.json``, ``retrain.json``, ``search.json``, ``evaluate.json``, the comparison baselines' configs and the
``finetune.json`` overlay, each written whole here and read top to bottom as in the MONAI model zoo: paths and
devices, data, network, loss, optimisers, then the ``train`` / ``validate`` sections, and ``initialize`` / ``run`` /
``finalize``. The bundle keeps ``train.json`` whole and the others as overlays on it (:mod:`.overlays`).
"""

from __future__ import annotations

from typing import Any

from iac_components.bundles.config_parts import (
    BOOL,
    CHECK_DEVICE,
    CHECK_OVERRIDES,
    IMPORTS,
    RUNTIME,
    backbone_config,
    data_config,
    insert_after,
    loader_config,
    loss_config,
    patch_check,
    paths_config,
    run_first,
    train_preprocessing,
    validate_config,
    volume_inferer,
)
from iac_components.bundles.table import BundleSpec
from iac_components.search.recipe import SEARCH_RECIPE as RECIPE

__all__ = [
    "COMPARISON_BASELINES", "comparison_baseline_config", "evaluate_config", "finetune_config", "retrain_config",
    "search_config", "train_config",
]  # fmt: skip


def _supervised(spec: BundleSpec, network_def: dict[str, Any], epochs: int, lr: float, best_file: str) -> dict[str, Any]:
    """``train.json`` and ``retrain.json``: supervised training on the train patients (search-train and search-val)
    with patient-level validation; the best checkpoint by validation Dice is ``best_file``."""
    return {
        "imports": IMPORTS,
        **paths_config(spec),
        "epochs": epochs,
        "val_interval": 1,
        "batch_size": spec.volume.batch_size if spec.volumetric else spec.dataset.batch_size,
        "learning_rate": lr,
        "augment": spec.dataset.augment,
        **data_config(spec, ("train", "validate")),
        "backbone": backbone_config(spec),
        "network_def": network_def,
        "network": "$@network_def.to(@device)",
        # saved beside the weights: the preprocessing and the cells this model was trained with (runtime.ModelRecord)
        "model_record": {"_target_": f"{RUNTIME}.ModelRecord", "network": "@network", "data": "@data", "ckpt_dir": "@ckpt_dir",
                         **({"patch_size": "@patch_size"} if spec.volumetric else {})},
        "loss": loss_config(spec),
        "optimizer": {
            "_target_": "torch.optim.AdamW",
            "params": "$[p for p in @network.parameters() if p.requires_grad]",
            "lr": "@learning_rate",
            "weight_decay": 1e-5,
        },
        "lr_scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "optimizer": "@optimizer", "T_max": "@epochs"},
        "train": {
            **train_preprocessing(spec),
            **loader_config(spec, "train", "train", f"$@train#preprocessing if {BOOL}(@augment) else None"),
            "inferer": {"_target_": "SimpleInferer"},
            "handlers": [
                {"_target_": "LrScheduleHandler", "lr_scheduler": "@lr_scheduler", "print_lr": True},
                {"_target_": "ValidationHandler", "validator": "@validate#evaluator", "epoch_level": True, "interval": "@val_interval"},
                {"_target_": "StatsHandler", "tag_name": "train_loss", "output_transform": "$lambda output: output['loss']"},
            ],
            "trainer": {
                "_target_": "iac_components.search.IACTrainer",
                "device": "@device",
                "max_epochs": "@epochs",
                "train_data_loader": "@train#dataloader",
                "network": "@network",
                "optimizer": "@optimizer",
                "loss_function": "@loss",
                "inferer": "@train#inferer",
                "train_handlers": "@train#handlers",
                "amp": "@amp",
                "amp_dtype": "@amp_dtype",
                "seed": "@seed",
                "decollate": False,
            },
        },
        "validate": validate_config(spec, best_file),
        "initialize": [*_checks(spec), "$monai.utils.set_determinism(seed=@seed)"],
        "run": ["$@train#trainer.run()"],
        "finalize": [],
    }


def _checks(spec: BundleSpec) -> list[str]:
    """What every workflow checks before any work: the overrides, the device, a 3-D bundle's patch."""
    return [CHECK_OVERRIDES, CHECK_DEVICE, *patch_check(spec)]


def train_config(spec: BundleSpec) -> dict[str, Any]:
    """The baseline U-Net (no cells)."""
    return _supervised(spec, "@backbone", spec.dataset.epochs["train"], 1e-3, "baseline.pt")


def retrain_config(spec: BundleSpec) -> dict[str, Any]:
    """The derived cells implanted in the trained baseline; best by validation Dice.

    γ (per channel, from 0) has its own parameter group: its own learning rate and no weight decay, so that it
    can grow past the Σ lr that a plain Adam group allows in a short fine-tune; the backbone can be frozen
    (weights and norm statistics) or trained at ``backbone_lr_multiplier`` × the cells' rate."""
    network_def = {
        "_target_": f"{RUNTIME}.fixed_network",
        "backbone": "@backbone",
        "genotype": "@genotype_file",
        "baseline_checkpoint": "@baseline_ckpt",
        "run_first": run_first("search"),
        "cell_channels": "@cell_channels",
        "freeze_backbone": "@freeze_backbone",
    }
    config = _supervised(spec, network_def, spec.dataset.epochs["retrain"], 3e-4, "model.pt")
    config["optimizer"] = {
        "_target_": "torch.optim.AdamW",
        "params": f"${RUNTIME}.retrain_param_groups(@network, @learning_rate, @gamma_learning_rate, "
                  "@backbone_lr_multiplier)",
        "lr": "@learning_rate",
        "weight_decay": 1e-5,
    }
    config["train"]["handlers"].append(
        {"_target_": f"{RUNTIME}.CellContributionHandler", "output_file": "$@output_dir + '/cell_contribution.json'"}
    )
    extra = {
        "gamma_learning_rate": 1e-2,
        "freeze_backbone": False,
        "backbone_lr_multiplier": 0.1,
        "genotype_file": "$@ckpt_dir + '/genotype.json'",
        "baseline_ckpt": "$@ckpt_dir + '/baseline.pt'",
        "cell_channels": None,  # None: the width genotype.json records (the search's)
    }
    return insert_after(config, "augment", extra)


def finetune_config(spec: BundleSpec) -> dict[str, Any]:
    """The overlay on ``retrain.json`` that fine-tunes the deployed model on new labelled volumes, as MONAI Label's
    trainer runs it (``train#dataset#data``, ``validate#dataset#data``, ``train#trainer#max_epochs``).

    It starts from the whole retrained network (models/model.pt, or the weights of models/model.ts in a release that
    ships TorchScript only) instead of the baseline, preprocesses at the geometry the model was trained with (the
    release's models/manifest.json or the prepared cache), validates every epoch (the best checkpoint is
    models/model.pt), and exports models/model.ts again at the end, so that the next inference, which runs on
    model.ts, uses the fine-tuned weights."""
    return {
        "deployed_geometry": f"${RUNTIME}.deployed_geometry(@ckpt_dir, @cache_dir)",
        "spacing": "$@deployed_geometry.get('spacing')",
        "spatial_size": "$@deployed_geometry.get('spatial_size')",
        "init_checkpoint": f"${RUNTIME}.deployed_model(@ckpt_dir)",
        "data#conventions": "$@ckpt_dir + '/manifest.json'",
        "network_def#baseline_checkpoint": None,
        "network_def#init_checkpoint": "@init_checkpoint",
        "val_interval": 1,
        # a 3-D model fine-tunes and is exported again at the patch it was trained on (its manifest's)
        **({"patch_size": f"$@deployed_geometry.get('patch_size') or {list(spec.volume.patch_size)}"}
           if spec.volumetric else {}),
        "finalize": [f"${RUNTIME}.export_torchscript(@bundle_root, @ckpt_dir, {export_shape(spec)})"],
    }


def export_shape(spec: BundleSpec) -> str:
    """The example input TorchScript is traced with: a volume of 16 slices at the slice size, or a 3-D bundle's
    patch (the sliding window's input)."""
    if spec.volumetric:
        return "[1, @num_channels] + list(@patch_size)"
    return "[1, @num_channels] + list(@data.spatial_size) + [16]"


def search_config(spec: BundleSpec) -> dict[str, Any]:
    """The IAC search on the frozen baseline, with the JSD pruning handler (``--prune false``: full search).

    A training workflow in MONAI's sense (``train#trainer``, ``train#dataset``, ``train#handlers``, ...): its
    dataset is the search-train slices (the weight steps), ``train#arch_dataset`` the search-val slices (the α/β
    steps), its trainer the search engine. A datalist (``train#dataset#data``) is split into both by patient."""
    return {
        "imports": IMPORTS,
        **paths_config(spec),
        "epochs": spec.dataset.epochs["search"],
        "warmup_steps": spec.dataset.warmup_steps,
        "batch_size": spec.volume.search_batch_size if spec.volumetric else spec.dataset.batch_size,
        "learning_rate": RECIPE.learning_rate,
        "arch_learning_rate": RECIPE.arch_learning_rate,
        "prune": True,
        "resume": False,
        "baseline_ckpt": "$@ckpt_dir + '/baseline.pt'",
        "genotype_file": "$@ckpt_dir + '/genotype.json'",
        "history_file": "$@output_dir + '/search_history.json'",
        "ops": list(RECIPE.ops),
        "cell_channels": spec.volume.cell_channels if spec.volumetric else RECIPE.cell_channels,
        "partial_k": RECIPE.partial_k,
        "share_genotype": RECIPE.share_genotype,
        **data_config(spec, ("train",), disjoint_search_folds=True),
        "backbone": backbone_config(spec),
        "network_def": {
            "_target_": f"{RUNTIME}.search_network",
            "backbone": "@backbone",
            "baseline_checkpoint": "@baseline_ckpt",
            "run_first": run_first("train"),
            "ops": "@ops",
            "cell_channels": "@cell_channels",
            "partial_k": "@partial_k",
            "share_genotype": "@share_genotype",
        },
        "network": "$@network_def.to(@device)",
        "loss": loss_config(spec),
        **_search_optimizers(),
        # the JSD rule's settings (`--pruning#epsilon 0.2`); the handler is `train#handlers#0`, built from them;
        # `control` replaces the rule by one of the benchmark's controls (iac_components.search.controls)
        "pruning": {**RECIPE.rule.to_config(), "control": None},
        "train": _search_train(spec),
        **_search_checkpoints(),
        "initialize": [*_checks(spec), "$monai.utils.set_determinism(seed=@seed)"],
        "run": [
            "$@checkpoint.attach(@train#trainer)",
            f"$@checkpoint_loader.attach(@train#trainer) if {BOOL}(@resume) else None",
            "$@train#trainer.run()",
        ],
        "search": "@run",  # `monai.bundle run search` (the README's name for it) is `run`
        "finalize": [],
    }


def _search_optimizers() -> dict[str, Any]:
    """SGD on the cells' weights (the backbone is frozen), Adam on α/β: the recipe's."""
    return {
        "optimizer": {
            "_target_": "torch.optim.SGD",
            "params": "$list(@network.weight_parameters())",
            "lr": "@learning_rate",
            "momentum": RECIPE.momentum,
            "weight_decay": RECIPE.weight_decay,
        },
        "arch_optimizer": {
            "_target_": "torch.optim.Adam",
            "params": "$list(@network.arch_parameters())",
            "lr": "@arch_learning_rate",
            "betas": list(RECIPE.arch_betas),
            # no weight decay on α/β: the data gradient reaching α is proportional to the cells' γ (≈ 0 early
            # on), a coupled decay is not, so decay would decide what the data cannot yet
            "weight_decay": RECIPE.arch_weight_decay,
        },
    }


def _search_train(spec: BundleSpec) -> dict[str, Any]:
    """``train``: the search-train and search-val loaders, the pruning handler (the first handler) and the engine."""
    return {
        **train_preprocessing(spec),  # off in the search (augment false), as in the paper; a 3-D patch is still cropped
        **loader_config(spec, "train", "search_train", False),
        **loader_config(spec, "train", "search_val", False, data="@train#dataset#data", name="arch_dataset"),
        "inferer": {"_target_": "SimpleInferer"},
        "handlers": [
            {
                "_target_": "iac_components.search.JSDPruningHandler",
                **{k: f"@pruning#{k}" for k in ("epsilon", "window", "patience", "margin", "keep_schedule", "settle",
                                                "interval", "control")},
                "prune": "@prune",
                "genotype_path": "@genotype_file",
                "history_path": "@history_file",
                "identity": f"${RUNTIME}.search_identity(@data, @seed, @ops, @cell_channels, @partial_k)",
            },
            {"_target_": "StatsHandler", "tag_name": "search_loss", "output_transform": "$lambda output: output['loss']"},
        ],
        "trainer": {
            "_target_": "iac_components.search.IACSearchTrainer",
            "device": "@device",
            "max_epochs": "@epochs",
            "train_data_loader": "@train#dataloader",
            "val_data_loader": "@train#arch_dataloader",
            "network": "@network",
            "optimizer": "@optimizer",
            "arch_optimizer": "@arch_optimizer",
            "loss_function": "@loss",
            "inferer": "@train#inferer",
            "warmup_steps": "@warmup_steps",
            "train_handlers": "@train#handlers",
            "amp": "@amp",
            "amp_dtype": "@amp_dtype",
            "seed": "@seed",
            "decollate": False,
        },
    }


def _search_checkpoints() -> dict[str, Any]:
    """The search's checkpoint every epoch (with the pruning state) and ``--resume true`` from the newest one."""
    save_dict = {
        "pruning": "@train#handlers#0",
        "network": "@network",
        "optimizer": "@optimizer",
        "arch_optimizer": "@arch_optimizer",
        "trainer": "@train#trainer",
    }
    return {
        # the saver is attached in `run`, after the pruning handler, so each checkpoint holds its epoch's pruning
        "checkpoint": {
            "_target_": "CheckpointSaver",
            "save_dir": "$@output_dir + '/search_checkpoints'",
            "save_dict": save_dict,
            "save_interval": 1,
            "n_saved": 1,
        },
        "resume_from": "$(sorted(glob.glob(@output_dir + '/search_checkpoints/*.pt'), key=os.path.getmtime) or [''])[-1]",
        "checkpoint_loader": {
            "_target_": "CheckpointLoader",
            "_disabled_": f"$not {BOOL}(@resume)",
            "load_path": "@resume_from",
            "load_dict": save_dict,
            "map_location": "@device",
        },
    }


#: U-Nets without cells that the paper compares against: attention gates and dense (nested) skips.
COMPARISON_BASELINES = ("attention_unet", "unetplusplus")


def _comparison_backbone(spec: BundleSpec, name: str) -> dict[str, Any]:
    return {
        "_target_": "iac_components.networks.build_backbone",
        "name": name,
        "in_channels": "@num_channels",
        "out_channels": "@num_classes",
        **({"spatial_dims": 3} if spec.volumetric else {}),
    }


def comparison_baseline_config(spec: BundleSpec, name: str) -> dict[str, Any]:
    """``baseline_<name>.json``: merged over ``train.json`` (``--config_file "['train.json', 'baseline_<name>.json']"``),
    it trains that U-Net on the same data, folds and recipe and saves ``baseline_<name>.pt``; ``evaluate.json``
    then reports it beside the others."""
    loss = loss_config(spec)
    if name == "unetplusplus" and loss.get("_target_") != "iac_components.networks.StackedDeepSupervisionLoss":
        loss = {"_target_": "iac_components.networks.StackedDeepSupervisionLoss", "loss": loss}
    return {
        "network_def": _comparison_backbone(spec, name),
        "loss": loss,
        "validate#handlers#1#key_metric_filename": f"baseline_{name}.pt",
    }


def evaluate_config(spec: BundleSpec) -> dict[str, Any]:
    """Patient-level Dice/HD95 on the test patients in the original grid: the IAC model (``model.pt``) and,
    when present, the baseline (``baseline.pt``), with their paired comparison."""
    models = (
        "${'iac': (@network_def, @ckpt_dir + '/model.pt'), 'baseline': (@baseline_def, @ckpt_dir + '/baseline.pt'), "
        + ", ".join(f"'{b}': (@{b}_def, @ckpt_dir + '/baseline_{b}.pt')" for b in COMPARISON_BASELINES)
        + "}"
    )
    return {
        "imports": IMPORTS,
        **paths_config(spec),
        "fold": "test",
        "save_predictions": False,
        **({"sw_batch_size": 1} if spec.volumetric else {}),
        "force_geometry": False,
        "genotype_file": "$@ckpt_dir + '/genotype.json'",
        "cell_channels": None,  # None: the width model.pt was retrained with (its record), else genotype.json's
        **data_config(spec),
        "backbone": backbone_config(spec),
        "network_def": {
            "_target_": f"{RUNTIME}.fixed_network",
            "backbone": "@backbone",
            "genotype": "@genotype_file",
            "run_first": run_first("search"),
            "cell_channels": "@cell_channels",
            "checkpoint": "$@ckpt_dir + '/model.pt'",  # its record says which cells the weights were trained with
        },
        "baseline_def": backbone_config(spec),
        **{f"{b}_def": _comparison_backbone(spec, b) for b in COMPARISON_BASELINES},
        "models": models,
        # a 3-D bundle predicts a volume by sliding windows of its patch (the 2-D ones: slice by slice)
        **({"inferer": volume_inferer(spec, sw_batch_size="@sw_batch_size")} if spec.volumetric else {}),
        "initialize": _checks(spec),
        "run": [
            f"${RUNTIME}.evaluate_models(@models, @data, @output_dir + '/evaluation', fold=@fold, device=@device, "
            "save_predictions=@save_predictions, force_geometry=@force_geometry"
            + (", inferer=@inferer)" if spec.volumetric else ")")
        ],
        "finalize": [],
    }
