"""The bundle template: one function per workflow file, each returning the config of one bundle as a dict.

Every workflow file stands alone (``python -m monai.bundle run --config_file <bundle>/configs/search.json``
needs no other config), and the pieces they share are written once here. Each file reads top to bottom as in
the MONAI model zoo: paths and devices, data, network, loss, optimisers, then the ``train`` / ``validate``
sections (or the search's), and ``initialize`` / ``run`` / ``finalize``.

``inference.json`` holds only MONAI and torch targets outside ``network_def``, which it switches off
(``_disabled_``) when it runs on ``models/model.ts``: the exported bundle then needs no ``iac_components``.
"""

from __future__ import annotations

from typing import Any

from iac_components import __version__
from iac_components.bundles.table import BundleSpec
from iac_components.data.settings import get_settings
from iac_components.data.transforms import label_to_values_config, preprocessing_config
from iac_components.ops import DEFAULT_OPS

__all__ = ["BUNDLE_ROOT", "WORKFLOWS", "render"]

# `bundle_root` is the folder above `configs/` of the config file being run, found from the caller's frames
# (`ConfigWorkflow.config_root_path` for `run`, the `config_file` argument for `ckpt_export` and
# `verify_net_in_out`), so every command works from any directory; `--bundle_root` overrides it.
BUNDLE_ROOT = (
    "$str(next(iter([d.parent if d.name == 'configs' else d for d in ["
    "__import__('pathlib').Path(c).resolve().parent if r is None else __import__('pathlib').Path(r).resolve() "
    "for r, c in [(getattr(f.frame.f_locals.get('self'), '__dict__', {}).get('config_root_path'), "
    "(lambda c: c[0] if isinstance(c, (list, tuple)) and c else c)(f.frame.f_locals.get('config_file'))) "
    "for f in __import__('inspect').stack(0)] if r is not None or isinstance(c, str)]]), '.'))"
)

RUNTIME = "iac_components.bundles.runtime"

#: The versions the collection was generated and tested with (metadata.json); fixed here, not read from the
#: environment, so that the generator's output does not depend on what happens to be installed.
TESTED_VERSIONS = {
    "monai": "1.6.1",
    "torch": "2.14.1",
    "numpy": "2.4.6",
    "pytorch-ignite": "0.5.5",
    "nibabel": "5.4.2",
    "torchvision": "0.29.1",
    "fire": "0.7.1",
}
BOOL = RUNTIME + ".as_bool"


def _settings(spec: BundleSpec):
    return get_settings(spec.dataset.adapter)


def _command(workflow: str) -> str:
    return f"$'python -m monai.bundle run --config_file ' + @bundle_root + '/configs/{workflow}.json'"


def _paths(spec: BundleSpec) -> dict[str, Any]:
    s = _settings(spec)
    return {
        "bundle_root": BUNDLE_ROOT,
        "dataset": spec.dataset.adapter,
        "dataset_dir": spec.dataset.default_dir,
        "cache_dir": "$@bundle_root + '/cache'",
        "ckpt_dir": "$@bundle_root + '/models'",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "amp": True,
        "seed": 0,
        # the folds follow their own seed, not `seed`: changing the training seed between workflows must not move
        # patients between train and test (a search with --seed 1 over a baseline trained with --seed 0)
        "split_seed": 0,
        "spacing": list(s.spacing) if s.spacing else None,
        "spatial_size": list(s.spatial_size) if s.spatial_size else None,
        "num_workers": 4,
    }


def _data() -> dict[str, Any]:
    return {
        "data": {
            "_target_": f"{RUNTIME}.BundleData",
            "dataset": "@dataset",
            "dataset_dir": "@dataset_dir",
            "cache_dir": "@cache_dir",
            "bundle_root": "@bundle_root",
            "split_seed": "@split_seed",
            "spacing": "@spacing",
            "spatial_size": "@spatial_size",
        },
        "num_channels": "$@data.num_channels",
        "num_classes": "$@data.num_classes",
    }


def _backbone(spec: BundleSpec) -> dict[str, Any]:
    kwargs = {
        k: ("$@data.spatial_size" if v == "@spatial_size" else "$@data.spacing" if v == "@spacing" else v)
        for k, v in spec.backbone.kwargs.items()
    }
    return {
        "_target_": "iac_components.networks.build_backbone",
        "name": spec.backbone.backbone,
        "in_channels": "@num_channels",
        "out_channels": "@num_classes",
        **kwargs,
    }


def _loss(spec: BundleSpec) -> dict[str, Any]:
    dice_ce = {"_target_": "DiceCELoss", "to_onehot_y": True, "softmax": True, "squared_pred": True, "batch": True}
    if spec.backbone.deep_supervision:
        return {"_target_": "iac_components.networks.StackedDeepSupervisionLoss", "loss": dice_ce}
    return dice_ce


def _slice_loader(section: str, fold: str, augment: str | bool, shuffle: bool = True) -> dict[str, Any]:
    return {
        "dataset": {
            "_target_": "iac_components.data.SliceDataset",
            "manifest": "$@data.manifest",
            "splits": "$@data.splits",
            "fold": fold,
            "augment": augment,
        },
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": f"@{section}#dataset",
            "batch_size": "@batch_size",
            "shuffle": shuffle,
            "drop_last": True,
            "num_workers": "@num_workers",
            "generator": "$torch.Generator()",
        },
    }


def _validate(best_file: str) -> dict[str, Any]:
    """Patient-level validation for checkpoint selection: whole preprocessed volumes, predicted slice-wise,
    Dice per volume (empty classes by the BraTS convention), the best saved as ``best_file``."""
    return {
        "dataset": {
            "_target_": "iac_components.data.VolumeDataset",
            "manifest": "$@data.manifest",
            "splits": "$@data.splits",
            "fold": "validation",
        },
        "dataloader": {"_target_": "DataLoader", "dataset": "@validate#dataset", "batch_size": 1, "num_workers": 0},
        "inferer": {"_target_": "SliceInferer", "roi_size": "$@data.spatial_size", "spatial_dim": 2, "sw_batch_size": "@batch_size"},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "AsDiscreted", "keys": ["pred", "label"], "argmax": [True, False], "to_onehot": "@num_classes"}
            ],
        },
        "handlers": [
            {"_target_": "StatsHandler", "iteration_log": False},
            {
                "_target_": "CheckpointSaver",
                "save_dir": "@ckpt_dir",
                "save_dict": {"model": "@network"},
                "save_key_metric": True,
                "key_metric_filename": best_file,
            },
        ],
        "key_metric": {
            "val_mean_dice": {
                "_target_": "IgniteMetricHandler",
                "metric_fn": {"_target_": "DiceMetric", "include_background": False, "ignore_empty": False},
                "output_transform": "$monai.handlers.from_engine(['pred', 'label'])",
            }
        },
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@validate#dataloader",
            "network": "@network",
            "inferer": "@validate#inferer",
            "postprocessing": "@validate#postprocessing",
            "key_val_metric": "@validate#key_metric",
            "val_handlers": "@validate#handlers",
            "decollate": True,
        },
    }


# MONAI binds `import a.b` to the name "a.b": import the package too, so `iac_components.x.y` resolves
_IMPORTS = [
    "$import glob",
    "$import os",
    "$import torch",
    "$import monai",
    "$import iac_components",
    f"$import {RUNTIME}",
    "$import iac_components.networks",
]


def _supervised(spec: BundleSpec, network_def: dict[str, Any], epochs: int, lr: float, best_file: str) -> dict[str, Any]:
    """``train.json`` and ``retrain.json``: supervised training on the train patients (search-train and search-val)
    with patient-level validation; the best checkpoint by validation Dice is ``best_file``."""
    return {
        "imports": _IMPORTS,
        **_paths(spec),
        "epochs": epochs,
        "val_interval": 1,
        "batch_size": spec.dataset.batch_size,
        "learning_rate": lr,
        "augment": spec.dataset.augment,
        **_data(),
        "backbone": _backbone(spec),
        "network_def": network_def,
        "network": "$@network_def.to(@device)",
        "loss": _loss(spec),
        "optimizer": {
            "_target_": "torch.optim.AdamW",
            "params": "$[p for p in @network.parameters() if p.requires_grad]",
            "lr": "@learning_rate",
            "weight_decay": 1e-5,
        },
        "lr_scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "optimizer": "@optimizer", "T_max": "@epochs"},
        "train": {
            **_slice_loader("train", "train", f"${BOOL}(@augment)"),
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
                "seed": "@seed",
                "decollate": False,
            },
        },
        "validate": _validate(best_file),
        "initialize": ["$monai.utils.set_determinism(seed=@seed)"],
        "run": ["$@train#trainer.run()"],
        "finalize": [],
    }


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
        "run_first": _command("search"),
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
    return _insert_after(config, "augment", extra)


def search_config(spec: BundleSpec) -> dict[str, Any]:
    """The IAC search on the frozen baseline, with the JSD pruning handler (``--prune false``: full search)."""
    save_dict = {
        "pruning": "@pruning",
        "network": "@network",
        "optimizer": "@optimizer",
        "arch_optimizer": "@arch_optimizer",
        "trainer": "@trainer",
    }
    run = [
        "$@checkpoint.attach(@trainer)",
        f"$@checkpoint_loader.attach(@trainer) if {BOOL}(@resume) else None",
        "$@trainer.run()",
    ]
    return {
        "imports": _IMPORTS,
        **_paths(spec),
        "epochs": spec.dataset.epochs["search"],
        "warmup_steps": spec.dataset.warmup_steps,
        "batch_size": spec.dataset.batch_size,
        "learning_rate": 0.025,
        "arch_learning_rate": 6e-4,
        "prune": True,
        "resume": False,
        "baseline_ckpt": "$@ckpt_dir + '/baseline.pt'",
        "genotype_file": "$@ckpt_dir + '/genotype.json'",
        "history_file": "$@output_dir + '/search_history.json'",
        "ops": list(DEFAULT_OPS),
        "cell_channels": 32,
        "partial_k": 4,
        "share_genotype": True,
        **_data(),
        "backbone": _backbone(spec),
        "network_def": {
            "_target_": f"{RUNTIME}.search_network",
            "backbone": "@backbone",
            "baseline_checkpoint": "@baseline_ckpt",
            "run_first": _command("train"),
            "ops": "@ops",
            "cell_channels": "@cell_channels",
            "partial_k": "@partial_k",
            "share_genotype": "@share_genotype",
        },
        "network": "$@network_def.to(@device)",
        "loss": _loss(spec),
        "optimizer": {
            "_target_": "torch.optim.SGD",
            "params": "$list(@network.weight_parameters())",
            "lr": "@learning_rate",
            "momentum": 0.9,
            "weight_decay": 3e-4,
        },
        "arch_optimizer": {
            "_target_": "torch.optim.Adam",
            "params": "$list(@network.arch_parameters())",
            "lr": "@arch_learning_rate",
            "betas": [0.5, 0.999],
            # no weight decay on α/β: the data gradient reaching α is proportional to the cells' γ (≈ 0 early
            # on), a coupled decay is not, so decay would decide what the data cannot yet
            "weight_decay": 0.0,
        },
        "search_train": _slice_loader("search_train", "search_train", False),
        "search_val": _slice_loader("search_val", "search_val", False),
        "pruning": {
            "_target_": "iac_components.search.JSDPruningHandler",
            "epsilon": 0.1,
            "window": 32,
            "patience": 2,
            "margin": 1.0,
            "keep_schedule": [4, 2, 1],
            "interval": None,
            "prune": "@prune",
            "genotype_path": "@genotype_file",
            "history_path": "@history_file",
        },
        "handlers": [
            "@pruning",
            {"_target_": "StatsHandler", "tag_name": "search_loss", "output_transform": "$lambda output: output['loss']"},
        ],
        "trainer": {
            "_target_": "iac_components.search.IACSearchTrainer",
            "device": "@device",
            "max_epochs": "@epochs",
            "train_data_loader": "@search_train#dataloader",
            "val_data_loader": "@search_val#dataloader",
            "network": "@network",
            "optimizer": "@optimizer",
            "arch_optimizer": "@arch_optimizer",
            "loss_function": "@loss",
            "warmup_steps": "@warmup_steps",
            "train_handlers": "@handlers",
            "amp": "@amp",
            "seed": "@seed",
            "decollate": False,
        },
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
        "initialize": ["$monai.utils.set_determinism(seed=@seed)"],
        "run": run,
        "search": run,
        "finalize": [],
    }


#: U-Nets without cells that the paper compares against: attention gates and dense (nested) skips.
COMPARISON_BASELINES = ("attention_unet", "unetplusplus")


def _comparison_backbone(name: str) -> dict[str, Any]:
    return {
        "_target_": "iac_components.networks.build_backbone",
        "name": name,
        "in_channels": "@num_channels",
        "out_channels": "@num_classes",
    }


def comparison_baseline_config(spec: BundleSpec, name: str) -> dict[str, Any]:
    """``baseline_<name>.json``: merged over ``train.json`` (``--config_file "['train.json', 'baseline_<name>.json']"``),
    it trains that U-Net on the same data, folds and recipe and saves ``baseline_<name>.pt``; ``evaluate.json``
    then reports it beside the others."""
    loss = _loss(spec)
    if name == "unetplusplus" and loss.get("_target_") != "iac_components.networks.StackedDeepSupervisionLoss":
        loss = {"_target_": "iac_components.networks.StackedDeepSupervisionLoss", "loss": loss}
    return {
        "network_def": _comparison_backbone(name),
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
        "imports": _IMPORTS,
        **_paths(spec),
        "fold": "test",
        "save_predictions": False,
        "genotype_file": "$@ckpt_dir + '/genotype.json'",
        "cell_channels": None,  # None: the width genotype.json records (the search's)
        **_data(),
        "backbone": _backbone(spec),
        "network_def": {
            "_target_": f"{RUNTIME}.fixed_network",
            "backbone": "@backbone",
            "genotype": "@genotype_file",
            "run_first": _command("search"),
            "cell_channels": "@cell_channels",
        },
        "baseline_def": _backbone(spec),
        **{f"{b}_def": _comparison_backbone(b) for b in COMPARISON_BASELINES},
        "models": models,
        "initialize": [],
        "run": [
            f"${RUNTIME}.evaluate_models(@models, @data, @output_dir + '/evaluation', fold=@fold, device=@device, "
            "save_predictions=@save_predictions)"
        ],
        "finalize": [],
    }


def inference_config(spec: BundleSpec) -> dict[str, Any]:
    """3-D NIfTI in (a file or a folder), 3-D label map out in the input's grid; see the module docstring."""
    s = _settings(spec)
    channels = len(s.channel_names) or 1
    classes = len(s.class_names) or 2
    custom = spec.dataset.key == "custom"
    parsed = "$[monai.bundle.ConfigParser(t).get_parsed_content() for t in "
    if custom:
        # the user's dataset: channels, classes, label values and the chain prepare resolved (spacing, size,
        # normalisation) are in the cache manifest
        chain: Any = parsed + "@manifest['transforms'][@modality]['image']]"
        to_values: list[dict[str, Any]] = [
            {"_target_": "Compose", "transforms": parsed + "@manifest['postprocessing']]"}
        ]
    else:
        # spacing and slice size are config keys (as in train.json), so `--spacing` / `--spatial_size` given to
        # training apply to inference too
        chain = preprocessing_config(s, "CT" if spec.dataset.modality == "CT" else "MRI", label_key=None)
        for step in chain:
            if step["_target_"] == "Spacingd":
                step["pixdim"] = "$[float(v) for v in @spacing] + [-1.0]"
            elif "spatial_size" in step:
                step["spatial_size"] = "$[int(v) for v in @spatial_size] + [-1]"
        to_values = label_to_values_config(s) if list(s.label_values) != list(range(len(s.label_values))) else []
    # nnU-Net's naming: CASE_0000.nii.gz, CASE_0001.nii.gz, ... are the channels of CASE
    multi = (
        "[{'image': [os.path.join(@input, c + '_%04d.nii.gz' % k) for k in range(@in_channels)]} for c in "
        "sorted({os.path.basename(f)[:-12] for f in glob.glob(os.path.join(@input, '*_0000.nii.gz'))})] "
        "if os.path.isdir(@input) else [{'image': @input}]"
    )
    single = (
        "[{'image': f} for f in sorted(glob.glob(os.path.join(@input, '*.nii.gz')) + "
        "glob.glob(os.path.join(@input, '*.nii')))] if os.path.isdir(@input) else [{'image': @input}]"
    )
    datalist = f"$({multi}) if @in_channels > 1 else ({single})" if custom else f"${multi if channels > 1 else single}"
    # a case in nnU-Net's naming (CASE_0000.nii.gz, ...) is written as CASE.nii.gz
    name_formatter = (
        {"output_name_formatter": "$lambda meta, saver: {'subject': os.path.basename(str(meta['filename_or_obj']))"
         ".replace('_0000.nii', '.nii'), 'idx': None}"}
        if custom or channels > 1 else {}
    )  # fmt: skip
    # "@spatial_size" / "@spacing" refer to the keys below, as the network of train.json follows the data's
    backbone_kwargs = dict(spec.backbone.kwargs)
    config: dict[str, Any] = {
        # no `__import__` in an expression with a reference: MONAI parses every expression that contains "import"
        # as Python before resolving it, and `@x` is a syntax error there
        "imports": ["$import glob", "$import json", "$import os", "$import torch", "$import monai"],
        "bundle_root": BUNDLE_ROOT,
        "ckpt_dir": "$@bundle_root + '/models'",
        "cache_dir": "$@bundle_root + '/cache'",
        "output_dir": "$@bundle_root + '/eval/predictions'",
        "input": "$@bundle_root + '/sample'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "in_channels": channels,
        "out_channels": classes,
        "window_slices": spec.dataset.window_slices,
        "torchscript": "auto",
        "use_torchscript": (
            "$str(@torchscript).lower() in ('true', '1', 'yes') or "
            "(str(@torchscript).lower() == 'auto' and not os.path.isfile(@ckpt_dir + '/model.pt'))"
        ),
        "network_def": {
            "_target_": f"{RUNTIME}.inference_network",
            # off only when model.ts is there to be used: then iac_components is never imported. ckpt_export after a
            # training with another --ckpt_dir (no model.pt here, no model.ts yet) gets the eager network, or
            # fixed_network's one-line error naming the missing genotype.json, never a None network
            "_disabled_": "$@use_torchscript and os.path.isfile(@ckpt_dir + '/model.ts')",
            "backbone": spec.backbone.backbone,
            "in_channels": "@in_channels",
            "out_channels": "@out_channels",
            "genotype": "$@ckpt_dir + '/genotype.json'",
            "backbone_kwargs": backbone_kwargs,
            "cell_kwargs": {},  # the cell's width comes from genotype.json
        },
        "network": (
            "$torch.jit.load(@ckpt_dir + '/model.ts', map_location=@device) if @use_torchscript "
            "else @network_def.to(@device)"
        ),
        "datalist": datalist,
        "preprocessing": {"_target_": "Compose", "transforms": chain},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": [-1, -1, "@window_slices"],
            "sw_batch_size": 1,
            "overlap": 0.0,
        },
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                {
                    "_target_": "Invertd",
                    "keys": "pred",
                    "transform": "@preprocessing",
                    "orig_keys": "image",
                    "nearest_interp": True,
                    "to_tensor": True,
                },
                *to_values,
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "output_dir": "@output_dir",
                    "output_postfix": "",
                    "separate_folder": False,
                    "resample": False,
                    "output_dtype": "$torch.uint8",
                    **name_formatter,
                },
            ],
        },
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "_disabled_": "@use_torchscript",
                "load_path": "$@ckpt_dir + '/model.pt'",
                "load_dict": {"model": "@network"},
                "map_location": "@device",
            },
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
        },
        "initialize": [],
        "run": ["$@evaluator.run()"],
        "finalize": [],
    }
    if custom:
        # without a cache (a fresh bundle: verify_net_in_out, ckpt_export) the metadata's 1 channel, 2 classes
        path = "@cache_dir + '/manifest.json'"
        config["in_channels"] = "$len(@manifest['channel_names']) if @manifest else 1"
        config["out_channels"] = "$len(@manifest['class_names']) if @manifest else 2"
        manifest = f"$json.load(open({path})) if os.path.isfile({path}) else None"
        config = _insert_after(config, "cache_dir", {"manifest": manifest})
        config = _insert_after(config, "out_channels", {"modality": "$@manifest['modality']"})
    else:
        sizes = {"spacing": list(s.spacing), "spatial_size": list(s.spatial_size)}
        config = _insert_after(config, "out_channels", sizes)
    return config


def metadata(spec: BundleSpec) -> dict[str, Any]:
    """``configs/metadata.json`` (MONAI bundle specification)."""
    s = _settings(spec)
    channels = list(s.channel_names) or ["image"]
    classes = list(s.class_names) or ["background", "foreground"]
    modality = {"MR": "MR", "CT": "CT"}.get(spec.dataset.modality, "MR")
    shape = ["32*n", "32*n", "*"]
    if spec.backbone.backbone == "nnunet":
        # the DynUNet pads to its size multiple m, and its bottleneck (instance norm) needs more than one pixel:
        # inputs of 2m or more
        from iac_components.networks.nnunet import nnunet_2d_plan

        m = nnunet_2d_plan(s.spatial_size, s.spacing).divisible_by
        shape = [f"{2 * m[0]}*n", f"{2 * m[1]}*n", "*"]
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json",
        "version": "0.1.0",
        "changelog": {"0.1.0": "first release: baseline, IAC-LTH search, retrain, evaluation, 3-D inference"},
        "monai_version": TESTED_VERSIONS["monai"],
        "pytorch_version": TESTED_VERSIONS["torch"],
        "numpy_version": TESTED_VERSIONS["numpy"],
        "required_packages_version": {
            "iac_components": __version__,
            **{k: TESTED_VERSIONS[k] for k in ("pytorch-ignite", "nibabel", "torchvision", "fire")},
        },
        # no `optional_packages_version`: MONAI >= 1.5 renames it to `required_packages_version` on load,
        # replacing the list above
        "name": f"IAC-LTH {spec.dataset.title} - {spec.backbone.title}",
        "task": f"2-D slice-wise segmentation of {spec.dataset.title} with Implantable Adaptive Cells",
        "description": (
            f"{spec.backbone.title} with IAC cells in its skip connections, searched with IAC-LTH (JSD progressive "
            "pruning) on the trained, frozen U-Net, then retrained. Takes a 3-D volume and predicts it slice by slice."
        ),
        "authors": "IAC-LTH bundle collection (iac_components)",
        "copyright": "Copyright (c) the iac_components authors",
        "data_source": spec.dataset.source,
        "data_type": "nibabel",
        "image_classes": spec.dataset.image_description,
        "label_classes": ", ".join(f"{i}: {c}" for i, c in enumerate(classes)),
        "pred_classes": f"{len(classes)} channels of logits, one per class: " + ", ".join(classes),
        "eval_metrics": {"mean_dice": None},
        "intended_use": "Research only; not for clinical use.",
        "references": [
            "Benedykciuk E., Wojcik G. M., Denkowski M. Efficient Search of Implantable Adaptive Cells for Medical "
            "Image Segmentation. arXiv:2604.14849 (2026).",
        ],
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield" if modality == "CT" else "magnitude",
                    "modality": modality,
                    "num_channels": len(channels),
                    "spatial_shape": shape,
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": False,
                    "channel_def": {str(i): c for i, c in enumerate(channels)},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": len(classes),
                    "spatial_shape": shape,
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": False,
                    "channel_def": {str(i): c for i, c in enumerate(classes)},
                }
            },
        },
    }


def _insert_after(config: dict[str, Any], key: str, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        out[k] = v
        if k == key:
            out.update(extra)
    return out


WORKFLOWS = {
    "train": train_config,
    "search": search_config,
    "retrain": retrain_config,
    "evaluate": evaluate_config,
    "inference": inference_config,
}


def render(spec: BundleSpec) -> dict[str, dict[str, Any]]:
    """Every config file of bundle ``spec``: ``{file name: config}``."""
    files = {f"{name}.json": fn(spec) for name, fn in WORKFLOWS.items()}
    for b in COMPARISON_BASELINES:
        files[f"baseline_{b}.json"] = comparison_baseline_config(spec, b)
    files["metadata.json"] = metadata(spec)
    return files
