"""A bundle's data: the official layout or a datalist prepared into the slice cache on first use, its folds, and the
loaders' batch; what makes a search run this one (:func:`search_identity`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iac_components.bundles.errors import fail
from iac_components.utils import as_bool

__all__ = ["BundleData", "cached_geometry", "check_patch_size", "loader_batch_size", "search_identity"]


class BundleData:
    """The data of a bundle run: prepares the slice cache on first use (idempotent) and the patient-level splits.

    The data come from the dataset's official layout (``dataset_dir``) or from a datalist of 3-D files
    (``datalist``: ``train#dataset#data``, ``val_datalist``: ``validate#dataset#data``, as MONAI Label and
    model-zoo users pass them; see :mod:`iac_components.data.datalist`). A datalist is prepared into
    ``<cache_dir>/datalist`` with the dataset's conventions and split by
    :func:`~iac_components.data.splits.datalist_splits`; it needs no ``dataset_dir`` (``custom_iac`` reads its
    classes from the ``dataset.json`` there when one is given).

    Geometry (``spacing``, ``spatial_size``) left as None: what the existing cache was prepared at (so every
    workflow after the baseline's runs at the baseline's geometry), else the dataset's default
    (:data:`~iac_components.data.settings.DEFAULT_SETTINGS`, the one place the defaults live).

    Args:
        dataset: dataset adapter name (``acdc``, ``brats``, ``kits23``, ``amos``, ``msd``, ``nnunet``, ...).
        dataset_dir: the raw dataset in its official layout.
        cache_dir: where the preprocessed slice cache and ``splits.json`` go.
        bundle_root: the bundle folder (for the hint of the message when the data is missing).
        split_seed: seed of the patient-level folds.
        split_fractions: fold -> share of the patients (``search_train``, ``search_val``, ``validation``,
            ``test``; normalised, so counts work too); None: 35/35/10/20 %.
        official_split: ACDC's official 100/50 training/testing split.
        datalist: training entries ``[{"image", "label"}, ...]`` (or a JSON file of them); None: ``dataset_dir``.
        val_datalist: validation entries; None: drawn from ``datalist``.
        conventions: a manifest.json whose channels, classes and label values an ``msd`` / ``nnunet`` datalist
            follows when there is no ``dataset_dir`` (a release's ``models/manifest.json``, as fine-tuning uses).
        default_geometry: ``spacing`` / ``spatial_size`` used when neither given nor cached (a 3-D bundle's
            resampling of every axis); None or absent keys: the dataset's defaults.
        patch_size: a 3-D bundle's patch, for the export's input shape in the logged summary.
        settings: preprocessing overrides (``spacing``, ``spatial_size``, ...); None values are left to defaults.
    """

    def __init__(
        self,
        dataset: str,
        dataset_dir: str,
        cache_dir: str,
        bundle_root: str | None = None,
        split_seed: int = 0,
        official_split: bool | str = False,
        num_workers: int | None = None,
        datalist: Any = None,
        split_fractions: Mapping[str, float] | None = None,
        val_datalist: Any = None,
        conventions: str | None = None,
        disjoint_search_folds: bool = False,
        default_geometry: Mapping[str, Any] | None = None,
        patch_size: list[int] | None = None,
        **settings: Any,
    ) -> None:
        from iac_components.data import DatasetError, make_splits, prepare_dataset
        from iac_components.data.splits import datalist_splits

        self.dataset = dataset
        use_datalist = datalist is not None and datalist != []
        if not use_datalist and not os.path.isdir(dataset_dir):
            raise _no_dataset(dataset, dataset_dir)
        if use_datalist:
            cache_dir = os.path.join(str(cache_dir), "datalist")
        from iac_components.distributed import barrier, is_distributed, is_main_process

        if is_distributed() and not is_main_process():
            barrier()  # under torchrun rank 0 prepares the cache and the splits; the others then find them ready
        overrides = {k: v for k, v in settings.items() if v is not None}
        overrides.update({k: v for k, v in cached_geometry(cache_dir).items() if settings.get(k) is None})
        # neither given nor cached: the bundle's own default (a 3-D bundle's isotropic grid), else the dataset's
        overrides.update({k: v for k, v in (default_geometry or {}).items() if v is not None and k not in overrides})
        try:
            if use_datalist:
                adapter = _datalist_adapter(dataset, dataset_dir, conventions, datalist, val_datalist)
                manifest_path = prepare_dataset(
                    dataset, None, cache_dir, num_workers=num_workers, adapter=adapter, **overrides
                )
                self.splits = datalist_splits(manifest_path, seed=int(split_seed), fractions=split_fractions)
            else:
                manifest_path = prepare_dataset(dataset, dataset_dir, cache_dir, num_workers=num_workers, **overrides)
                self.splits = make_splits(
                    manifest_path, seed=int(split_seed), official=as_bool(official_split), fractions=split_fractions
                )
        except (DatasetError, FileNotFoundError, ValueError, TypeError) as e:
            raise fail(str(e).splitlines()[0]) from e
        if is_distributed() and is_main_process():
            barrier()
        if disjoint_search_folds and not self.splits.get("search_disjoint", True):
            n = len(self.splits["patients"]["train"])
            raise fail(f"the search needs at least 2 training patients (different ones for its weight and its α/β "
                        f"steps); the datalist has {n}")
        from iac_components.data import load_manifest
        from iac_components.data.summary import data_summary

        self.manifest = load_manifest(manifest_path)
        self.cache_dir = str(cache_dir)
        if is_main_process():
            import logging

            log = logging.getLogger("iac_components.data")
            for line in data_summary(self.manifest, self.splits, patch_size=patch_size):
                log.info("data: %s", line)

    @property
    def num_channels(self) -> int:
        return len(self.manifest["channel_names"])

    @property
    def num_classes(self) -> int:
        return len(self.manifest["class_names"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def spatial_size(self) -> list[int]:
        return list(self.manifest["settings"]["spatial_size"])

    @property
    def spacing(self) -> list[float]:
        return list(self.manifest["settings"]["spacing"])


def search_identity(data: BundleData, seed: int, ops: Any, cell_channels: int, partial_k: int) -> dict[str, Any]:
    """What makes a search this run (saved with its checkpoints; a resume from another run's is refused): the seed,
    the folds (a digest of the patients of each), the search space."""
    import hashlib
    import json

    folds = hashlib.sha256(json.dumps(data.splits.get("patients", {}), sort_keys=True).encode()).hexdigest()[:16]
    return {"seed": int(seed), "folds": folds, "ops": list(ops), "cell_channels": int(cell_channels),
            "partial_k": int(partial_k)}  # fmt: skip


def loader_batch_size(dataset: Any, batch_size: int) -> int:
    """The batch a training loader can fill (it drops the last incomplete one): ``batch_size``, or fewer when the
    fold has fewer slices (a fine-tune from one labelled volume), per rank under torchrun. A fold with no slice at
    all is a one-line error, not a silently empty epoch."""
    from iac_components.distributed import world_size

    n = len(dataset) // max(1, world_size())
    if n < 1:
        fold = getattr(dataset, "fold", "training")
        unit = getattr(dataset, "unit", "2-D slice")
        raise fail(f"the {fold} fold has no {unit} to train on ({len(dataset)} for {world_size()} process(es)); give "
                    "it labelled volumes (train#dataset#data) or more patients")
    return max(1, min(int(batch_size), n))


def check_patch_size(patch_size: Any, halvings: int = 4) -> None:
    """A 3-D bundle's patch: three positive sizes, each more than ``2 ** halvings`` voxels (the 3-D U-Net pads to a
    multiple of 16 and halves it four times; a one-voxel bottleneck cannot be normalised per instance)."""
    try:
        sizes = [int(v) for v in patch_size]
    except (TypeError, ValueError):
        sizes = []
    if len(sizes) != 3 or min(sizes) <= 2**halvings:
        raise fail(f"--patch_size {patch_size}: give three sizes, each at least {2**halvings + 1} voxels (the 3-D "
                   f"U-Net halves the patch {halvings} times), e.g. \"[32, 32, 32]\"")


def _manifest(folder: str) -> dict[str, Any]:
    """``<folder>/manifest.json`` (a cache's, or the one a model is saved beside), or ``{}``."""
    import json

    try:
        m = json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def cached_geometry(cache_dir: str) -> dict[str, list]:
    """``spacing`` and ``spatial_size`` of the cache in ``cache_dir`` (empty when there is none)."""
    s = _manifest(cache_dir).get("settings")
    return {k: list(s[k]) for k in ("spacing", "spatial_size") if s.get(k)} if isinstance(s, dict) else {}


def recorded_patch(ckpt_dir: str) -> dict[str, list]:
    """``{"patch_size": [...]}`` a 3-D model recorded beside its weights (``<ckpt_dir>/manifest.json``), or ``{}``."""
    patch = _manifest(ckpt_dir).get("patch_size")
    return {"patch_size": [int(v) for v in patch]} if isinstance(patch, list) else {}


def _no_dataset(dataset: str, dataset_dir: str) -> Exception:
    """The one-line error for a missing --dataset_dir: where the data come from, or how to try synthetic data."""
    from iac_components.data import DatasetError
    from iac_components.data.base import adapter_class

    try:
        source = adapter_class(dataset).source or dataset
    except DatasetError:
        source = dataset
    synth = "acdc" if dataset not in ("msd", "nnunet") else dataset
    return fail(
        f"no dataset at {dataset_dir} (--dataset_dir). Get {source}; or try synthetic data: "
        f"iac synth {synth} /tmp/{synth}_synth && add --dataset_dir /tmp/{synth}_synth; or pass a datalist "
        "of 3-D files: --train#dataset#data \"[{'image': ..., 'label': ...}, ...]\""
    )


def _datalist_adapter(dataset: str, dataset_dir: str, conventions: str | None, datalist: Any, val_datalist: Any) -> Any:
    """The cases of a datalist (training, then validation), with the classes and channels of the dataset they are
    like: the registered dataset's, or for msd/nnunet the user's dataset.json (or the model's own manifest)."""
    from iac_components.data import DatasetError
    from iac_components.data.datalist import DatalistAdapter, read_datalist

    like: Any = dataset
    if dataset in ("msd", "nnunet"):  # classes and channels from the user's dataset.json
        from iac_components.data import get_adapter

        if os.path.isdir(dataset_dir):
            like = get_adapter(dataset, dataset_dir)
        elif conventions and os.path.isfile(conventions):  # or from the model's own manifest
            import json

            like = json.loads(Path(conventions).read_text())
        else:
            raise DatasetError(f"a {dataset} datalist needs its dataset.json: pass --dataset_dir with it")
    entries = [{**e, "subset": "training"} for e in read_datalist(datalist)]
    entries += [{**e, "subset": "validation"} for e in read_datalist(val_datalist or [])]
    return DatalistAdapter(entries, like=like)
