"""What a trained model carries beside its weights (:class:`ModelRecord`: preprocessing and cells) and what a bundle
reads back from it: the deployed model and its geometry."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from iac_components.bundles.bundle_data import BundleData, cached_geometry
from iac_components.bundles.errors import fail

__all__ = ["MODEL_RECORD_KEY", "ModelRecord", "deployed_geometry", "deployed_model", "model_record", "release_preprocessing"]

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
    (:func:`fixed_network` ``checkpoint=``), whatever genotype.json says about the search's width. A 3-D bundle's
    ``patch_size`` is recorded too: inference, export and fine-tuning run at the patch the model was trained on."""

    def __init__(self, network: nn.Module, data: BundleData, ckpt_dir: str, patch_size: Any = None) -> None:
        from iac_components.distributed import unwrap

        self.network, self.preprocessing = unwrap(network), release_preprocessing(data.manifest)
        if patch_size is not None:
            self.preprocessing["patch_size"] = [int(v) for v in patch_size]
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


def deployed_model(ckpt_dir: str) -> str:
    """The model a fine-tune starts from: ``<ckpt_dir>/model.pt`` (a retrain's checkpoint) or, in a release that
    ships TorchScript only, ``<ckpt_dir>/model.ts``."""
    for name in ("model.pt", "model.ts"):
        path = os.path.join(str(ckpt_dir), name)
        if os.path.isfile(path):
            return path
    raise fail(f"no model to fine-tune in {ckpt_dir} (model.pt or model.ts): run configs/retrain.json first, or "
                "download a release of this bundle")


def deployed_geometry(ckpt_dir: str, cache_dir: str) -> dict[str, list]:
    """``spacing`` and ``spatial_size`` the deployed model was trained with: from the release's
    ``<ckpt_dir>/manifest.json``, else from the prepared cache (empty: the dataset's defaults), and a 3-D model's
    ``patch_size`` (from ``<ckpt_dir>/manifest.json``). A fine-tune on new data must preprocess as the model was
    trained, not as the new data's own median would say."""
    from iac_components.bundles.bundle_data import recorded_patch

    patch = recorded_patch(ckpt_dir)
    for folder in (ckpt_dir, cache_dir):
        geometry = cached_geometry(str(folder))
        if geometry:
            return {**geometry, **patch}
    return patch
