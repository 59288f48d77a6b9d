"""``configs/metadata.json`` (MONAI bundle specification) of a bundle."""

from __future__ import annotations

from typing import Any

from iac_components import __version__
from iac_components.bundles.config_parts import dataset_settings
from iac_components.bundles.table import BundleSpec

__all__ = ["TESTED_VERSIONS", "metadata"]

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


def metadata(spec: BundleSpec) -> dict[str, Any]:
    """``configs/metadata.json`` (MONAI bundle specification)."""
    s = dataset_settings(spec)
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
    if spec.volumetric:  # the 3-D network sees patches (the sliding window's), of any size (it pads to 16)
        shape = list(spec.volume.patch_size)
    how = ("3-D patch-based segmentation" if spec.volumetric else "2-D slice-wise segmentation")
    predicts = ("Takes a 3-D volume and predicts it by overlapping 3-D windows of its training patch." if spec.volumetric
                else "Takes a 3-D volume and predicts it slice by slice.")
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
        "task": f"{how} of {spec.dataset.title} with Implantable Adaptive Cells",
        "description": (
            f"{spec.backbone.title} with IAC cells in its skip connections, searched with IAC-LTH (JSD progressive "
            f"pruning) on the trained, frozen U-Net, then retrained. {predicts}"
        ),
        "authors": "IAC-LTH bundle collection (iac_components)",
        "copyright": "Copyright (c) the iac_components authors",
        "data_source": spec.dataset.source,
        "data_type": "nibabel",
        "image_classes": spec.dataset.image_description,
        "label_classes": ", ".join(f"{i}: {c}" for i, c in enumerate(classes)),
        "pred_classes": f"{len(classes)} channels of logits, one per class: " + ", ".join(classes),
        # no `eval_metrics`: no model trained on the real data is published with the bundle (docs/README.md,
        # "Performance"); a user who trains one records the mean Dice of its evaluation.json here
        "intended_use": "Research only; not for clinical use.",
        # MONAI Label serves the bundle (through the app `iac monailabel app` writes; docs/README.md, "MONAI Label")
        "supported_apps": {"monailabel": "0.8.5"},
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
                    "is_patch_data": spec.volumetric,
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
                    "is_patch_data": spec.volumetric,
                    "channel_def": {str(i): c for i, c in enumerate(classes)},
                }
            },
        },
    }
