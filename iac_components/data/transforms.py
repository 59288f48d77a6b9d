"""The one preprocessing chain, as pure-MONAI bundle config, and the 2-D augmentation.

The chain exists once, as a list of MONAI bundle config dicts (``{"_target_": "Orientationd", ...}``, only
MONAI targets), returned by :func:`preprocessing_config`. Prepare, evaluation and the bundle generator all use
this list; :func:`instantiate_transforms` turns it into a ``Compose`` with ``monai.bundle.ConfigParser``, the
same way a bundle's ``inference.json`` does where ``iac_components`` is not installed.

The chain (``image`` is a list of files, one per channel, or one multi-channel file):

1. ``LoadImaged`` with ``ensure_channel_first``; channel files are stacked along axis 0.
2. ``MapLabelValued`` (label only, when the files' label values are not ``0..K-1``, e.g. BraTS 2021's 4).
3. ``Orientationd`` to RAS: axial slices along axis 2.
4. ``Spacingd`` to the in-plane spacing; the slice spacing is kept (``pixdim`` ``-1`` on axis 2), unless the
   spacing has three values (the 3-D bundles resample every axis); bilinear for the image, nearest for the label.
5. ``NormalizeIntensityd(nonzero=True, channel_wise=True)`` for MRI (a mask from the image, never the label),
   ``ScaleIntensityRanged`` (window -> [0, 1], clipped) for CT.
6. ``ResizeWithPadOrCropd`` to ``(H, W, -1)``: in-plane only, every slice kept.

Every spatial step is invertible and tracked on the ``MetaTensor``, so ``Invertd`` maps a prediction in the
preprocessed grid back to the original file's grid. With nearest interpolation the round trip is exact when
the target spacing is not coarser than the file's (each original voxel centre then lands in the preprocessed
voxel that sampled it); a coarser target loses detail that no inverse can restore.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from iac_components.data.settings import DatasetSettings

__all__ = [
    "preprocessing_config",
    "augmentation_config",
    "label_to_values_config",
    "instantiate_transforms",
    "CROP_STEP_TARGET",
]

CROP_STEP_TARGET = "ResizeWithPadOrCropd"
"""The ``_target_`` of the last (in-plane pad/crop) step; prepare checks that it removes no labelled voxel."""


def _as_settings(settings: DatasetSettings | dict[str, Any]) -> DatasetSettings:
    return settings if isinstance(settings, DatasetSettings) else DatasetSettings.from_dict(settings)


def preprocessing_config(
    settings: DatasetSettings | dict[str, Any],
    modality: str,
    image_key: str = "image",
    label_key: str | None = "label",
) -> list[dict[str, Any]]:
    """The preprocessing chain as a list of MONAI bundle config dicts.

    Args:
        settings: resolved dataset settings (``spacing`` and ``spatial_size`` must be set; prepare resolves
            ``None`` values from the data and stores the resolved settings in its manifest).
        modality: ``"MRI"`` (z-score) or ``"CT"`` (window).
        image_key: key of the image (a file, or a list of files one per channel).
        label_key: key of the label file; ``None`` for inference (image only), the form ``Invertd`` needs.

    Returns:
        A list of dicts with ``_target_`` naming MONAI transforms only, usable as
        ``{"_target_": "Compose", "transforms": <list>}`` in a bundle config.
    """
    s = _as_settings(settings)
    if s.spacing is None or s.spatial_size is None:
        raise ValueError("preprocessing_config needs resolved settings: spacing and spatial_size must be set")
    if modality not in ("MRI", "CT"):
        raise ValueError(f"modality must be 'MRI' or 'CT', got {modality!r}")
    keys = [image_key] if label_key is None else [image_key, label_key]
    modes = ["bilinear"] if label_key is None else ["bilinear", "nearest"]
    chain: list[dict[str, Any]] = [
        {"_target_": "LoadImaged", "keys": keys, "image_only": True, "ensure_channel_first": True},
    ]
    values = list(s.label_values) or list(range(len(s.class_names)))
    if label_key is not None and values and values != list(range(len(values))):
        chain.append(
            {
                "_target_": "MapLabelValued",
                "keys": label_key,
                "orig_labels": values,
                "target_labels": list(range(len(values))),
            }
        )
    chain += [
        {"_target_": "Orientationd", "keys": keys, "axcodes": s.axcodes, "labels": None},
        # two values: in-plane only, the slice spacing kept (-1); three (the 3-D bundles): every axis resampled
        {"_target_": "Spacingd", "keys": keys, "pixdim": [*map(float, s.spacing), -1.0][:3], "mode": modes},
    ]
    if modality == "CT":
        lo, hi = map(float, s.ct_window)
        chain.append(
            {
                "_target_": "ScaleIntensityRanged",
                "keys": image_key,
                "a_min": lo,
                "a_max": hi,
                "b_min": 0.0,
                "b_max": 1.0,
                "clip": True,
            }
        )
    else:
        chain.append(
            {"_target_": "NormalizeIntensityd", "keys": image_key, "nonzero": bool(s.mri_nonzero), "channel_wise": True}
        )
    chain.append({"_target_": CROP_STEP_TARGET, "keys": keys, "spatial_size": [*map(int, s.spatial_size), -1]})
    return chain


def label_to_values_config(
    settings: DatasetSettings | dict[str, Any], pred_key: str = "pred"
) -> list[dict[str, Any]]:
    """Postprocessing that maps class indices back to the dataset's label values (e.g. BraTS 2021: 3 -> 4).

    Empty when the label values already are ``0..K-1``. For ``inference.json`` after ``Invertd``.
    """
    s = _as_settings(settings)
    values = list(s.label_values) or list(range(len(s.class_names)))
    if values == list(range(len(values))):
        return []
    return [{"_target_": "MapLabelValued", "keys": pred_key, "orig_labels": list(range(len(values))), "target_labels": values}]


def augmentation_config(
    keys: Sequence[str] = ("image", "label"),
    prob: float = 0.5,
    flip: bool = True,
    rotate_deg: float = 15.0,
    scale: float = 0.1,
    intensity_scale: float = 0.1,
    intensity_shift: float = 0.1,
    noise_std: float = 0.0,
    spatial_dims: int = 2,
) -> list[dict[str, Any]]:
    """2-D random dictionary transforms (MONAI) for training slices (or 3-D ones for patches), as bundle config dicts.

    Args:
        keys: image key then label key; the label is resampled with nearest.
        prob: probability of each random transform.
        flip: random flips along both in-plane axes.
        rotate_deg: maximal in-plane rotation in degrees (0 disables the affine unless ``scale`` > 0).
        scale: maximal relative zoom of the random affine.
        intensity_scale: ``RandScaleIntensityd`` factor range (image only; 0 disables).
        intensity_shift: ``RandShiftIntensityd`` offset range (image only; 0 disables).
        noise_std: ``RandGaussianNoised`` standard deviation (image only; 0 disables).
        spatial_dims: 3 for 3-D patches: flips along every axis, the rotation in the axial plane (about the slice
            axis), the zoom on every axis.
    """
    import math

    image_key, label_key = keys[0], (keys[1] if len(keys) > 1 else None)
    spatial = [image_key] if label_key is None else [image_key, label_key]
    out: list[dict[str, Any]] = []
    if flip:
        out += [{"_target_": "RandFlipd", "keys": spatial, "prob": prob, "spatial_axis": a} for a in range(spatial_dims)]
    if rotate_deg > 0 or scale > 0:
        rotate = [math.radians(rotate_deg)] if spatial_dims == 2 else [0.0, 0.0, math.radians(rotate_deg)]
        out.append(
            {
                "_target_": "RandAffined",
                "keys": spatial,
                "prob": prob,
                "rotate_range": rotate,
                "scale_range": [scale] * spatial_dims,
                "mode": ["bilinear", "nearest"][: len(spatial)],
                "padding_mode": "zeros",
            }
        )
    if intensity_scale > 0:
        out.append({"_target_": "RandScaleIntensityd", "keys": image_key, "factors": intensity_scale, "prob": prob})
    if intensity_shift > 0:
        out.append({"_target_": "RandShiftIntensityd", "keys": image_key, "offsets": intensity_shift, "prob": prob})
    if noise_std > 0:
        out.append({"_target_": "RandGaussianNoised", "keys": image_key, "std": noise_std, "prob": prob})
    return out


def instantiate_transforms(config: list[dict[str, Any]], **compose_kwargs: Any):
    """Instantiate a list of MONAI transform config dicts into a ``monai.transforms.Compose``.

    Uses ``monai.bundle.ConfigParser`` exactly as a bundle does, so what works here works in
    ``inference.json`` without ``iac_components``.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser({"chain": {"_target_": "Compose", "transforms": copy.deepcopy(list(config)), **compose_kwargs}})
    return parser.get_parsed_content("chain", instantiate=True)
