"""The bundle template: every config file of one bundle, as dicts (:func:`render`), from the workflow builders
(:mod:`.training_configs`, :mod:`.inference_config`, :mod:`.metadata`) and the pieces they share
(:mod:`.config_parts`). :mod:`.generator` writes them to ``bundles/``.
"""

from __future__ import annotations

from typing import Any

from iac_components.bundles.config_parts import BUNDLE_ROOT
from iac_components.bundles.inference_config import inference_config
from iac_components.bundles.metadata import metadata
from iac_components.bundles.multi_gpu import MULTI_GPU_WORKFLOWS, multi_gpu_config
from iac_components.bundles.overlays import CHAINS, merge, overlay_of
from iac_components.bundles.table import BundleSpec
from iac_components.bundles.training_configs import (
    COMPARISON_BASELINES,
    comparison_baseline_config,
    evaluate_config,
    finetune_config,
    retrain_config,
    search_config,
    train_config,
)

__all__ = ["BUNDLE_ROOT", "WORKFLOWS", "render"]

WORKFLOWS = {
    "train": train_config,
    "search": search_config,
    "retrain": retrain_config,
    "evaluate": evaluate_config,
    "inference": inference_config,
}


def render(spec: BundleSpec, whole: bool = False) -> dict[str, dict[str, Any]]:
    """Every config file of bundle ``spec``: ``{file name: config}``. The training workflows are overlays on
    ``train.json`` (:mod:`.overlays`); ``whole=True`` gives each workflow whole instead (as MONAI merges it)."""
    files = {f"{name}.json": fn(spec) for name, fn in WORKFLOWS.items()}
    for b in COMPARISON_BASELINES:
        files[f"baseline_{b}.json"] = comparison_baseline_config(spec, b)
    files["finetune.json"] = finetune_config(spec)  # an overlay on retrain.json, not a workflow of its own
    for w in MULTI_GPU_WORKFLOWS:  # overlays for torchrun, the model-zoo way
        files[f"multi_gpu_{w}.json"] = multi_gpu_config(spec, w)
    if not whole:
        # each key in one file: every whole workflow cut down to what its chain's files do not already say
        for name in [n for n in files if n in CHAINS and n.removesuffix(".json") in WORKFLOWS]:
            files[name] = overlay_of(files[name], merge([files[b] for b in CHAINS[name]]))
    files["metadata.json"] = metadata(spec)
    return files
