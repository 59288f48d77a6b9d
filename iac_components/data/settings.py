"""Per-dataset preprocessing settings (our defaults; every value can be overridden).

The table below holds what the preprocessing chain needs per dataset. Where the literature is silent these are
our choices, made for 2-D full-slice U-Nets; change them with keyword overrides (``prepare_dataset(...,
spacing=(1.25, 1.25), spatial_size=(192, 192))``) and record why.

============  ========  ==============  ============  ==============================  ==========================
name          modality  spacing (mm)    slice size    normalisation                   classes (label values)
============  ========  ==============  ============  ==============================  ==========================
acdc          MRI       1.5 x 1.5       256 x 256     z-score / channel, nonzero      bg, RV, MYO, LV (0-3)
brats2021     MRI       1.0 x 1.0       224 x 224     z-score / channel, nonzero      bg, NCR, ED, ET (0,1,2,4)
brats2023     MRI       1.0 x 1.0       224 x 224     z-score / channel, nonzero      bg, NCR, ED, ET (0-3)
kits19        CT        1.0 x 1.0       512 x 512     window [-79, 304] HU -> [0, 1]  bg, kidney, tumor (0-2)
kits21/23     CT        1.0 x 1.0       512 x 512     window [-79, 304] HU -> [0, 1]  + cyst (3)
amos          CT, MRI   1.0 x 1.0       512 x 512     CT [-175, 250] HU; MRI z-score  bg + 15 organs (0-15)
msd, nnunet   json      median          auto          CT [-1000, 1000] HU; z-score    from dataset.json
============  ========  ==============  ============  ==============================  ==========================

* Slices are axial after reorientation to RAS (axis 2); the slice spacing is kept (no resampling along it) unless
  ``spacing`` has three values (the 3-D bundles' grids: every axis resampled).
* MRI: z-score per channel over the image's own non-zero voxels (``NormalizeIntensityd(nonzero=True,
  channel_wise=True)``), a mask derived from the image, never from the label.
* CT: clip to the window and scale to [0, 1] (``ScaleIntensityRanged``). KiTS's window is nnU-Net's 0.5/99.5
  foreground percentiles on KiTS19; AMOS's is the common abdominal soft-tissue window.
* ``spacing=None`` uses the median in-plane spacing of the dataset; ``spatial_size=None`` the largest
  in-plane extent after resampling, rounded up to a multiple of ``divisible``.
* ``hd95_max``: the HD95 given to a class that is empty in exactly one of prediction and ground truth;
  ``None`` means the diagonal of the case's image in mm; BraTS uses 373.13 mm (the diagonal of its
  240 x 240 x 155 1-mm grid), as the BraTS evaluation does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

__all__ = ["DatasetSettings", "DEFAULT_SETTINGS", "get_settings", "settings_hash", "BRATS_HD95_MAX"]

BRATS_HD95_MAX = 373.13
"""HD95 (mm) for a class present in exactly one of prediction and ground truth, by the BraTS convention."""


@dataclass(frozen=True)
class DatasetSettings:
    """Preprocessing and evaluation settings of one dataset.

    Attributes:
        spacing: target in-plane spacing (mm) of axes 0 and 1 after reorientation; ``None``: dataset median. Three
            values (the 3-D bundles) resample the slice axis too; two keep the slices as they are.
        spatial_size: 2-D slice size (H, W) after padding/cropping; ``None``: automatic (see ``divisible``).
        divisible: the automatic slice size is rounded up to a multiple of this (U-Net down-sampling).
        axcodes: orientation of the preprocessed grid; ``"RAS"`` puts axial slices along axis 2.
        ct_window: (min, max) HU clipped and scaled to [0, 1] for CT images.
        mri_nonzero: z-score MRI over non-zero voxels only (the image-derived foreground mask).
        image_dtype: dtype of the cached image arrays (``"float16"`` or ``"float32"``).
        class_names: class names in class order (background first); empty: read from the layout.
        label_values: label value in the files of each class; empty: ``0 .. len(class_names) - 1``.
        channel_names: channel names; empty: read from the layout.
        regions: extra evaluation regions, name -> label values (BraTS WT/TC/ET).
        hd95_max: HD95 for one-sided empty classes (mm); ``None``: the case's image diagonal in mm.
    """

    spacing: tuple[float, ...] | None = None
    spatial_size: tuple[int, int] | None = None
    divisible: int = 32
    axcodes: str = "RAS"
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    mri_nonzero: bool = True
    image_dtype: str = "float16"
    class_names: tuple[str, ...] = ()
    label_values: tuple[int, ...] = ()
    channel_names: tuple[str, ...] = ()
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    hd95_max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSettings:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        return cls().updated(**d)

    def updated(self, **overrides: Any) -> DatasetSettings:
        """A copy with ``overrides`` (each checked against the fields, in one line when unknown)."""
        names = {f.name for f in fields(self)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise TypeError(f"unknown dataset setting(s) {bad}; valid: {sorted(names)}")
        conv: dict[str, Any] = {}
        for k, v in overrides.items():
            if k in ("spacing", "spatial_size", "ct_window") and v is not None:
                v = tuple(float(x) if k != "spatial_size" else int(x) for x in v)
                if k == "spacing" and len(v) not in (2, 3):
                    raise ValueError(f"spacing {list(v)}: give two values (in-plane, the slice spacing kept) or three "
                                     "(every axis)")
            elif k in ("class_names", "channel_names"):
                v = tuple(str(x) for x in v)
            elif k == "label_values":
                v = tuple(int(x) for x in v)
            elif k == "regions":
                v = {str(n): tuple(int(x) for x in vals) for n, vals in dict(v).items()}
            conv[k] = v
        return replace(self, **conv)


class _DefaultSettings(Mapping):
    """Registered name -> :class:`DatasetSettings`, read from the dataset's own module (its ``SETTINGS``), so that a
    dataset's defaults live beside its adapter and its synthetic stand-in (the table above summarises them)."""

    def __getitem__(self, name: str) -> DatasetSettings:
        import importlib

        from iac_components.data.base import check_dataset_name, dataset_module

        key = check_dataset_name(name)
        return importlib.import_module(dataset_module(key)).SETTINGS[key]

    def __iter__(self) -> Iterator[str]:
        from iac_components.data.base import DATASET_NAMES

        return iter(DATASET_NAMES)

    def __len__(self) -> int:
        from iac_components.data.base import DATASET_NAMES

        return len(DATASET_NAMES)


DEFAULT_SETTINGS: Mapping[str, DatasetSettings] = _DefaultSettings()


def get_settings(name: str, **overrides: Any) -> DatasetSettings:
    """The default settings of dataset ``name`` with keyword ``overrides`` applied.

    Raises:
        DatasetError: unknown dataset name (the message lists the valid names).
        TypeError: an unknown setting name.
    """
    from iac_components.data.base import check_dataset_name

    base = DEFAULT_SETTINGS[check_dataset_name(name)]
    return base.updated(**{k: v for k, v in overrides.items()})


def settings_hash(obj: Any) -> str:
    """A short stable hash (16 hex digits) of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
