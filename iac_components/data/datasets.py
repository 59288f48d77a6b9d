"""Torch datasets over the prepared cache: 2-D slices for training, whole volumes for validation.

Arrays are opened with ``np.load(mmap_mode="r")`` once per process and read slice by slice; they are stored in
Fortran order, so one slice is one contiguous block and a data loader touches only the bytes it needs. Items
are MONAI-style dicts (C-contiguous float32 tensors):

* :class:`SliceDataset`: ``{"image": (C, H, W) float32, "label": (1, H, W) float32, "case_id", "slice"}``,
  optionally through 2-D MONAI random transforms (:func:`~iac_components.data.transforms.augmentation_config`).
  Use ``monai.data.DataLoader`` so each worker's random state differs.
* :class:`VolumeDataset`: ``{"image": (C, H, W, D) float32, "label": (1, H, W, D) float32, "case_id",
  "patient_id"}`` for per-volume validation with ``monai.inferers.SliceInferer`` (or ``SlidingWindowInferer`` in 3-D).
* :class:`PatchDataset`: ``{"image": (C, *patch), "label": (1, *patch), "case_id"}``: 3-D patches of the volumes,
  cropped by MONAI's transforms (the 3-D bundles' training and search).

Empty slices (no foreground) can be thinned (``empty_fraction``) or down-weighted in sampling
(:func:`make_slice_sampler`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iac_components.data.base import DatasetError
from iac_components.data.prepare import load_manifest
from iac_components.data.splits import fold_cases, load_splits

__all__ = ["PatchDataset", "SliceDataset", "VolumeDataset", "make_slice_sampler", "select_cases"]


def select_cases(
    manifest: dict[str, Any] | str | os.PathLike,
    fold: str | None = None,
    splits: dict[str, Any] | str | os.PathLike | None = None,
    case_ids: Sequence[str] | None = None,
    data: Sequence[dict[str, Any]] | str | os.PathLike | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, case entries) for a fold of ``splits`` (default: ``splits.json`` in the cache dir), an
    explicit list of case ids, or all cases; ``data`` (a datalist of 3-D files) further keeps only the cases
    prepared from those files; an empty datalist is no datalist (MONAI Label passes ``validate#dataset#data: []``
    when it has no study to validate on: the fold's cases stand)."""
    m, cases = _select(manifest, fold, splits, case_ids)
    if data is None or (isinstance(data, (list, tuple)) and not data):
        return m, cases
    from iac_components.data.datalist import read_datalist

    def key(image: Any) -> str:
        return str(Path(image[0] if isinstance(image, (list, tuple)) else image).expanduser().resolve())

    wanted = {key(d["image"]) for d in read_datalist(data) if isinstance(d, dict) and d.get("image")}
    cached = {key(c["source"]["image"]) for c in m["cases"]}
    missing = sorted(wanted - cached)
    if missing:
        raise DatasetError(f"{missing[0]} is in the datalist but not in the cache {m.get('cache_dir')}: prepare it "
                           "with the same datalist (iac_components.bundles.runtime.BundleData does)")
    return m, [c for c in cases if key(c["source"]["image"]) in wanted]


def _select(manifest, fold, splits, case_ids) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    m = load_manifest(manifest)
    if case_ids is not None:
        by_id = {c["case_id"]: c for c in m["cases"]}
        missing = [c for c in case_ids if c not in by_id]
        if missing:
            raise DatasetError(f"case id(s) not in the cache {m.get('cache_dir')}: {missing[:5]}")
        return m, [by_id[c] for c in case_ids]
    if fold is not None:
        s = splits if isinstance(splits, dict) else load_splits(splits if splits is not None else m["cache_dir"])
        return m, fold_cases(m, s, fold)
    return m, list(m["cases"])


class _CachedArrays:
    """Per-process memory maps of the cache arrays (dropped when pickled to a worker)."""

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir
        self._maps: dict[str, np.ndarray] = {}

    def get(self, rel: str) -> np.ndarray:
        a = self._maps.get(rel)
        if a is None:
            a = np.load(os.path.join(self.cache_dir, rel), mmap_mode="r")
            self._maps[rel] = a
        return a

    def __getstate__(self) -> dict[str, Any]:
        return {"cache_dir": self.cache_dir, "_maps": {}}


class SliceDataset(torch.utils.data.Dataset):
    """2-D axial slices of the cached volumes of some cases.

    Args:
        manifest: cache dir, ``manifest.json`` path or loaded manifest.
        fold: a fold of the splits (``train``, ``search_train``, ``search_val``, ``validation``, ``test``);
            ``None`` with ``case_ids=None``: all cases.
        splits: splits dict or path; default ``splits.json`` in the cache dir.
        case_ids: explicit case ids instead of a fold.
        augment: ``True`` for the default 2-D augmentation, a dict of
            :func:`~iac_components.data.transforms.augmentation_config` arguments, a list of MONAI transform
            configs, a built chain (a ``Compose``: a bundle's ``train#preprocessing``), or ``False`` / None. Its
            random state is seeded with ``seed`` and it runs with MetaTensor tracking off (``track_meta``).
        transform: extra callable (or MONAI config list) applied to each item after the augmentation.
        empty_fraction: fraction of empty (no-foreground) slices kept, chosen once with ``seed``; 1 keeps all.
        seed: seed of the empty-slice selection and of the random transforms.
        data: a datalist of 3-D ``{"image", "label"}`` files (MONAI's ``train#dataset#data``): only the cases
            prepared from them, within the fold (the bundle prepares the cache from the same list).
        track_meta: keep MONAI's MetaTensor tracking on during the augmentation. Off by default: 2-D
            training slices need no inverse, and tracking triples the cost of the random transforms. It is
            switched off only around the augmentation call (MONAI's flag is global; workers are processes).
    """

    def __init__(
        self,
        manifest: dict[str, Any] | str | os.PathLike,
        fold: str | None = None,
        splits: dict[str, Any] | str | os.PathLike | None = None,
        case_ids: Sequence[str] | None = None,
        augment: bool | dict[str, Any] | list[dict[str, Any]] | Callable | None = False,
        transform: Callable | list[dict[str, Any]] | None = None,
        empty_fraction: float = 1.0,
        seed: int = 0,
        track_meta: bool = False,
        data: Sequence[dict[str, Any]] | str | None = None,
    ) -> None:
        from iac_components.data.transforms import (
            augmentation_config,
            instantiate_transforms,
        )

        self.track_meta = bool(track_meta)

        self.manifest, self.cases = select_cases(manifest, fold, splits, case_ids, data)
        if not self.cases:
            raise DatasetError(f"no cases selected (fold={fold!r}) from {self.manifest.get('cache_dir')}")
        if not 0.0 <= float(empty_fraction) <= 1.0:
            raise ValueError(f"empty_fraction must be in [0, 1], got {empty_fraction}")
        self.arrays = _CachedArrays(self.manifest["cache_dir"])
        rng = np.random.default_rng(int(seed))
        index: list[tuple[int, int]] = []
        labelled: list[bool] = []
        for ci, c in enumerate(self.cases):
            fg = set(c["labelled_slices"])
            for s in range(int(c["num_slices"])):
                is_fg = s in fg
                if is_fg or empty_fraction >= 1.0 or rng.random() < empty_fraction:
                    index.append((ci, s))
                    labelled.append(is_fg)
        self.index = index
        self.labelled = np.array(labelled, dtype=bool)
        self.augment = None
        if callable(augment):  # a chain built elsewhere (a bundle's ``train#preprocessing``), seeded here all the same
            self.augment = augment
        elif augment:
            cfg = augment if isinstance(augment, list) else augmentation_config(**(augment if isinstance(augment, dict) else {}))
            self.augment = instantiate_transforms(cfg)
        if self.augment is not None and hasattr(self.augment, "set_random_state"):
            self.augment.set_random_state(seed=int(seed))
        self.transform = instantiate_transforms(transform) if isinstance(transform, list) else transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ci, s = self.index[i]
        c = self.cases[ci]
        img = np.ascontiguousarray(self.arrays.get(c["image"])[..., s], dtype=np.float32)
        lab = np.ascontiguousarray(self.arrays.get(c["label"])[..., s], dtype=np.float32)[None]
        item: dict[str, Any] = {
            "image": torch.from_numpy(img),
            "label": torch.from_numpy(lab),
            "case_id": c["case_id"],
            "slice": s,
        }
        if self.augment is not None:
            item = self._augment(item)
        if self.transform is not None:
            item = self.transform(item)
        return item

    def _augment(self, item: dict[str, Any]) -> dict[str, Any]:
        return _run_chains(item, [self.augment], self.track_meta)

    def slice_weights(self, empty_weight: float = 0.1) -> torch.Tensor:
        """Sampling weight per item: 1 for slices with foreground, ``empty_weight`` for empty ones."""
        return torch.from_numpy(np.where(self.labelled, 1.0, float(empty_weight))).double()


def make_slice_sampler(
    dataset: SliceDataset, empty_weight: float = 0.1, num_samples: int | None = None, seed: int = 0
) -> torch.utils.data.WeightedRandomSampler:
    """A ``WeightedRandomSampler`` that draws empty slices ``empty_weight`` times as often as labelled ones.

    Args:
        dataset: the slice dataset.
        empty_weight: relative weight of slices without foreground.
        num_samples: items per epoch; default ``len(dataset)``.
        seed: seed of the sampler's generator.
    """
    g = torch.Generator()
    g.manual_seed(int(seed))
    return torch.utils.data.WeightedRandomSampler(
        dataset.slice_weights(empty_weight), num_samples or len(dataset), replacement=True, generator=g
    )


class VolumeDataset(torch.utils.data.Dataset):
    """Whole preprocessed volumes of some cases (for per-volume validation with ``SliceInferer``).

    Args: as :class:`SliceDataset` (``manifest``, ``fold``, ``splits``, ``case_ids``, ``data``: MONAI's
    ``validate#dataset#data``).
    """

    def __init__(
        self,
        manifest: dict[str, Any] | str | os.PathLike,
        fold: str | None = None,
        splits: dict[str, Any] | str | os.PathLike | None = None,
        case_ids: Sequence[str] | None = None,
        data: Sequence[dict[str, Any]] | str | None = None,
    ) -> None:
        self.manifest, self.cases = select_cases(manifest, fold, splits, case_ids, data)
        if not self.cases:
            raise DatasetError(f"no cases selected (fold={fold!r}) from {self.manifest.get('cache_dir')}")
        self.arrays = _CachedArrays(self.manifest["cache_dir"])

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> dict[str, Any]:
        c = self.cases[i]
        img = np.ascontiguousarray(self.arrays.get(c["image"]), dtype=np.float32)
        lab = np.ascontiguousarray(self.arrays.get(c["label"]), dtype=np.float32)[None]
        return {
            "image": torch.from_numpy(img),
            "label": torch.from_numpy(lab),
            "case_id": c["case_id"],
            "patient_id": c["patient_id"],
        }


class PatchDataset(torch.utils.data.Dataset):
    """3-D patches of the cached volumes of some cases: the 3-D bundles' training and search data.

    Item ``i`` is volume ``i // samples_per_volume`` of the fold through ``sampling`` (a bundle's ``train#sampling``:
    MONAI's ``SpatialPadd`` to the patch and ``RandCropByPosNegLabeld``, half the patches centred on foreground),
    then ``augment`` (``train#preprocessing``: 3-D random flips and intensity changes) when given. Both run with
    MetaTensor tracking off, seeded with ``seed`` (MONAI's ``DataLoader`` reseeds them per worker).

    Args:
        manifest, fold, splits, case_ids, data: as :class:`SliceDataset`.
        sampling: the crop chain (a ``Compose``, or a list of MONAI transform configs); its crop may return a list
            of one sample (``num_samples=1``).
        augment: a chain applied after the crop (a ``Compose`` or a config list), or None / False.
        samples_per_volume: patches drawn from each volume per epoch.
        seed: seed of the random crops and transforms.
    """

    #: what one item is, for the loaders' one-line error on an empty fold
    unit = "3-D patch"

    def __init__(
        self,
        manifest: dict[str, Any] | str | os.PathLike,
        fold: str | None = None,
        splits: dict[str, Any] | str | os.PathLike | None = None,
        case_ids: Sequence[str] | None = None,
        sampling: Callable | list[dict[str, Any]] | None = None,
        augment: Callable | list[dict[str, Any]] | bool | None = None,
        samples_per_volume: int = 1,
        seed: int = 0,
        data: Sequence[dict[str, Any]] | str | None = None,
    ) -> None:
        from iac_components.data.transforms import instantiate_transforms

        self.volumes = VolumeDataset(manifest, fold, splits, case_ids, data)
        self.fold = fold
        if int(samples_per_volume) < 1:
            raise ValueError(f"samples_per_volume must be at least 1, got {samples_per_volume}")
        self.samples_per_volume = int(samples_per_volume)
        if sampling is None:
            raise ValueError("PatchDataset needs `sampling`: the chain that crops a patch of each volume")
        chains = [instantiate_transforms(c) if isinstance(c, list) else c for c in (sampling, augment or None)]
        self.sampling, self.augment = chains
        for chain in chains:
            if chain is not None and hasattr(chain, "set_random_state"):
                chain.set_random_state(seed=int(seed))

    def __len__(self) -> int:
        return len(self.volumes) * self.samples_per_volume

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.volumes[i // self.samples_per_volume]
        item = {"image": item["image"], "label": item["label"], "case_id": item["case_id"]}
        return _run_chains(item, [self.sampling, self.augment])


def _run_chains(item: dict[str, Any], chains: Sequence[Callable | None], track_meta: bool = False) -> dict[str, Any]:
    """``item`` through each chain (None: skipped) with MONAI's MetaTensor tracking set to ``track_meta`` (the flag is
    global: restored after), as plain tensors; a chain that returns a list (a crop's ``num_samples``) gives its first."""
    from monai.data import get_track_meta, set_track_meta

    old = get_track_meta()
    set_track_meta(track_meta)
    try:
        for chain in chains:
            if chain is not None:
                item = chain(item)
                item = item[0] if isinstance(item, list) else item
    finally:
        set_track_meta(old)
    for k in ("image", "label"):
        if hasattr(item[k], "as_tensor"):
            item[k] = item[k].as_tensor()
    return item
