"""The pieces every workflow file of a bundle shares, written once: paths and devices, the data, the backbone, the
loss, the slice loaders, patient-level validation, the imports, and the one-line hint of what to run first.

The workflow files themselves are built in :mod:`.training_configs` (train, search, retrain, evaluate, the
comparison baselines), :mod:`.inference_config` and :mod:`.metadata`; :mod:`.template` puts them together.
"""

from __future__ import annotations

from typing import Any

from iac_components.bundles.table import BundleSpec
from iac_components.data.settings import get_settings

__all__ = [
    "BOOL", "BUNDLE_ROOT", "IMPORTS", "RUNTIME", "backbone_config", "data_config", "dataset_settings", "insert_after",
    "loader_config", "loss_config", "paths_config", "patch_check", "patch_loader_config", "run_first", "slice_loader_config",
    "train_preprocessing", "validate_config", "volume_inferer", "volume_keys",
]  # fmt: skip

# `bundle_root` is ".": the current directory, as in the model zoo's template. Every way MONAI resolves a config
# (`monai.bundle run`, `ckpt_export`, `ConfigWorkflow` in a notebook, a plain `ConfigParser`) gives the same answer;
# run from inside the bundle folder, or pass `--bundle_root <bundle>` (outputs go to <bundle_root>/models, /eval,
# /cache). MONAI offers no supported way to find the bundle from `--config_file` alone.
BUNDLE_ROOT = "."

RUNTIME = "iac_components.bundles.runtime"

BOOL = RUNTIME + ".as_bool"
#: First in every workflow's ``initialize``: a misspelt ``--key`` of ``python -m monai.bundle run`` stops the run
#: before any work (:mod:`iac_components.bundles.overrides`).
CHECK_OVERRIDES = "$iac_components.bundles.overrides.check_cli_overrides()"
#: A CUDA device asked for where there is none: one line (plain Python, so inference.json can use it too).
CHECK_DEVICE = (
    "$(_ for _ in ()).throw(SystemExit('error: --device ' + str(@device) + ': no CUDA device is available here (torch "
    "sees none); pass --device cpu, or run where a GPU is')) if str(@device).startswith('cuda') and not "
    "torch.cuda.is_available() else None"
)
#: The same for ``inference.json``, which runs without iac_components from a release: checked where it is installed.
CHECK_OVERRIDES_IF_INSTALLED = (
    "$monai.utils.optional_import('iac_components.bundles.overrides', name='check_cli_overrides')[1] and "
    "monai.utils.optional_import('iac_components.bundles.overrides', name='check_cli_overrides')[0]()"
)


def dataset_settings(spec: BundleSpec):
    return get_settings(spec.dataset.adapter)


def run_first(workflow: str) -> str:
    """The command that makes a workflow's input, for the one-line error when it is missing (with the user's own
    data, folders and geometry: :func:`iac_components.bundles.overrides.run_first_hint`)."""
    return f"$iac_components.bundles.overrides.run_first_hint('{workflow}', @bundle_root)"


def paths_config(spec: BundleSpec) -> dict[str, Any]:
    return {
        "bundle_root": BUNDLE_ROOT,
        "dataset": spec.dataset.adapter,
        "dataset_dir": spec.dataset.default_dir,
        "cache_dir": "$@bundle_root + '/cache'",
        "ckpt_dir": "$@bundle_root + '/models'",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "amp": True,
        # None: fp16 with a grad scaler on CUDA, bf16 on the CPU; "bfloat16" asks for bf16 on CUDA too
        "amp_dtype": None,
        "seed": 0,
        # the folds follow their own seed, not `seed`: changing the training seed between workflows must not move
        # patients between train and test (a search with --seed 1 over a baseline trained with --seed 0)
        "split_seed": 0,
        # fold -> share of the patients (search_train, search_val, validation, test); null: 35/35/10/20 %
        "split_fractions": None,
        # None: the geometry the cache was prepared at (the baseline's), else the dataset's default
        # (iac_components.data.settings); `--spacing` / `--spatial_size` given to train.json carry over
        "spacing": None,
        "spatial_size": None,
        **(volume_keys(spec) if spec.volumetric else {}),
        "num_workers": 4,
    }


def patch_check(spec: BundleSpec) -> list[str]:
    """A 3-D bundle's one-line refusal of a patch its U-Net cannot take (first in ``initialize``; none in 2-D)."""
    return [f"${RUNTIME}.check_patch_size(@patch_size)"] if spec.volumetric else []


def volume_keys(spec: BundleSpec) -> dict[str, Any]:
    """A 3-D bundle's patch: what training and the search crop, and the sliding window of validation, evaluation and
    inference."""
    v = spec.volume
    return {
        "patch_size": list(v.patch_size),
        # patches drawn from each training volume per epoch (an epoch: volumes x this)
        "samples_per_volume": v.samples_per_volume,
        "sw_overlap": v.sw_overlap,
    }


def data_config(
    spec: BundleSpec, datalists: tuple[str, ...] = (), disjoint_search_folds: bool = False
) -> dict[str, Any]:
    """The bundle's data; ``datalists`` names the sections whose ``#dataset#data`` (a datalist of 3-D files, as
    MONAI Label passes it) replaces ``dataset_dir``: ``("train", "validate")`` or ``("train",)``.
    ``disjoint_search_folds``: refuse a datalist too small for different search-train and search-val patients.
    A 3-D bundle's grid (every axis resampled) is its default geometry, used unless given or cached."""
    # both keys always present (None: not used), so that an overlay changes one entry instead of the whole `data`
    refs = {"datalist": "@train#dataset#data" if "train" in datalists else None,
            "val_datalist": "@validate#dataset#data" if "validate" in datalists else None}  # fmt: skip
    return {
        "data": {
            "_target_": f"{RUNTIME}.BundleData",
            "dataset": "@dataset",
            "dataset_dir": "@dataset_dir",
            "cache_dir": "@cache_dir",
            "bundle_root": "@bundle_root",
            "split_seed": "@split_seed",
            "split_fractions": "@split_fractions",
            "spacing": "@spacing",
            "spatial_size": "@spatial_size",
            **refs,
            **({"disjoint_search_folds": True} if disjoint_search_folds else {}),
            **({"default_geometry": _volume_geometry(spec), "patch_size": "@patch_size"} if spec.volumetric else {}),
        },
        "num_channels": "$@data.num_channels",
        "num_classes": "$@data.num_classes",
    }


def _volume_geometry(spec: BundleSpec) -> dict[str, Any]:
    v = spec.volume
    return {"spacing": list(v.spacing) if v.spacing else None,
            "spatial_size": list(v.spatial_size) if v.spatial_size else None}  # fmt: skip


def backbone_config(spec: BundleSpec) -> dict[str, Any]:
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


def loss_config(spec: BundleSpec) -> dict[str, Any]:
    dice_ce = {"_target_": "DiceCELoss", "to_onehot_y": True, "softmax": True, "squared_pred": True, "batch": True}
    if spec.backbone.deep_supervision:
        return {"_target_": "iac_components.networks.StackedDeepSupervisionLoss", "loss": dice_ce}
    return dice_ce


def train_preprocessing(spec: BundleSpec) -> dict[str, Any]:
    """``train#preprocessing``: the per-slice training transforms (MONAI's dictionary transforms), where a zoo user
    looks for them and edits them; the dataset applies them when ``augment`` is on. Everything before them (reading,
    orientation, resampling, normalisation) runs once into the slice cache (``data``, its manifest says how).

    A 3-D bundle adds ``train#sampling``, the patch crop that training and the search always run: padded to the
    patch where a volume is smaller, then MONAI's ``RandCropByPosNegLabeld`` (half the patches centred on a
    foreground voxel, half anywhere), and its ``train#preprocessing`` is the 3-D augmentation."""
    from iac_components.data.transforms import augmentation_config

    if not spec.volumetric:
        return {"preprocessing": {"_target_": "Compose", "transforms": augmentation_config()}}
    keys = ["image", "label"]
    sampling = [
        {"_target_": "SpatialPadd", "keys": keys, "spatial_size": "@patch_size"},
        {"_target_": "RandCropByPosNegLabeld", "keys": keys, "label_key": "label", "spatial_size": "@patch_size",
         "pos": 1, "neg": 1, "num_samples": 1},
    ]  # fmt: skip
    return {
        "sampling": {"_target_": "Compose", "transforms": sampling},
        "preprocessing": {"_target_": "Compose", "transforms": augmentation_config(spatial_dims=3)},
    }


def slice_loader_config(
    section: str, fold: str, augment: str | bool, data: str | None = None, name: str = "dataset"
) -> dict[str, Any]:
    """``<name>`` and its loader (``dataloader``, or ``arch_dataloader`` for ``arch_dataset``): the 2-D slices of
    ``fold``; ``data`` (``#data``) is the datalist of 3-D files when one is given (None: the fold's cases)."""
    loader = "dataloader" if name == "dataset" else name.replace("dataset", "dataloader")
    return {
        name: {
            "_target_": "iac_components.data.SliceDataset",
            "data": data,
            "manifest": "$@data.manifest",
            "splits": "$@data.splits",
            "fold": fold,
            "augment": augment,
        },
        loader: {
            "_target_": "DataLoader",
            "dataset": f"@{section}#{name}",
            # never silently empty: at most the slices there are (a fine-tune on one labelled volume), a one-line
            # error when there are none
            "batch_size": f"${RUNTIME}.loader_batch_size(@{section}#{name}, @batch_size)",
            "shuffle": True,
            "drop_last": True,
            "num_workers": "@num_workers",
            "generator": "$torch.Generator()",
        },
    }


def patch_loader_config(
    section: str, fold: str, augment: str | bool, data: str | None = None, name: str = "dataset"
) -> dict[str, Any]:
    """A 3-D bundle's :func:`slice_loader_config`: ``samples_per_volume`` patches of each volume of ``fold`` per
    epoch, cropped by ``train#sampling`` and augmented by ``augment`` (an expression, or False)."""
    config = slice_loader_config(section, fold, augment, data, name)
    config[name] = {
        "_target_": "iac_components.data.PatchDataset",
        "data": data,
        "manifest": "$@data.manifest",
        "splits": "$@data.splits",
        "fold": fold,
        "sampling": "@train#sampling",
        "augment": augment,
        "samples_per_volume": "@samples_per_volume",
        "seed": "@seed",
    }
    return config


def loader_config(spec: BundleSpec, section: str, fold: str, augment: str | bool, data: str | None = None,
                  name: str = "dataset") -> dict[str, Any]:  # fmt: skip
    """The training loader of a fold: 2-D slices, or a 3-D bundle's patches."""
    make = patch_loader_config if spec.volumetric else slice_loader_config
    return make(section, fold, augment, data, name)


def volume_inferer(spec: BundleSpec, sw_batch_size: str = "@batch_size") -> dict[str, Any]:
    """How a whole volume is predicted: slice-wise (``SliceInferer`` over the slice size), or in a 3-D bundle by
    MONAI's ``SlidingWindowInferer`` over the training patch, Gaussian-weighted where windows overlap."""
    if not spec.volumetric:
        return {"_target_": "SliceInferer", "roi_size": "$@data.spatial_size", "spatial_dim": 2, "sw_batch_size": sw_batch_size}
    return {"_target_": "SlidingWindowInferer", "roi_size": "@patch_size", "sw_batch_size": sw_batch_size,
            "overlap": "@sw_overlap", "mode": "gaussian"}  # fmt: skip


def validate_config(spec: BundleSpec, best_file: str) -> dict[str, Any]:
    """Patient-level validation for checkpoint selection: whole preprocessed volumes, predicted slice-wise (a 3-D
    bundle: by sliding windows), Dice per volume (empty classes by the BraTS convention), the best saved as
    ``best_file``."""
    return {
        "dataset": {
            "_target_": "iac_components.data.VolumeDataset",
            "data": None,
            "manifest": "$@data.manifest",
            "splits": "$@data.splits",
            "fold": "validation",
        },
        "dataloader": {"_target_": "DataLoader", "dataset": "@validate#dataset", "batch_size": 1, "num_workers": 0},
        "inferer": volume_inferer(spec),
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
                "save_dict": {"model": "@network", "iac": "@model_record"},
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
IMPORTS = [
    "$import glob",
    "$import os",
    "$import torch",
    "$import monai",
    "$import iac_components",
    f"$import {RUNTIME}",
    "$import iac_components.bundles.overrides",
    "$import iac_components.networks",
]


def insert_after(config: dict[str, Any], key: str, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        out[k] = v
        if k == key:
            out.update(extra)
    return out
