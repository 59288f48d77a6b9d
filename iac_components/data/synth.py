"""Synthetic stand-ins for every supported dataset, written in the official raw layout.

Each generator writes the real file names (``Info.cfg``, ``_4d``, ``_frameMM_gt``; BraTS 2021 and 2023 names;
KiTS21's ``aggregated_MAJ_seg``; AMOS, MSD and nnU-Net ``dataset.json`` with ``_0000`` channel files), the
label values, the channel count, the orientation conventions (KiTS stores (z, y, x) and its affine says so;
BraTS's affine is LPS; ACDC, MSD and nnU-Net files are RAS, LPS or flipped at random) and the intensity
ranges (HU for CT, arbitrary positive integers for MRI). Shapes are anatomy-like and vary by patient in size,
position and contrast, with blur, a multiplicative bias field and noise.

The defaults are small so that a whole demo (train, search, retrain, evaluate) runs on 2 CPU cores in
minutes; :func:`synth_settings` gives ``prepare_dataset`` overrides that suit them. Size and difficulty are
keyword arguments of :func:`synthesize`:

* ``size``: in-plane voxels (int), ``slices``: number of slices (int or (lo, hi) range per patient),
  ``spacing``: in-plane spacing in mm (float or (lo, hi) range per patient and axis), ``slice_spacing`` (mm);
* ``noise``: noise standard deviation relative to the brightest tissue (HU / 1000 for CT),
  ``contrast``: scale of the intensity differences between tissues (1 = default, smaller is harder),
  ``blur``: Gaussian sigma in voxels, ``bias``: strength of the multiplicative bias field (MRI);
* ACDC's ``label_shift_mm``: the known-answer variant (:func:`~iac_components.data.acdc.shift_label`), labels
  displaced from the anatomy by a fixed distance along x, so that what a skip cell must do (move fine features that far) ranks its ops.

Every patient's data depends only on ``(seed, patient index)``, not on how many patients are written.

This module is the toolkit every generator shares (random draws per patient, grids, shapes, MRI and CT image
models, orientations, file writing) and :func:`synthesize`, the one entry point; each dataset's generator lives in
that dataset's module beside its adapter (``iac_components.data.acdc`` ...) as its :class:`SyntheticSpec`
``SYNTHETIC``, found through the dataset registry.
"""

from __future__ import annotations

import importlib
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.data.base import check_dataset_name, dataset_module
from iac_components.data.files import save_nifti
from iac_components.utils import atomic_write

__all__ = [
    "COMMON_DEFAULTS", "ORIENTATIONS", "SyntheticSpec", "body_ct", "blur_inplane", "centred_affine", "ct_image",
    "ct_patient", "ellipse_mask", "ellipsoid", "generic_case", "grid_mm", "mri_image", "patient_rng", "pick", "pick_int",
    "reorient_to_file", "save_nifti", "smooth_field", "synth_settings", "synthesize", "write_text",
]  # fmt: skip


@dataclass(frozen=True)
class SyntheticSpec:
    """One dataset's synthetic stand-in, declared in the dataset's own module as ``SYNTHETIC``.

    Attributes:
        generate: ``generate(out, patients, seed, kw, name)`` writes the layout under ``out`` and returns the root
            to give the adapter; ``kw`` holds every size, difficulty and option, defaults filled in; ``name`` is the
            registered name asked for (a version: ``brats2023``, ``kits21``).
        defaults: size and difficulty of the default stand-in (see the module docstring).
        options: the dataset's own options beyond size and difficulty.
        prepare: ``prepare_dataset`` overrides that suit the default sizes (:func:`synth_settings`).
    """

    generate: Callable[..., Path]
    defaults: dict[str, Any]
    options: frozenset[str] = frozenset()
    prepare: dict[str, Any] = field(default_factory=dict)


#: size and difficulty every generator takes beyond its own defaults
COMMON_DEFAULTS = {"contrast": 1.0, "bias": 0.25}


def _spec(name: str) -> SyntheticSpec:
    return importlib.import_module(dataset_module(check_dataset_name(name))).SYNTHETIC


def synth_settings(name: str) -> dict[str, Any]:
    """``prepare_dataset`` overrides that fit the default synthetic sizes of ``name``. Their spacing is coarser than
    some synthetic files', so the original-grid round trip is near-exact there, not exact (tests use finer
    targets)."""
    return dict(_spec(name).prepare)


# ------------------------------------------------------------------------------------------------ writing
def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def reorient_to_file(
    arrays: Sequence[np.ndarray], affine: np.ndarray, flips: Sequence[int] = (), perm: Sequence[int] | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Store canonical (RAS) arrays in another voxel order without moving the anatomy in world space.

    Args:
        arrays: arrays whose first three axes are the canonical axes (extra trailing axes are kept).
        affine: their 4x4 voxel-to-world affine.
        flips: canonical axes to reverse.
        perm: new order of the three spatial axes (e.g. ``(2, 1, 0)`` stores (z, y, x)).

    Returns:
        The re-ordered arrays and the affine that keeps every voxel at its world position.
    """
    aff = np.array(affine, dtype=np.float64)
    out = [np.asarray(a) for a in arrays]
    shape = out[0].shape[:3]
    for ax in flips:
        aff[:3, 3] += aff[:3, ax] * (shape[ax] - 1)
        aff[:3, ax] *= -1
        out = [np.flip(a, axis=ax) for a in out]
    if perm is not None:
        perm = list(perm)
        aff[:3, :3] = aff[:3, perm]
        out = [np.transpose(a, perm + list(range(3, a.ndim))) for a in out]
    return [np.ascontiguousarray(a) for a in out], aff


# ------------------------------------------------------------------------------------------------ helpers
def patient_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), 7919])


def pick(rng: np.random.Generator, v: float | Sequence[float]) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    lo, hi = v
    return float(rng.uniform(lo, hi))


def pick_int(rng: np.random.Generator, v: int | Sequence[int]) -> int:
    if isinstance(v, (int, np.integer)):
        return int(v)
    lo, hi = v
    return int(rng.integers(lo, hi + 1))


def grid_mm(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    """mm coordinates of voxel centres, centred on the volume, canonical (RAS) axes, broadcastable."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing)]
    return list(np.meshgrid(*axes, indexing="ij", sparse=True))


def centred_affine(shape: Sequence[int], spacing: Sequence[float], origin_shift: Sequence[float] = (0, 0, 0)) -> np.ndarray:
    aff = np.diag([*map(float, spacing), 1.0])
    aff[:3, 3] = [-(n - 1) / 2.0 * s + o for n, s, o in zip(shape, spacing, origin_shift)]
    return aff


def ellipsoid(g: list[np.ndarray], centre: Sequence[float], radii: Sequence[float], angle: float = 0.0) -> np.ndarray:
    """Boolean ellipsoid, rotated by ``angle`` (rad) in the axial plane."""
    x, y = g[0] - centre[0], g[1] - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    r = (u / radii[0]) ** 2 + (v / radii[1]) ** 2
    if len(g) > 2:
        r = r + ((g[2] - centre[2]) / radii[2]) ** 2
    return r <= 1.0


def ellipse_mask(g: list[np.ndarray], centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """Boolean in-plane ellipse (axes 0 and 1 of a grid from :func:`grid_mm`)."""
    return ((g[0] - centre[0]) / radii[0]) ** 2 + ((g[1] - centre[1]) / radii[1]) ** 2 <= 1.0


def smooth_field(rng: np.random.Generator, shape: Sequence[int], strength: float) -> np.ndarray:
    """exp of a random low-order polynomial over the volume: a bias field with mean about 1."""
    if strength <= 0:
        return np.ones(shape, np.float32)
    g = [np.linspace(-1, 1, n).reshape([-1 if i == k else 1 for i in range(len(shape))]) for k, n in enumerate(shape)]
    weights = [1.0, 1.0, 0.3][: len(g)]  # gentler along the slice axis
    f = sum(w * rng.normal(0, 1) * gi for w, gi in zip(weights, g)) + sum(rng.normal(0, 0.5) * gi * gi for gi in g[:2])
    f = f + rng.normal(0, 0.5) * g[0] * g[1]
    return np.exp(strength * f / 2.0).astype(np.float32) * np.ones(shape, np.float32)


def blur_inplane(vol: np.ndarray, sigma: float) -> np.ndarray:
    """In-plane Gaussian blur (axes 0 and 1 of a canonical array)."""
    if sigma <= 0:
        return vol
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(vol, sigma=(sigma, sigma) + (0,) * (vol.ndim - 2))


def mri_image(rng: np.random.Generator, clean: np.ndarray, noise: float, blur: float, bias: float, scale: float,
         mask: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Blur, bias, Rician noise, scale to positive integers (int16). ``mask``: zero outside (skull-stripped)."""
    img = blur_inplane(clean.astype(np.float32), blur) * smooth_field(rng, clean.shape, bias)
    n1, n2 = rng.normal(0, noise, (2, *clean.shape)).astype(np.float32)
    img = np.sqrt((img + n1) ** 2 + n2**2)
    if mask is not None:
        img = img * mask
    return np.clip(np.round(img * scale), 0, 32000).astype(np.int16)


def ct_image(rng: np.random.Generator, clean_hu: np.ndarray, noise: float, blur: float) -> np.ndarray:
    """Blur and Gaussian noise (``noise`` x 1000 HU), int16 HU clipped to [-1024, 3071]."""
    img = blur_inplane(clean_hu.astype(np.float32), blur) + rng.normal(0, noise * 1000.0, clean_hu.shape).astype(np.float32)
    return np.clip(np.round(img), -1024, 3071).astype(np.int16)


ORIENTATIONS: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = [
    ((), None),  # RAS
    ((0, 1), None),  # LPS
    ((1,), None),  # RPS
    ((0, 2), None),  # LAI
]



# ------------------------------------------------------------------------------------------------ CT body
def body_ct(g, shape, rng, p) -> np.ndarray:
    """Abdomen: air, fat layer, soft tissue, spine (HU)."""
    hu = np.full(shape, -1000.0, np.float32)
    body = np.broadcast_to(ellipse_mask(g, (0, 0), (p["body_rx"], p["body_ry"])), shape)
    inner = np.broadcast_to(ellipse_mask(g, (0, 0), (p["body_rx"] - p["fat"], p["body_ry"] - p["fat"])), shape)
    hu[body] = -100.0
    hu[inner] = 40.0
    spine = np.broadcast_to(ellipse_mask(g, (0, -0.55 * p["body_ry"]), (16, 14)), shape)
    hu[spine] = 500.0
    return hu


def ct_patient(rng, kw):
    nx, nz = kw["size"], pick_int(rng, kw["slices"])
    sp = (pick(rng, kw["spacing"]), pick(rng, kw["spacing"]), pick(rng, kw["slice_spacing"]))
    shape = (nx, nx, nz)
    g = grid_mm(shape, sp)
    half = np.array(shape) * np.array(sp) / 2
    p = {"body_rx": half[0] * rng.uniform(0.85, 0.95), "body_ry": half[1] * rng.uniform(0.6, 0.72), "fat": rng.uniform(8, 20)}
    return shape, sp, g, half, p



# ------------------------------------------------------------------------------------------- MSD / nnU-Net
def generic_case(rng, kw, channels: Sequence[str], n_classes: int):
    """Body with an organ (class 1), a lesion inside it (class 2) and further blobs (classes 3..)."""
    nx, nz = kw["size"], pick_int(rng, kw["slices"])
    sp = (pick(rng, kw["spacing"]), pick(rng, kw["spacing"]), pick(rng, kw["slice_spacing"]))
    shape = (nx, nx, nz)
    g = grid_mm(shape, sp)
    half = np.array(shape) * np.array(sp) / 2
    body = ellipsoid(g[:2], (0, 0), half[:2] * rng.uniform(0.75, 0.9, 2))
    body = np.broadcast_to(body[..., None] if body.ndim == 2 else body, shape)
    lab = np.zeros(shape, np.uint8)
    organ_c = rng.uniform(-0.25, 0.25, 3) * half
    organ_r = half * rng.uniform(0.3, 0.45, 3)
    organ = ellipsoid(g, organ_c, organ_r, rng.uniform(0, math.pi)) & body
    lab[organ] = 1
    if n_classes > 2:
        les_c = organ_c + rng.uniform(-0.25, 0.25, 3) * organ_r
        lab[ellipsoid(g, les_c, organ_r * rng.uniform(0.4, 0.6, 3)) & organ] = 2
    for k in range(3, n_classes):
        ctr = rng.uniform(-0.6, 0.6, 3) * half
        lab[ellipsoid(g, ctr, half * rng.uniform(0.1, 0.2, 3)) & body & (lab == 0)] = k
    images = []
    c = kw["contrast"]
    for ch in channels:
        crng = np.random.default_rng(zlib.crc32(str(ch).encode()))  # per-channel tissue levels, same for all cases
        if str(ch).upper() == "CT":
            levels = np.array([40.0, *crng.uniform(60, 200, n_classes - 1)]) + rng.uniform(-10, 10, n_classes)
            hu = np.where(body, 40.0 + c * (levels[lab] - 40.0), -1000.0).astype(np.float32)
            images.append(ct_image(rng, hu, kw["noise"], kw["blur"]))
        else:
            levels = np.array([0.4, *crng.uniform(0.6, 1.2, n_classes - 1)]) * rng.uniform(0.92, 1.08, n_classes)
            clean = np.where(body, 0.4 + c * (levels[lab] - 0.4), 0.03).astype(np.float32)
            images.append(mri_image(rng, clean, kw["noise"], kw["blur"], kw["bias"], rng.uniform(200, 1500)))
    return images, lab, centred_affine(shape, sp, rng.uniform(-20, 20, 3))


# ------------------------------------------------------------------------------------------------ public
def synthesize(dataset: str, out_dir: str | os.PathLike, patients: int = 20, seed: int = 0, **kwargs: Any) -> Path:
    """Write a synthetic stand-in for ``dataset`` in its official raw layout.

    Args:
        dataset: a registered name (``acdc``, ``brats`` (= 2021), ``brats2021``, ``brats2023``, ``kits19``,
            ``kits21``, ``kits23``, ``amos``, ``msd``, ``nnunet``).
        out_dir: where to write; created if needed.
        patients: number of patients (ACDC: in total, a third of them in ``testing/`` like the official
            100/50 split; ``test_fraction`` changes that).
        seed: random seed; patient ``i`` depends only on ``(seed, i)``.
        kwargs: size and difficulty (see the module docstring: ``size``, ``slices``, ``spacing``,
            ``slice_spacing``, ``noise``, ``contrast``, ``blur``, ``bias``), and per dataset: ACDC ``frames``,
            ``test_fraction``, ``label_shift_mm`` (the known-answer variant,
            :func:`~iac_components.data.acdc.shift_label`); AMOS ``mri_every`` (every n-th case is MRI, 0 for none);
            MSD ``task``,
            ``channels``, ``class_names``; nnU-Net ``dataset_id``, ``dataset_name``, ``channels``,
            ``class_names``.

    Returns:
        The dataset root to give to the adapter (for nnU-Net the ``DatasetNNN_Name`` folder).
    """
    name = check_dataset_name(dataset)
    if not isinstance(patients, int) or patients < 1:
        raise ValueError(f"patients must be a whole number >= 1, got {patients!r}")
    spec = _spec(name)
    allowed = set(COMMON_DEFAULTS) | set(spec.defaults) | set(spec.options)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"unknown option {unknown[0]!r} for synthetic {name}{hint} (options: {', '.join(sorted(allowed))})")
    kw = {**COMMON_DEFAULTS, **spec.defaults, **kwargs}
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    return spec.generate(out, patients, seed, kw, name)
