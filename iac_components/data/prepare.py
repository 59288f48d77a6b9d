"""Prepare: raw layout -> preprocessed slice cache (one memory-mappable array per case) + ``manifest.json``.

Cache layout::

    cache_dir/manifest.json                 written last, atomically: the cache is valid iff it exists
    cache_dir/arrays/<case_id>_image.npy    float16 (or float32) (C, H, W, D), axial slices along D
    cache_dir/arrays/<case_id>_label.npy    uint8 (H, W, D), class indices 0..K-1

Arrays are saved in Fortran order (``np.save`` records it; ``np.load(mmap_mode="r")`` restores the shape), so
each axial slice ``[..., d]`` is one contiguous block: a memory-mapped slice read touches only its own pages.
    cache_dir/splits.json                   written by :func:`iac_components.data.splits.make_splits`

``manifest.json``::

    {"format_version": 1, "dataset": "acdc", "raw_dir": ..., "modality": "MRI" | "CT" | "mixed",
     "channel_names": [...], "class_names": [...], "label_values": [...],
     "settings": {resolved DatasetSettings}, "settings_hash": "16 hex",
     "transforms": {"MRI": {"image_label": [chain config], "image": [chain config, image only]}},
     "postprocessing": [MapLabelValued config back to label values, or empty],
     "num_cases": N, "num_patients": P,
     "cases": [{"case_id", "patient_id", "subset", "modality", "meta",
                "image": "arrays/..._image.npy", "label": "arrays/..._label.npy",
                "source": {"image": [files], "label": file},
                "original_shape": [X, Y, Z], "original_affine": 4x4, "original_spacing": [sx, sy, sz],
                "spacing": [..], "affine": 4x4 (preprocessed grid), "shape": [C, H, W, D], "num_slices": D,
                "labelled_slices": [slice indices with any foreground], "num_labelled_slices": n,
                "class_voxels": [voxels per class in the cache], "key": "16 hex"}]}

A second run with the same settings and unchanged source files (size, mtime) rewrites nothing; a changed
setting invalidates the manifest first and rebuilds every case. A failed run leaves no manifest and removes
the arrays it wrote, so nothing half-written is ever taken for a cache.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.data.base import Case, DatasetAdapter, DatasetError, check_dataset_name, get_adapter
from iac_components.data.files import one_line, save_npy
from iac_components.data.settings import DatasetSettings, get_settings, settings_hash
from iac_components.data.transforms import (
    CROP_STEP_TARGET,
    instantiate_transforms,
    label_to_values_config,
    preprocessing_config,
)
from iac_components.utils import write_json_atomic

__all__ = [
    "prepare_dataset",
    "load_manifest",
    "resolve_settings",
    "chain_config",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ARRAY_DIR = "arrays"
logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ manifest
def load_manifest(path: str | os.PathLike | dict[str, Any]) -> dict[str, Any]:
    """Load ``manifest.json`` (given the file or the cache dir); adds ``"cache_dir"`` (absolute).

    A dict is returned unchanged (so functions accept a manifest or its path).
    """
    import json

    if isinstance(path, dict):
        return path
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise DatasetError(f"no prepared cache: {p} does not exist (run prepare first)")
    m = json.loads(p.read_text())
    m["cache_dir"] = str(p.parent.resolve())
    return m


def chain_config(manifest: dict[str, Any] | str | os.PathLike, modality: str | None = None, with_label: bool = False):
    """The preprocessing chain config stored in a manifest (image-only by default, the form for inference)."""
    m = load_manifest(manifest)
    chains = m["transforms"]
    if modality is None:
        if len(chains) != 1:
            raise DatasetError(f"{m['dataset']} has several modalities {sorted(chains)}: pass modality")
        modality = next(iter(chains))
    return chains[modality]["image_label" if with_label else "image"]


# ------------------------------------------------------------------------------------------------ settings
def _ras_inplane(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(spacing, extent in mm) along the world axes x, y, z the voxel axes map to after reorientation."""
    import nibabel as nib

    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))
    ornt = nib.orientations.io_orientation(affine)
    sp, ext = np.zeros(3), np.zeros(3)
    for vox_ax, (world_ax, _) in enumerate(ornt):
        sp[int(world_ax)] = zooms[vox_ax]
        ext[int(world_ax)] = zooms[vox_ax] * shape[vox_ax]
    return sp, ext


def resolve_settings(
    adapter: DatasetAdapter, cases: list[Case], settings_name: str | None = None, **overrides: Any
) -> DatasetSettings:
    """The dataset's settings with ``overrides``, class/channel names from the adapter, auto values resolved.

    ``spacing=None`` becomes the median in-plane spacing over the cases' headers (after reorientation);
    ``spatial_size=None`` the largest in-plane extent at that spacing, rounded up to ``divisible``.
    """
    import nibabel as nib

    s = get_settings(settings_name or adapter.name, **overrides)
    s = s.updated(
        class_names=adapter.class_names,
        label_values=adapter.label_values,
        channel_names=adapter.channel_names,
    )
    if s.spacing is None or s.spatial_size is None:
        sps, exts = [], []
        for c in cases:
            try:
                hdr = nib.load(c.image[0])
            except Exception as e:  # noqa: BLE001 - report any reader failure as one line
                raise DatasetError(f"case {c.case_id}: cannot read header of {c.image[0]}: {one_line(e)}") from e
            sp, ext = _ras_inplane(hdr.affine, hdr.shape[:3])
            sps.append(sp[:2])
            exts.append(ext[:2])
        spacing = s.spacing or tuple(float(round(v, 4)) for v in np.median(np.array(sps), axis=0))
        if s.spatial_size is None:
            need = np.max(np.array(exts), axis=0) / np.array(spacing[:2])  # a 3-D spacing's in-plane part
            div = max(1, int(s.divisible))
            size = tuple(int(math.ceil(n / div - 1e-6) * div) for n in need)
        else:
            size = s.spatial_size
        s = s.updated(spacing=spacing, spatial_size=size)
    return s


# -------------------------------------------------------------------------------------------------- helpers
def _safe(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", case_id)


def _file_stat(path: str) -> list[Any]:
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def _case_key(case: Case, shash: str) -> str:
    files = [*case.image, *([case.label] if case.label else [])]
    return settings_hash({"settings": shash, "files": [_file_stat(f) for f in files], "case": case.to_dict()})


def _unreadable(files: list[str]) -> tuple[str, BaseException] | None:
    """The first file MONAI's loader cannot read, with the error."""
    from monai.transforms import LoadImage

    loader = LoadImage(image_only=True)
    for f in files:
        try:
            loader(f)
        except Exception as e:  # noqa: BLE001
            return f, e
    return None


# -------------------------------------------------------------------------------------------------- one case
class _CaseWorker:
    """Runs the chain on one case, checks it and writes its arrays. One Compose per thread."""

    def __init__(self, settings: DatasetSettings, transforms: dict[str, dict[str, list]], cache_dir: Path) -> None:
        self.settings = settings
        self.transforms = transforms
        self.cache_dir = cache_dir
        self.local = threading.local()

    def compose(self, modality: str):
        cache = self.local.__dict__.setdefault("compose", {})
        if modality not in cache:
            cache[modality] = instantiate_transforms(self.transforms[modality]["image_label"])
        return cache[modality]

    @staticmethod
    def _load(case: Case, compose: Any) -> dict[str, Any]:
        """Read the case's image(s) and label (the chain's first step), naming the unreadable file."""
        cid = case.case_id
        try:
            d = compose(case.data_dict(), end=1)
        except Exception as e:  # noqa: BLE001
            bad = _unreadable([*case.image, case.label])
            if bad is not None:
                raise DatasetError(f"case {cid}: cannot read {bad[0]}: {one_line(bad[1])}") from e
            raise DatasetError(f"case {cid}: cannot load {case.image} + {case.label}: {one_line(e)}") from e
        return d

    def _check_loaded(self, case: Case, d: dict[str, Any]) -> tuple[np.ndarray, list[int]]:
        """Shapes, channels and label values on the original grid, each a one-line error naming the file; returns
        the original affine and shape (the evaluation resamples back to them)."""
        s, cid = self.settings, case.case_id
        img, lab = d["image"], d["label"]
        if tuple(img.shape[1:]) != tuple(lab.shape[1:]):
            raise DatasetError(
                f"case {cid}: image shape {tuple(img.shape[1:])} ({case.image[0]}) and label shape "
                f"{tuple(lab.shape[1:])} ({case.label}) differ"
            )
        if lab.shape[0] != 1:
            raise DatasetError(f"case {cid}: label file {case.label} has {lab.shape[0]} channels, expected 1")
        if s.channel_names and img.shape[0] != len(s.channel_names):
            raise DatasetError(
                f"case {cid}: {img.shape[0]} image channel(s) in {case.image}, expected {len(s.channel_names)} "
                f"{list(s.channel_names)}"
            )
        lab_np = lab.numpy()
        values = np.unique(lab_np)
        allowed = np.array(s.label_values or range(len(s.class_names)), dtype=np.float64)
        bad_values = [v for v in values.tolist() if not np.any(np.isclose(v, allowed))]
        if bad_values:
            shown = [int(v) if float(v).is_integer() else float(v) for v in bad_values[:5]]
            raise DatasetError(
                f"case {cid}: label file {case.label} has value(s) {shown} outside the dataset's label values "
                f"{allowed.astype(int).tolist()} ({', '.join(s.class_names)})"
            )
        orig_affine = np.asarray(lab.affine, dtype=np.float64)
        if not np.allclose(np.asarray(img.affine, dtype=np.float64), orig_affine, atol=1e-3, rtol=1e-3):
            logger.warning("case %s: image and label affines differ; using the image's for both", cid)
        orig_shape = [int(v) for v in lab.shape[1:]]
        return orig_affine, orig_shape

    def __call__(self, case: Case, key: str) -> dict[str, Any]:
        s = self.settings
        cid = case.case_id
        compose = self.compose(case.modality)
        config = self.transforms[case.modality]["image_label"]
        n = len(config)
        crop_idx = next(i for i, t in enumerate(config) if t["_target_"] == CROP_STEP_TARGET)
        d = self._load(case, compose)  # 1. load
        orig_affine, orig_shape = self._check_loaded(case, d)  # 2. checks on the original grid
        # 3. orientation, spacing, normalisation
        d = compose(d, start=1, end=crop_idx)
        K = max(len(s.class_names), 1)
        before = np.bincount(d["label"].numpy().astype(np.int64).ravel(), minlength=K)
        # 4. in-plane pad / crop
        pre_crop = tuple(int(v) for v in d["label"].shape[1:3])
        d = compose(d, start=crop_idx, end=n)
        label = d["label"][0].numpy().astype(np.uint8)
        after = np.bincount(label.astype(np.int64).ravel(), minlength=K)
        lost = int(before[1:].sum() - after[1:].sum())
        if lost > 0:
            raise DatasetError(
                f"case {cid}: cropping {pre_crop} to spatial_size {tuple(s.spatial_size)} would remove {lost} "
                "labelled voxels; increase spatial_size or the spacing"
            )
        image = d["image"].numpy().astype(np.dtype(s.image_dtype))
        stem = _safe(cid)
        img_rel, lab_rel = f"{ARRAY_DIR}/{stem}_image.npy", f"{ARRAY_DIR}/{stem}_label.npy"
        # Fortran order: the (C, H, W, D) array's axial slices [..., d] are each one contiguous block on disk
        save_npy(self.cache_dir / img_rel, np.asfortranarray(image))
        save_npy(self.cache_dir / lab_rel, np.asfortranarray(label))
        aff = np.asarray(d["image"].affine, dtype=np.float64)
        labelled = np.flatnonzero(label.reshape(-1, label.shape[-1]).max(axis=0) > 0).tolist()
        return {
            "case_id": cid,
            "patient_id": case.patient_id,
            "subset": case.subset,
            "modality": case.modality,
            "meta": case.meta,
            "image": img_rel,
            "label": lab_rel,
            "source": {"image": list(case.image), "label": case.label},
            "original_shape": orig_shape,
            "original_affine": orig_affine.tolist(),
            "original_spacing": np.sqrt((orig_affine[:3, :3] ** 2).sum(0)).round(6).tolist(),
            "spacing": np.sqrt((aff[:3, :3] ** 2).sum(0)).round(6).tolist(),
            "affine": aff.tolist(),
            "shape": [int(v) for v in image.shape],
            "num_slices": int(image.shape[-1]),
            "labelled_slices": labelled,
            "num_labelled_slices": len(labelled),
            "class_voxels": [int(v) for v in after[:K]],
            "key": key,
        }


# -------------------------------------------------------------------------------------------------- prepare
def prepare_dataset(
    dataset: str,
    raw_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    spatial_size: tuple[int, int] | list[int] | None = None,
    spacing: tuple[float, float] | list[float] | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    force: bool = False,
    adapter_kwargs: dict[str, Any] | None = None,
    torch_threads: int | None = 1,
    adapter: DatasetAdapter | None = None,
    **overrides: Any,
) -> Path:
    """Preprocess every case of a raw dataset into the slice cache; idempotent.

    Callable from bundle JSON (``{"_target_": "iac_components.data.prepare.prepare_dataset", ...}``).

    Args:
        dataset: registered dataset name (see :func:`iac_components.data.base.get_adapter`).
        raw_dir: the raw dataset in its official layout.
        cache_dir: where the arrays and ``manifest.json`` go.
        spatial_size: 2-D slice size (H, W); ``None``: the dataset's default.
        spacing: in-plane target spacing (mm); ``None``: the dataset's default.
        num_workers: parallel cases (threads); default ``min(4, cpu count)``.
        progress: print a progress line to stderr every tenth of the cases.
        force: rebuild even when the cache is up to date.
        adapter_kwargs: options for the adapter (e.g. ``{"subsets": ["training"]}``).
        torch_threads: torch intra-op threads while preparing (restored after); cases already run in
            parallel, and on small volumes extra threads cost more than they give. ``None`` leaves it.
        adapter: the cases to prepare, instead of the registered adapter of ``dataset`` over ``raw_dir`` (a
            :class:`~iac_components.data.datalist.DatalistAdapter`); ``dataset`` then names the settings.
        overrides: further settings (``ct_window``, ``image_dtype``, ``hd95_max``, ...; see
            :class:`~iac_components.data.settings.DatasetSettings`).

    Returns:
        The path of ``manifest.json``.

    Raises:
        DatasetError: one line naming the case and file: unknown dataset, missing/unreadable file, shape
            mismatch, label values outside the classes, a crop that would remove labelled voxels.
    """
    t0 = time.perf_counter()
    name = check_dataset_name(dataset)
    cache = Path(cache_dir).expanduser().resolve()
    if adapter is None:
        adapter = get_adapter(name, raw_dir, **(adapter_kwargs or {}))
        name = adapter.name if name in ("nnunet", "msd") else name  # the layout dataset.json has
    cases = _labelled_cases(adapter, name, progress)
    if spatial_size is not None:
        overrides["spatial_size"] = spatial_size
    if spacing is not None:
        overrides["spacing"] = spacing
    settings = resolve_settings(adapter, cases, settings_name=name, **overrides)
    modalities = sorted({c.modality for c in cases})
    transforms = {
        m: {"image_label": preprocessing_config(settings, m), "image": preprocessing_config(settings, m, label_key=None)}
        for m in modalities
    }
    shash = settings_hash({"version": FORMAT_VERSION, "settings": settings.to_dict(), "transforms": transforms})
    keys = {c.case_id: _case_key(c, shash) for c in cases}
    manifest_file = cache / MANIFEST_NAME

    reusable = {} if force else _reusable_entries(manifest_file, shash, keys)
    if len(reusable) == len(cases) and _manifest_case_ids(manifest_file) == [c.case_id for c in cases]:
        _say(progress, f"prepare {name}: cache {cache} is up to date ({len(cases)} cases)")
        return manifest_file
    if manifest_file.exists():
        manifest_file.unlink()  # invalidate before touching any array
    todo = [c for c in cases if c.case_id not in reusable]
    worker = _CaseWorker(settings, transforms, cache)
    nw = max(1, int(num_workers if num_workers is not None else min(4, os.cpu_count() or 1)))
    with _torch_threads(torch_threads):
        entries = {**reusable, **_run_cases(worker, todo, keys, nw, progress, name, t0)}
    ordered = [entries[c.case_id] for c in cases]
    manifest = _manifest(adapter, settings, shash, transforms, modalities, ordered)
    _remove_stale_arrays(cache, ordered)
    write_json_atomic(manifest_file, manifest)
    _say(
        progress,
        f"prepare {name}: {len(todo)} case(s) written, {len(reusable)} reused, "
        f"{time.perf_counter() - t0:.1f} s -> {manifest_file}",
    )
    return manifest_file


def _labelled_cases(adapter: DatasetAdapter, name: str, progress: bool) -> list[Case]:
    """The cases that have a label file (e.g. KiTS19's official test cases have none); none at all is an error."""
    cases = [c for c in adapter.cases() if c.label is not None]
    skipped = len(adapter.cases()) - len(cases)
    if skipped:
        _say(progress, f"prepare {name}: skipping {skipped} case(s) without a label file")
    if not cases:
        raise DatasetError(f"{name}: no labelled cases under {adapter.root}")
    return cases


def _manifest(adapter: DatasetAdapter, settings: DatasetSettings, shash: str, transforms: dict[str, Any], modalities: list[str],
              ordered: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """``manifest.json``: the dataset, its settings and their hash, the transforms that made the arrays (and that
    inference repeats), the postprocessing to label values, and every case's arrays."""
    return {
        "format_version": FORMAT_VERSION,
        "array_order": "F",
        "dataset": adapter.name,
        "raw_dir": str(adapter.root),
        "modality": modalities[0] if len(modalities) == 1 else "mixed",
        "channel_names": list(settings.channel_names),
        "class_names": list(settings.class_names),
        "label_values": list(settings.label_values),
        "settings": settings.to_dict(),
        "settings_hash": shash,
        "transforms": transforms,
        "postprocessing": label_to_values_config(settings),
        "num_cases": len(ordered),
        "num_patients": len({e["patient_id"] for e in ordered}),
        "cases": ordered,
    }


def _remove_stale_arrays(cache: Path, ordered: list[dict[str, Any]]) -> None:
    """Delete the arrays of cases no longer in the dataset."""
    keep = {e["image"] for e in ordered} | {e["label"] for e in ordered}
    for p in (cache / ARRAY_DIR).glob("*.npy"):
        if f"{ARRAY_DIR}/{p.name}" not in keep:
            p.unlink()


def _say(progress: bool, msg: str) -> None:
    """One line of progress: through the logger when logging shows it (a bundle run), else on stderr (once, not
    both: a bundle run printed every line twice)."""
    if logger.hasHandlers() and logger.isEnabledFor(logging.INFO):
        logger.info(msg)
    elif progress:
        print(msg, file=sys.stderr, flush=True)


def _manifest_case_ids(manifest_file: Path) -> list[str] | None:
    try:
        return [c["case_id"] for c in load_manifest(manifest_file)["cases"]]
    except Exception:  # noqa: BLE001
        return None


def _reusable_entries(manifest_file: Path, shash: str, keys: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Entries of the existing manifest made with the same settings from unchanged files, arrays present."""
    if not manifest_file.is_file():
        return {}
    try:
        prev = load_manifest(manifest_file)
    except Exception:  # noqa: BLE001 - an unreadable manifest is simply rebuilt
        return {}
    if prev.get("settings_hash") != shash:
        return {}
    cache = manifest_file.parent
    return {
        c["case_id"]: c
        for c in prev.get("cases", [])
        if keys.get(c["case_id"]) == c.get("key") and (cache / c["image"]).is_file() and (cache / c["label"]).is_file()
    }


@contextmanager
def _torch_threads(n: int | None):
    """Temporarily set torch's intra-op threads (cases already run in parallel; small ops pay for threads)."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _run_cases(
    worker: _CaseWorker, todo: list[Case], keys: dict[str, str], num_workers: int, progress: bool, name: str, t0: float
) -> dict[str, dict[str, Any]]:
    """Process ``todo`` on a thread pool; on the first error remove every array this run wrote and re-raise."""
    written = [worker.cache_dir / ARRAY_DIR / f"{_safe(c.case_id)}_{k}.npy" for c in todo for k in ("image", "label")]
    entries: dict[str, dict[str, Any]] = {}
    step = max(1, len(todo) // 10)
    (worker.cache_dir / ARRAY_DIR).mkdir(parents=True, exist_ok=True)
    try:
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            pending = {pool.submit(worker, c, keys[c.case_id]) for c in todo}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in finished:
                    if f.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise f.exception()
                    e = f.result()
                    entries[e["case_id"]] = e
                    if len(entries) % step == 0 or len(entries) == len(todo):
                        _say(progress, f"prepare {name}: {len(entries)}/{len(todo)} cases ({time.perf_counter() - t0:.1f} s)")
    except BaseException:
        for p in written:
            if p.exists():
                p.unlink()
        raise
    return entries
