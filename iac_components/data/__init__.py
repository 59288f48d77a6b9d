"""Datasets: official-layout adapters, the one preprocessing chain, the slice cache, splits, slice datasets,
patient-level evaluation in the original grid, and synthetic stand-ins.

Typical use::

    from iac_components.data import synthesize, prepare_dataset, make_splits, SliceDataset, VolumeDataset

    raw = synthesize("acdc", "raw/acdc", patients=20)
    manifest = prepare_dataset("acdc", raw, "cache/acdc", spacing=(2.0, 2.0), spatial_size=(80, 80))
    splits = make_splits(manifest, seed=0)                 # writes cache/acdc/splits.json
    train = SliceDataset("cache/acdc", fold="train", augment=True)
    val = VolumeDataset("cache/acdc", fold="validation")

Heavy modules (torch datasets, evaluation) are imported on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from iac_components.data.base import DATASET_NAMES, Case, DatasetAdapter, DatasetError, dataset_names, get_adapter
from iac_components.data.settings import DEFAULT_SETTINGS, DatasetSettings, get_settings
from iac_components.data.transforms import (
    augmentation_config,
    instantiate_transforms,
    label_to_values_config,
    preprocessing_config,
)

__all__ = [
    "Case",
    "DatasetAdapter",
    "DatasetError",
    "DATASET_NAMES",
    "dataset_names",
    "get_adapter",
    "DatasetSettings",
    "DEFAULT_SETTINGS",
    "get_settings",
    "preprocessing_config",
    "augmentation_config",
    "label_to_values_config",
    "instantiate_transforms",
    "prepare_dataset",
    "load_manifest",
    "chain_config",
    "make_splits",
    "load_splits",
    "fold_cases",
    "SliceDataset",
    "VolumeDataset",
    "PatchDataset",
    "make_slice_sampler",
    "evaluate_patients",
    "synthesize",
    "synth_settings",
]

_LAZY = {
    "prepare_dataset": "prepare",
    "load_manifest": "prepare",
    "chain_config": "prepare",
    "make_splits": "splits",
    "load_splits": "splits",
    "fold_cases": "splits",
    "SliceDataset": "datasets",
    "VolumeDataset": "datasets",
    "PatchDataset": "datasets",
    "make_slice_sampler": "datasets",
    "evaluate_patients": "evaluate",
    "synthesize": "synth",
    "synth_settings": "synth",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"iac_components.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'iac_components.data' has no attribute {name!r}")
