"""The bundle collection as one table: datasets x backbones. The template (:mod:`.template`) turns each row
pair into a bundle; dataset specifics that preprocessing needs (spacing, slice size, classes, channels,
normalisation) come from :data:`iac_components.data.settings.DEFAULT_SETTINGS`, the one place they live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iac_components.search.recipe import SEARCH_RECIPE

__all__ = [
    "BACKBONE_ROWS", "COLLECTION_DATASETS", "DATASET_ROWS", "VOLUME_BACKBONE", "BackboneRow", "BundleSpec", "DatasetRow",
    "VolumeRow", "all_bundles", "get_bundle",
]  # fmt: skip


@dataclass(frozen=True)
class DatasetRow:
    """A dataset of the collection.

    Attributes:
        key: bundle-name prefix (``acdc`` -> ``acdc_iac``).
        adapter: dataset adapter name (``iac_components.data``).
        title: human name.
        default_dir: default ``dataset_dir`` (the zoo's ``/workspace/data/...`` convention).
        license: the data's terms, for ``docs/README.md``.
        batch_size: slices per batch on one GPU.
        epochs: default epochs of ``train``, ``search`` (the paper's 200-epoch budget), ``retrain``.
        warmup_steps: search iterations (weight steps) before the first arch step (docs/method.md: warm-up).
        augment: 2-D augmentation in the baseline and the retrain (the paper reports both regimes).
        window_slices: slices per forward in 3-D inference (a ``SlidingWindowInferer`` window).
        image_description: metadata text of the input.
        volume: the dataset's 3-D bundle (``<key>_iac_3d``), or None for none: a :class:`VolumeRow`'s fields.
    """

    key: str
    adapter: str
    title: str
    default_dir: str
    license: str
    batch_size: int = SEARCH_RECIPE.batch_size
    epochs: dict[str, int] = field(default_factory=lambda: {"train": 100, "search": SEARCH_RECIPE.epochs, "retrain": 100})
    warmup_steps: int = SEARCH_RECIPE.warmup_steps
    augment: bool = True
    window_slices: int = 16
    image_description: str = ""
    volume: dict[str, Any] | None = None

    @property
    def volume_row(self) -> VolumeRow | None:
        """The 3-D bundle's facts (:class:`VolumeRow`), or None when the dataset has no 3-D bundle."""
        return None if self.volume is None else VolumeRow(**self.volume)

    @property
    def source(self) -> str:
        """Where to get the data, in which layout: the adapter's (the one place it is written)."""
        from iac_components.data.base import adapter_class

        if self.key == "custom":
            return f"{adapter_class('nnunet').source}; or {adapter_class('msd').source} with --dataset msd"
        return adapter_class(self.adapter).source

    @property
    def modality(self) -> str:
        """``MR`` or ``CT`` for the metadata, from the adapter (AMOS, CT and MRI: ``CT``, its first task)."""
        from iac_components.data.base import adapter_class

        return {"MRI": "MR", "CT": "CT", "mixed": "CT"}[adapter_class(self.adapter).modality]


@dataclass(frozen=True)
class VolumeRow:
    """What a dataset's 3-D bundle trains and searches on: 3-D patches of volumes resampled in all three axes, and
    sliding windows of the same patch for validation, evaluation and inference.

    Attributes:
        spacing: target voxel spacing (mm) of the three axes after reorientation (``--spacing`` with two values
            keeps the slice spacing as the 2-D bundles do).
        spatial_size: in-plane size the volumes are padded/cropped to in the cache (None: the dataset's default).
        patch_size: the training and search patch, and the sliding window (``--patch_size``).
        batch_size: patches per batch of train and retrain.
        search_batch_size: patches per batch of the search (its supernet holds every op: the memory bound).
        cell_channels: the search's cell width (the 2-D recipe's 32 would not fit a 24 GB card in 3-D).
        samples_per_volume: patches drawn per training volume per epoch.
        sw_overlap: overlap of the sliding windows.
    """

    spacing: tuple[float, float, float] | None = None
    spatial_size: tuple[int, int] | None = None
    patch_size: tuple[int, int, int] = (96, 96, 96)
    batch_size: int = 2
    search_batch_size: int = 1
    cell_channels: int = 16
    samples_per_volume: int = 2
    sw_overlap: float = 0.5


@dataclass(frozen=True)
class BackboneRow:
    """A backbone of the collection.

    Attributes:
        key: bundle-name suffix (``""`` for the base U-Net: ``acdc_iac``; else ``acdc_iac_<key>``).
        backbone: name in :data:`iac_components.networks.BACKBONES`.
        title: human name.
        kwargs: extra ``build_backbone`` arguments (``"@spatial_size"`` style references allowed).
        deep_supervision: train with MONAI's ``DeepSupervisionLoss`` (nnU-Net).
        spatial_dims: 2 (slice-wise bundles) or 3 (the datasets' 3-D bundles, on :class:`VolumeRow` settings).
    """

    key: str
    backbone: str
    title: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    deep_supervision: bool = False
    spatial_dims: int = 2


#: The datasets of the collection, in its order: registered adapter names whose module declares a ``BUNDLE_ROW``
#: (the dataset's own facts live there, beside its adapter, settings and synthetic stand-in; ``nnunet`` is the
#: collection's ``custom`` row: the user's own data).
COLLECTION_DATASETS = ("acdc", "brats", "kits23", "amos", "nnunet")


def _dataset_row(adapter: str) -> DatasetRow:
    import importlib

    from iac_components.data.base import dataset_module

    return DatasetRow(adapter=adapter, **importlib.import_module(dataset_module(adapter)).BUNDLE_ROW)


DATASET_ROWS: dict[str, DatasetRow] = {row.key: row for row in map(_dataset_row, COLLECTION_DATASETS)}

BACKBONE_ROWS: dict[str, BackboneRow] = {
    "unet": BackboneRow("", "unet", "MONAI BasicUNet (base U-Net)"),
    "vgg16": BackboneRow("vgg16", "vgg16", "FlexibleUNet with a torchvision VGG-16 encoder"),
    "resnet50": BackboneRow("resnet50", "resnet50", "FlexibleUNet with a torchvision ResNet-50 encoder"),
    "mobilenetv3_large": BackboneRow(
        "mobilenetv3_large", "mobilenetv3_large", "FlexibleUNet with a torchvision MobileNetV3-Large encoder"
    ),
    "efficientnetv2_s": BackboneRow(
        "efficientnetv2_s", "efficientnetv2_s", "FlexibleUNet with a torchvision EfficientNetV2-S encoder"
    ),
    "efficientnetv2_m": BackboneRow(
        "efficientnetv2_m", "efficientnetv2_m", "FlexibleUNet with a torchvision EfficientNetV2-M encoder"
    ),
    "nnunet": BackboneRow(
        "nnunet", "nnunet", "nnU-Net-style 2-D U-Net (MONAI DynUNet, nnU-Net's topology rule, deep supervision)",
        kwargs={"patch_size": "@spatial_size", "spacing": "@spacing"}, deep_supervision=True,
    ),
}  # fmt: skip

#: the backbone of the 3-D bundles: MONAI's BasicUNet in 3-D (its default features), one per dataset with a volume row
VOLUME_BACKBONE = BackboneRow("3d", "unet", "MONAI BasicUNet 3-D", kwargs={"spatial_dims": 3}, spatial_dims=3)


@dataclass(frozen=True)
class BundleSpec:
    """One bundle: a dataset row and a backbone row."""

    dataset: DatasetRow
    backbone: BackboneRow

    @property
    def name(self) -> str:
        return f"{self.dataset.key}_iac" + (f"_{self.backbone.key}" if self.backbone.key else "")

    @property
    def volumetric(self) -> bool:
        """A 3-D bundle: patch-based training and search, sliding-window validation, evaluation and inference."""
        return self.backbone.spatial_dims == 3

    @property
    def volume(self) -> VolumeRow:
        """The 3-D settings of a 3-D bundle (:class:`VolumeRow`)."""
        row = self.dataset.volume_row
        if row is None or not self.volumetric:
            raise ValueError(f"{self.name} is not a 3-D bundle")
        return row


def all_bundles() -> list[BundleSpec]:
    """Every dataset with every backbone, ``custom_iac`` (the base U-Net on the user's own data), and the 3-D bundle
    of each dataset with a volume row (``<key>_iac_3d``)."""
    specs = [
        BundleSpec(d, b) for d in DATASET_ROWS.values() if d.key != "custom" for b in BACKBONE_ROWS.values()
    ]
    specs.append(BundleSpec(DATASET_ROWS["custom"], BACKBONE_ROWS["unet"]))
    return specs + [BundleSpec(d, VOLUME_BACKBONE) for d in DATASET_ROWS.values() if d.volume is not None]


def get_bundle(name: str) -> BundleSpec:
    """The spec of bundle ``name``.

    Raises:
        ValueError: one line listing the valid names.
    """
    for spec in all_bundles():
        if spec.name == name:
            return spec
    raise ValueError(f"unknown bundle {name!r}; valid names: {', '.join(s.name for s in all_bundles())}")
