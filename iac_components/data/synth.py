"""Synthetic stand-ins for every supported dataset, written in the official raw layout.

Each generator writes the real file names (``Info.cfg``, ``_4d``, ``_frameMM_gt``; BraTS 2021 and 2023 names;
KiTS21's ``aggregated_MAJ_seg``; AMOS, MSD and nnU-Net ``dataset.json`` with ``_0000`` channel files), the
label values, the channel count, the orientation conventions (KiTS stores (z, y, x) and its affine says so;
BraTS's affine is LPS; ACDC, MSD and nnU-Net files are RAS, LPS or flipped at random) and the intensity
ranges (HU for CT, arbitrary positive integers for MRI). Shapes are anatomy-like and vary by patient in size,
position and contrast, with blur, a multiplicative bias field and noise.

The defaults are small so that a whole demo (train, search, retrain, evaluate) runs on 2 CPU cores in
minutes; :data:`SYNTH_SETTINGS` gives ``prepare_dataset`` overrides that suit them. Size and difficulty are
keyword arguments of :func:`synthesize`:

* ``size``: in-plane voxels (int), ``slices``: number of slices (int or (lo, hi) range per patient),
  ``spacing``: in-plane spacing in mm (float or (lo, hi) range per patient and axis), ``slice_spacing`` (mm);
* ``noise``: noise standard deviation relative to the brightest tissue (HU / 1000 for CT),
  ``contrast``: scale of the intensity differences between tissues (1 = default, smaller is harder),
  ``blur``: Gaussian sigma in voxels, ``bias``: strength of the multiplicative bias field (MRI);
* ACDC's ``label_shift_mm``: the known-answer variant (:func:`shift_label`), labels displaced from the anatomy by a
  fixed distance along x, so that what a skip cell must do (move fine features that far) ranks its ops.

Every patient's data depends only on ``(seed, patient index)``, not on how many patients are written.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.data.base import check_dataset_name
from iac_components.data.files import save_nifti
from iac_components.data.settings import DEFAULT_SETTINGS
from iac_components.utils import atomic_write, write_json_atomic

__all__ = ["synthesize", "SYNTH_SETTINGS", "save_nifti", "reorient_to_file", "shift_label"]

# ``prepare_dataset`` overrides that fit the default synthetic sizes. Their spacing is coarser than some
# synthetic files', so the original-grid round trip is near-exact there, not exact (tests use finer targets).
SYNTH_SETTINGS: dict[str, dict[str, Any]] = {
    "acdc": {"spacing": (2.0, 2.0), "spatial_size": (80, 80)},
    "brats2021": {"spacing": (4.0, 4.0), "spatial_size": (48, 48)},
    "brats2023": {"spacing": (4.0, 4.0), "spatial_size": (48, 48)},
    "kits19": {"spacing": (5.0, 5.0), "spatial_size": (64, 64)},
    "kits21": {"spacing": (5.0, 5.0), "spatial_size": (64, 64)},
    "kits23": {"spacing": (5.0, 5.0), "spatial_size": (64, 64)},
    "amos": {"spacing": (5.5, 5.5), "spatial_size": (64, 64)},
    "msd": {"spacing": (2.0, 2.0), "spatial_size": (64, 64)},
    "nnunet": {"spacing": (2.0, 2.0), "spatial_size": (64, 64)},
}
SYNTH_SETTINGS["brats"] = SYNTH_SETTINGS["brats2021"]


# ------------------------------------------------------------------------------------------------ writing
def _write_text(path: Path, text: str) -> None:
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
def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), 7919])


def _pick(rng: np.random.Generator, v: float | Sequence[float]) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    lo, hi = v
    return float(rng.uniform(lo, hi))


def _pick_int(rng: np.random.Generator, v: int | Sequence[int]) -> int:
    if isinstance(v, (int, np.integer)):
        return int(v)
    lo, hi = v
    return int(rng.integers(lo, hi + 1))


def _grid(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    """mm coordinates of voxel centres, centred on the volume, canonical (RAS) axes, broadcastable."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing)]
    return list(np.meshgrid(*axes, indexing="ij", sparse=True))


def _centred_affine(shape: Sequence[int], spacing: Sequence[float], origin_shift: Sequence[float] = (0, 0, 0)) -> np.ndarray:
    aff = np.diag([*map(float, spacing), 1.0])
    aff[:3, 3] = [-(n - 1) / 2.0 * s + o for n, s, o in zip(shape, spacing, origin_shift)]
    return aff


def _ellipsoid(g: list[np.ndarray], centre: Sequence[float], radii: Sequence[float], angle: float = 0.0) -> np.ndarray:
    """Boolean ellipsoid, rotated by ``angle`` (rad) in the axial plane."""
    x, y = g[0] - centre[0], g[1] - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    r = (u / radii[0]) ** 2 + (v / radii[1]) ** 2
    if len(g) > 2:
        r = r + ((g[2] - centre[2]) / radii[2]) ** 2
    return r <= 1.0


def _smooth_field(rng: np.random.Generator, shape: Sequence[int], strength: float) -> np.ndarray:
    """exp of a random low-order polynomial over the volume: a bias field with mean about 1."""
    if strength <= 0:
        return np.ones(shape, np.float32)
    g = [np.linspace(-1, 1, n).reshape([-1 if i == k else 1 for i in range(len(shape))]) for k, n in enumerate(shape)]
    weights = [1.0, 1.0, 0.3][: len(g)]  # gentler along the slice axis
    f = sum(w * rng.normal(0, 1) * gi for w, gi in zip(weights, g)) + sum(rng.normal(0, 0.5) * gi * gi for gi in g[:2])
    f = f + rng.normal(0, 0.5) * g[0] * g[1]
    return np.exp(strength * f / 2.0).astype(np.float32) * np.ones(shape, np.float32)


def _blur(vol: np.ndarray, sigma: float) -> np.ndarray:
    """In-plane Gaussian blur (axes 0 and 1 of a canonical array)."""
    if sigma <= 0:
        return vol
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(vol, sigma=(sigma, sigma) + (0,) * (vol.ndim - 2))


def _mri(rng: np.random.Generator, clean: np.ndarray, noise: float, blur: float, bias: float, scale: float,
         mask: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Blur, bias, Rician noise, scale to positive integers (int16). ``mask``: zero outside (skull-stripped)."""
    img = _blur(clean.astype(np.float32), blur) * _smooth_field(rng, clean.shape, bias)
    n1, n2 = rng.normal(0, noise, (2, *clean.shape)).astype(np.float32)
    img = np.sqrt((img + n1) ** 2 + n2**2)
    if mask is not None:
        img = img * mask
    return np.clip(np.round(img * scale), 0, 32000).astype(np.int16)


def _ct(rng: np.random.Generator, clean_hu: np.ndarray, noise: float, blur: float) -> np.ndarray:
    """Blur and Gaussian noise (``noise`` x 1000 HU), int16 HU clipped to [-1024, 3071]."""
    img = _blur(clean_hu.astype(np.float32), blur) + rng.normal(0, noise * 1000.0, clean_hu.shape).astype(np.float32)
    return np.clip(np.round(img), -1024, 3071).astype(np.int16)


_ORIENTATIONS: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = [
    ((), None),  # RAS
    ((0, 1), None),  # LPS
    ((1,), None),  # RPS
    ((0, 2), None),  # LAI
]


# --------------------------------------------------------------------------------------------------- ACDC
def _acdc_phase(g, p: dict[str, Any], t: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Label volume of one cardiac phase (``t`` = 0 at ED, 1 at ES) and the geometry the image needs.

    The LV is a truncated ellipsoid whose axis drifts from base to apex; its endocardium carries low-order
    harmonics that turn along the axis (irregular, slice-to-slice varying shapes); the wall is uneven and, in one
    sector, 1-2 pixels thin at 2 mm; the RV is an irregular crescent beside the septum."""
    r_lv = p["r_lv"] * (1 - t * (1 - p["es_ratio"]))
    thick = p["thick"] * (1 + t * (p["es_thick"] - 1))
    r_rv = p["r_rv"] * (1 - t * (1 - p["es_rv"]))
    length = p["length"] * (1 - 0.1 * t)
    zn = np.clip((g[2] - p["z_base"]) / length, -1.5, 0.5)  # 0 at the base plane, -1 at the apex
    below = (g[2] <= p["z_base"] + 1e-6)
    f_c = np.sqrt(np.clip(1 - zn**2, 0, 1)) * below
    f_e = np.sqrt(np.clip(1 - (zn * length / (length + thick)) ** 2, 0, 1)) * below
    f_r = np.sqrt(np.clip(1 - (zn / 0.8) ** 2, 0, 1)) * below
    # the LV axis drifts from base to apex
    cx, cy = p["cx"] + p["drift_x"] * zn, p["cy"] + p["drift_y"] * zn
    x, y = g[0] - cx, g[1] - cy
    c, s = math.cos(p["angle"]), math.sin(p["angle"])
    u, v = (c * x + s * y) / p["ecc"], (-s * x + c * y) * p["ecc"]
    rho = np.sqrt(u**2 + v**2)
    th = np.arctan2(v, u)
    wob = sum(a * np.cos(k * th + ph + q * zn) for k, a, ph, q in p["harm"])
    r_endo = r_lv * f_c * (1 + wob)
    # wall thickness: uneven, thinnest (1-2 px at 2 mm) in one sector
    dth = np.angle(np.exp(1j * (th - p["thin_at"])))
    t_wall = thick * (1 + 0.2 * np.cos(th - p["thick_at"])) * (1 - p["thin_depth"] * np.exp(-(dth / p["thin_width"]) ** 2))
    r_epi = r_endo + t_wall * (f_e > 0)
    lab = np.zeros(np.broadcast_shapes(*(a.shape for a in g)), np.uint8)
    epi = rho <= r_epi
    cav = rho <= r_endo
    # RV: a crescent beside the septum, irregular
    rx, ry = cx + p["rv_dx"], cy + p["rv_dy"]
    xr, yr = g[0] - rx, g[1] - ry
    cr, sr = math.cos(p["rv_angle"]), math.sin(p["rv_angle"])
    ur, vr = cr * xr + sr * yr, -sr * xr + cr * yr
    thr = np.arctan2(vr, ur)
    wob_r = sum(a * np.cos(k * thr + ph + q * zn) for k, a, ph, q in p["harm_rv"])
    rv_r = np.sqrt((ur / 1.25) ** 2 + (vr / 0.8) ** 2)
    rv_in = rv_r <= r_rv * f_r * (1 + wob_r)
    rv = rv_in & ~(rho <= r_epi + p["septum_gap"])
    lab[rv] = 1
    lab[epi] = 2
    lab[cav] = 3
    return lab, dict(rho=rho, th=th, r_endo=r_endo, r_epi=r_epi, rv_in=rv_in, rv_r=rv_r, rv_R=r_rv * f_r * (1 + wob_r),
                     zn=zn, below=below, cx=cx, cy=cy)


def _acdc_clean(rng: np.random.Generator, lab: np.ndarray, aux: dict[str, Any], g, p: dict[str, Any]) -> np.ndarray:
    """Noise-free intensities in which context, not intensity, tells the classes apart: the blood pools are
    iso-intense (LV = RV = aorta, only the LV and RV labelled); the myocardium is iso-intense with the RV free wall,
    the chest wall, the liver and the papillary muscles and trabeculae (these two labelled LV, as in ACDC); liver
    and epicardial fat carry a fine grain, the blood a slow flow modulation."""
    shape = lab.shape
    # tissue levels vary by patient, so no fixed threshold separates them across patients
    blood, muscle, fat, soft = p["blood"], p["muscle"], p["fat"], p["soft"]
    lung, air = 0.08, 0.03
    img = np.full(shape, soft, np.float32)
    body = np.broadcast_to(((g[0] / p["body_rx"]) ** 2 + (g[1] / p["body_ry"]) ** 2) <= 1, shape)
    img[~body] = air
    # lungs either side
    for sx in (-1, 1):
        L = (((g[0] - p["cx"] - sx * p["lung_dx"]) / p["lung_rx"]) ** 2 + ((g[1] - p["cy"] - 5) / p["lung_ry"]) ** 2) <= 1
        img[np.broadcast_to(L, shape) & body] = lung
    # chest wall muscle band, anterior (+y)
    cw = np.broadcast_to((g[1] > p["body_ry"] * 0.72) & ((g[1] < p["body_ry"] * 0.86)) & (np.abs(g[0]) < p["body_rx"] * 0.7), shape)
    img[cw & body] = muscle
    # liver: large, inferior slices (towards the apex), textured
    liver = (((g[0] + p["liver_dx"]) / p["liver_r"]) ** 2 + ((g[1] - p["cy"] + 10) / (p["liver_r"] * 0.8)) ** 2 <= 1) & (aux["zn"] < -0.55)
    liver = np.broadcast_to(liver, shape) & body & (lab == 0)
    img[liver] = muscle + 0.02
    # epicardial fat: a patchy ring around the heart
    rho, th = aux["rho"], aux["th"]
    fat_ring = (rho > aux["r_epi"]) & (rho < aux["r_epi"] + p["fat_w"] * (0.5 + 0.5 * np.cos(2 * th + p["fat_ph"]))) & aux["below"]
    img[fat_ring & (lab == 0)] = fat
    # RV free wall: a thin muscle ring outside the RV cavity (background in ACDC's labels)
    rvw = (aux["rv_r"] <= aux["rv_R"] + p["rv_wall"] * (aux["rv_R"] > 0)) & ~aux["rv_in"] & (lab == 0) & (aux["rv_R"] > 0)
    img[rvw] = muscle
    # aorta: a bright disc, posterior-left of the LV, background
    ao = np.broadcast_to(((g[0] - p["cx"] - p["ao_dx"]) ** 2 + (g[1] - p["cy"] - p["ao_dy"]) ** 2) <= p["ao_r"] ** 2, shape)
    img[ao & (lab == 0)] = blood
    # the labelled structures
    img[lab == 1] = blood
    img[lab == 3] = blood
    img[lab == 2] = muscle
    # papillary muscles and trabeculae inside the cavity: muscle intensity, LV label
    r_endo = aux["r_endo"]
    for ang, rr, rad in p["papillary"]:
        px_, py_ = rr * np.cos(ang), rr * np.sin(ang)
        d = np.sqrt((rho * np.cos(th) - px_ * r_endo) ** 2 + (rho * np.sin(th) - py_ * r_endo) ** 2)
        pap = (d <= rad) & (lab == 3) & (aux["zn"] < -0.2) & (aux["zn"] > -0.85)
        img[pap] = muscle
    trab = (rho > r_endo * (1 - p["trab_depth"])) & (np.cos(p["trab_n"] * th + p["trab_ph"]) > 0.6) & (lab == 3)
    img[trab] = muscle
    # texture: slow flow modulation in the blood, fine grain in liver and fat
    def grain(sigma: float, amp: float) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        n = gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), (sigma, sigma, 0))
        return amp * n / (n.std() + 1e-6)

    img = img + np.where(liver | fat_ring, grain(0.7, 0.06), 0)
    img = img + np.where(np.isin(lab, (1, 3)) | ao, grain(3.0, 0.03), 0)
    return img


def _ellipse_mask(g, centre, radii) -> np.ndarray:
    return ((g[0] - centre[0]) / radii[0]) ** 2 + ((g[1] - centre[1]) / radii[1]) ** 2 <= 1.0


def _acdc_params(rng: np.random.Generator, extent_z: float, sz: float, nx: int, sx: float, sy: float) -> dict[str, Any]:
    """One patient's anatomy (mm): sizes, positions, shape harmonics, wall thinning, surrounding structures."""
    p = {
        "r_lv": rng.uniform(14, 22), "thick": rng.uniform(5, 8), "r_rv": rng.uniform(16, 22),
        "es_ratio": rng.uniform(0.6, 0.8), "es_thick": rng.uniform(1.2, 1.5), "es_rv": rng.uniform(0.65, 0.85),
        "cx": rng.uniform(-5, 5), "cy": rng.uniform(-5, 5), "angle": rng.uniform(0, math.pi), "ecc": rng.uniform(0.9, 1.1),
        "drift_x": rng.uniform(-4, 4), "drift_y": rng.uniform(-4, 4),
        "harm": [(k, rng.uniform(0.02, 0.07), rng.uniform(0, 2 * math.pi), rng.uniform(-2, 2)) for k in (2, 3, 4)],
        "harm_rv": [(k, rng.uniform(0.03, 0.10), rng.uniform(0, 2 * math.pi), rng.uniform(-2, 2)) for k in (2, 3)],
        "thin_at": rng.uniform(-math.pi, math.pi), "thin_width": rng.uniform(0.3, 0.6), "thin_depth": rng.uniform(0.5, 0.7),
        "thick_at": rng.uniform(-math.pi, math.pi),
        "z_base": extent_z / 2 - sz * rng.uniform(0.6, 1.2), "length": extent_z * rng.uniform(0.75, 0.95),
        "body_rx": rng.uniform(0.40, 0.48) * nx * sx, "body_ry": rng.uniform(0.32, 0.4) * nx * sy,
        "scale": rng.uniform(150, 600), "septum_gap": rng.uniform(1.0, 3.0), "rv_wall": rng.uniform(2.0, 3.5),
        "lung_dx": rng.uniform(50, 62), "lung_rx": rng.uniform(16, 22), "lung_ry": rng.uniform(28, 36),
        "liver_dx": rng.uniform(-10, 10), "liver_r": rng.uniform(35, 50),
        "fat_w": rng.uniform(2, 5), "fat_ph": rng.uniform(0, 2 * math.pi),
        "ao_dx": rng.uniform(-30, -20), "ao_dy": rng.uniform(-35, -25), "ao_r": rng.uniform(8, 12),
        "papillary": [(rng.uniform(0.3, 1.2), rng.uniform(0.55, 0.75), rng.uniform(2.0, 3.5)),
                      (rng.uniform(-2.4, -1.5), rng.uniform(0.55, 0.75), rng.uniform(2.0, 3.5))],
        "blood": rng.uniform(0.8, 1.0), "muscle": rng.uniform(0.22, 0.38), "fat": rng.uniform(0.6, 0.8),
        "soft": rng.uniform(0.38, 0.55),
        "trab_n": int(rng.integers(10, 18)), "trab_ph": rng.uniform(0, 2 * math.pi), "trab_depth": rng.uniform(0.08, 0.15),
    }
    theta = rng.uniform(0.0, 0.5) * math.pi
    dist = p["r_lv"] + p["thick"] + rng.uniform(0, 4)
    p["rv_dx"], p["rv_dy"] = dist * math.cos(theta), dist * math.sin(theta)
    p["rv_angle"] = theta + math.pi / 2
    return p


def shift_label(lab: np.ndarray, shift_mm: float, spacing_x: float) -> np.ndarray:
    """The label map moved by ``shift_mm`` along the first (RAS x) axis, background filling in: the known-answer
    variant of synthetic ACDC (``label_shift_mm``). Labels that sit a fixed distance away from the anatomy they
    outline make the skip features of the finest levels point at the wrong place; a skip cell can move them back
    only as far as its ops reach at that resolution (``skip_connect`` 0 voxels, a 3x3 pool or ``conv_3x3`` 1,
    ``sep_conv_3x3`` and ``dil_conv_3x3`` 2 per op; 4 ops deep in a cell), which ranks the ops by design.
    The shift is rounded to whole voxels of the file's grid."""
    k = int(round(float(shift_mm) / float(spacing_x)))
    if k == 0:
        return lab
    out = np.zeros_like(lab)
    if k > 0:
        out[k:] = lab[:-k]
    else:
        out[:k] = lab[-k:]
    return out


def _synth_acdc(out: Path, patients: int, seed: int, kw: dict[str, Any]) -> Path:
    n_test = int(round(patients * kw.get("test_fraction", 1 / 3)))
    n_train = patients - n_test
    groups = ["NOR", "MINF", "DCM", "HCM", "RV"]
    for i in range(patients):
        rng = _rng(seed, i)
        subset, num = ("training", i + 1) if i < n_train else ("testing", 101 + i - n_train)
        pid = f"patient{num:03d}"
        pdir = out / subset / pid
        nx = kw["size"]
        nz = _pick_int(rng, kw["slices"])
        sx, sy = _pick(rng, kw["spacing"]), _pick(rng, kw["spacing"])
        sz = _pick(rng, kw["slice_spacing"])
        shape = (nx, nx, nz)
        g = _grid(shape, (sx, sy, sz))
        extent_z = (nz - 1) * sz
        p = _acdc_params(rng, extent_z, sz, nx, sx, sy)
        nb_frames = int(kw.get("frames", 10))
        es = int(round(nb_frames * rng.uniform(0.3, 0.45))) + 1
        ed = 1
        flips, perm = _ORIENTATIONS[i % len(_ORIENTATIONS)]
        aff = _centred_affine(shape, (sx, sy, sz), rng.uniform(-20, 20, 3))
        frames = []
        for f in range(1, nb_frames + 1):
            t = math.sin(math.pi / 2 * (f - 1) / (es - 1)) ** 2 if f <= es else math.cos(math.pi / 2 * (f - es) / (nb_frames + 1 - es)) ** 2
            lab, aux = _acdc_phase(g, p, t)
            frng = _rng(seed, 100000 + i * 100 + f)
            clean = _acdc_clean(frng, lab, aux, g, p)
            clean = p["soft"] + kw["contrast"] * (clean - p["soft"])
            img = _mri(frng, clean, kw["noise"], kw["blur"], kw["bias"], p["scale"])
            frames.append((img, shift_label(lab, kw.get("label_shift_mm", 0.0), sx)))
        for f in (ed, es):
            img, lab = frames[f - 1]
            (fimg, flab), faff = reorient_to_file([img, lab], aff, flips, perm)
            save_nifti(pdir / f"{pid}_frame{f:02d}.nii.gz", fimg, faff)
            save_nifti(pdir / f"{pid}_frame{f:02d}_gt.nii.gz", flab, faff)
        (f4d,), faff = reorient_to_file([np.stack([fr[0] for fr in frames], axis=-1)], aff, flips, perm)
        save_nifti(pdir / f"{pid}_4d.nii.gz", f4d, faff)
        info = (
            f"ED: {ed}\nES: {es}\nGroup: {groups[i % len(groups)]}\nHeight: {rng.uniform(150, 195):.1f}\n"
            f"NbFrame: {nb_frames}\nWeight: {rng.uniform(50, 110):.1f}\n"
        )
        _write_text(pdir / "Info.cfg", info)
    return out


# -------------------------------------------------------------------------------------------------- BraTS
def _synth_brats(out: Path, patients: int, seed: int, kw: dict[str, Any], version: int) -> Path:
    s = DEFAULT_SETTINGS[f"brats{version}"]
    et = s.label_values[-1]
    # tissue intensities per channel (t1, t1ce, t2, flair): brain, CSF, ED, ET, NCR
    table = np.array(
        [[0.70, 0.20, 0.50, 0.60, 0.30], [0.60, 0.20, 0.50, 1.30, 0.25], [0.50, 1.20, 1.00, 0.80, 1.10], [0.50, 0.15, 1.10, 0.90, 0.60]]
    )  # fmt: skip
    for i in range(patients):
        rng = _rng(seed, i)
        if version == 2021:
            cid, sep = f"BraTS2021_{i:05d}", "_"
        else:
            cid, sep = f"BraTS-GLI-{i:05d}-000", "-"
        nx, nz = kw["size"], _pick_int(rng, kw["slices"])
        sp = (_pick(rng, kw["spacing"]),) * 2 + (_pick(rng, kw["slice_spacing"]),)
        shape = (nx, nx, nz)
        g = _grid(shape, sp)
        half = np.array(shape) * np.array(sp) / 2
        brain_r = half * np.array([rng.uniform(0.68, 0.78), rng.uniform(0.8, 0.9), rng.uniform(0.75, 0.88)])
        brain = _ellipsoid(g, rng.uniform(-5, 5, 3), brain_r)
        vent = _ellipsoid(g, (-8, 5, 5), brain_r * [0.1, 0.3, 0.2]) | _ellipsoid(g, (8, 5, 5), brain_r * [0.1, 0.3, 0.2])
        ctr = rng.uniform(-0.45, 0.45, 3) * brain_r
        r_ed = rng.uniform(0.25, 0.4) * brain_r.min() * 2
        r_core = r_ed * rng.uniform(0.45, 0.7)
        r_ncr = r_core * rng.uniform(0.3, 0.7)
        ang = rng.uniform(0, math.pi)
        lab = np.zeros(shape, np.uint8)
        ed = _ellipsoid(g, ctr, r_ed * rng.uniform(0.8, 1.2, 3), ang) & brain
        core = _ellipsoid(g, ctr + rng.uniform(-2, 2, 3), r_core * rng.uniform(0.85, 1.15, 3), ang) & brain
        ncr = _ellipsoid(g, ctr, np.full(3, r_ncr), ang) & core
        has_et = rng.uniform() > 0.15  # some cases without enhancing tumour (empty-class convention)
        lab[ed] = 2
        lab[core] = et if has_et else 1
        lab[ncr] = 1
        tissue = np.zeros(shape, np.int64)
        tissue[vent & brain] = 1
        tissue[lab == 2] = 2
        tissue[lab == et] = 3
        tissue[lab == 1] = 4
        c = kw["contrast"]
        images = []
        for ch in range(4):
            lv = table[ch] * rng.uniform(0.92, 1.08, 5)
            lv = lv[0] + c * (lv - lv[0])
            clean = lv[tissue].astype(np.float32)
            images.append(_mri(rng, clean, kw["noise"], kw["blur"], kw["bias"], rng.uniform(300, 2500), mask=brain))
        aff = _centred_affine(shape, sp, rng.uniform(-10, 10, 3))
        arrays, faff = reorient_to_file([*images, lab], aff, flips=(0, 1))  # BraTS files are LPS
        names = list(s.channel_names) + ["seg"]
        for name, arr in zip(names, arrays):
            save_nifti(out / cid / f"{cid}{sep}{name}.nii.gz", arr, faff)
    return out


# ------------------------------------------------------------------------------------------------ CT body
def _body_ct(g, shape, rng, p) -> np.ndarray:
    """Abdomen: air, fat layer, soft tissue, spine (HU)."""
    hu = np.full(shape, -1000.0, np.float32)
    body = np.broadcast_to(_ellipse_mask(g, (0, 0), (p["body_rx"], p["body_ry"])), shape)
    inner = np.broadcast_to(_ellipse_mask(g, (0, 0), (p["body_rx"] - p["fat"], p["body_ry"] - p["fat"])), shape)
    hu[body] = -100.0
    hu[inner] = 40.0
    spine = np.broadcast_to(_ellipse_mask(g, (0, -0.55 * p["body_ry"]), (16, 14)), shape)
    hu[spine] = 500.0
    return hu


def _ct_patient(rng, kw):
    nx, nz = kw["size"], _pick_int(rng, kw["slices"])
    sp = (_pick(rng, kw["spacing"]), _pick(rng, kw["spacing"]), _pick(rng, kw["slice_spacing"]))
    shape = (nx, nx, nz)
    g = _grid(shape, sp)
    half = np.array(shape) * np.array(sp) / 2
    p = {"body_rx": half[0] * rng.uniform(0.85, 0.95), "body_ry": half[1] * rng.uniform(0.6, 0.72), "fat": rng.uniform(8, 20)}
    return shape, sp, g, half, p


def _synth_kits(out: Path, patients: int, seed: int, kw: dict[str, Any], version: int) -> Path:
    data_dir = {19: out / "data", 21: out / "kits21" / "data", 23: out / "dataset"}[version]
    label_name = {19: "segmentation.nii.gz", 21: "aggregated_MAJ_seg.nii.gz", 23: "segmentation.nii.gz"}[version]
    c = kw["contrast"]
    for i in range(patients):
        rng = _rng(seed, i)
        shape, sp, g, half, p = _ct_patient(rng, kw)
        hu = _body_ct(g, shape, rng, p)
        hu[_ellipsoid(g, (0.45 * p["body_rx"], 0.1 * p["body_ry"], half[2] * 0.3), (70, 60, half[2] * 0.8))] = 60.0  # liver
        lab = np.zeros(shape, np.uint8)
        kid_r = (rng.uniform(22, 30), rng.uniform(25, 32), min(rng.uniform(45, 60), half[2] * 0.8))
        kid_c = []
        for side in (-1, 1):
            ctr = (side * rng.uniform(0.35, 0.45) * p["body_rx"], -0.3 * p["body_ry"], rng.uniform(-0.2, 0.2) * half[2])
            kid_c.append(ctr)
            lab[_ellipsoid(g, ctr, kid_r, rng.uniform(-0.4, 0.4))] = 1
        k = int(rng.integers(0, 2))
        tum_r = rng.uniform(10, 25)
        direction = rng.normal(0, 1, 3)
        direction /= np.linalg.norm(direction)
        tum_c = np.array(kid_c[k]) + direction * np.array(kid_r) * 0.8
        lab[_ellipsoid(g, tum_c, (tum_r,) * 3)] = 2
        if version in (21, 23) and rng.uniform() < 0.6:
            cy_c = np.array(kid_c[1 - k]) + rng.uniform(-0.5, 0.5, 3) * np.array(kid_r)
            lab[_ellipsoid(g, cy_c, (rng.uniform(6, 12),) * 3)] = 3
        levels = {1: 180.0 + rng.uniform(-30, 30), 2: 90.0 + rng.uniform(-25, 25), 3: 10.0 + rng.uniform(-5, 5)}
        for v, level in levels.items():
            hu[lab == v] = 40.0 + c * (level - 40.0)
        img = _ct(rng, hu, kw["noise"], kw["blur"])
        aff = _centred_affine(shape, sp, rng.uniform(-20, 20, 3))
        # KiTS stores (z, y, x): every axis reversed, then transposed; the affine's first column is the z axis
        (fimg, flab), faff = reorient_to_file([img, lab], aff, flips=(0, 1, 2), perm=(2, 1, 0))
        cid = f"case_{i:05d}"
        save_nifti(data_dir / cid / "imaging.nii.gz", fimg, faff)
        save_nifti(data_dir / cid / label_name, flab, faff)
    return out


# --------------------------------------------------------------------------------------------------- AMOS
# organ: (centre as a fraction of the body half-extents (x, y, z), radii as fractions, CT HU)
_AMOS_ORGANS = {
    6: ((0.45, 0.05, 0.35), (0.42, 0.55, 0.3), 60),  # liver (RAS: +x is the patient's right)
    1: ((-0.55, -0.15, 0.35), (0.17, 0.28, 0.2), 50),  # spleen
    7: ((-0.3, 0.3, 0.3), (0.22, 0.25, 0.2), 30),  # stomach
    2: ((0.35, -0.35, 0.05), (0.14, 0.22, 0.22), 180),  # right kidney
    3: ((-0.35, -0.35, 0.1), (0.14, 0.22, 0.22), 180),  # left kidney
    14: ((0.0, 0.35, -0.75), (0.22, 0.22, 0.15), 5),  # bladder
    13: ((0.15, 0.1, -0.05), (0.09, 0.12, 0.15), 45),  # duodenum
    10: ((-0.05, 0.0, 0.05), (0.3, 0.08, 0.07), 90),  # pancreas
    8: ((-0.08, -0.3, 0.0), (0.07, 0.08, 0.95), 200),  # aorta
    9: ((0.12, -0.25, 0.0), (0.08, 0.08, 0.95), 160),  # postcava
    5: ((-0.05, -0.2, 0.85), (0.05, 0.06, 0.15), 40),  # esophagus
    4: ((0.3, 0.3, 0.2), (0.08, 0.1, 0.1), 10),  # gallbladder
    11: ((0.25, -0.3, 0.4), (0.05, 0.06, 0.08), 40),  # right adrenal gland
    12: ((-0.25, -0.3, 0.4), (0.05, 0.06, 0.08), 40),  # left adrenal gland
    15: ((0.0, 0.25, -0.92), (0.1, 0.1, 0.08), 45),  # prostate/uterus
}


def _synth_amos(out: Path, patients: int, seed: int, kw: dict[str, Any]) -> Path:
    s = DEFAULT_SETTINGS["amos"]
    mri_every = int(kw.get("mri_every", 4))  # every n-th case is MRI (id > 500)
    training = []
    c = kw["contrast"]
    for i in range(patients):
        rng = _rng(seed, i)
        is_mri = mri_every > 0 and i % mri_every == mri_every - 1
        num = 501 + i if is_mri else 1 + i
        cid = f"amos_{num:04d}"
        shape, sp, g, half, p = _ct_patient(rng, kw)
        extent = np.array([p["body_rx"], p["body_ry"], half[2]])
        hu = _body_ct(g, shape, rng, p)
        lab = np.zeros(shape, np.uint8)
        for organ, (ctr, rad, level) in _AMOS_ORGANS.items():
            m = _ellipsoid(g, (np.array(ctr) + rng.uniform(-0.04, 0.04, 3)) * extent, np.array(rad) * rng.uniform(0.85, 1.15, 3) * extent)
            lab[m] = organ
            hu[m] = 40.0 + c * (level + rng.uniform(-10, 10) - 40.0)
        if is_mri:
            body = hu > -500
            mr = np.where(body, 0.4 + (hu - 40.0) / 400.0, 0.02).astype(np.float32)
            img = _mri(rng, np.clip(mr, 0.02, None), kw["noise"], kw["blur"], kw["bias"], rng.uniform(200, 900))
        else:
            img = _ct(rng, hu, kw["noise"], kw["blur"])
        aff = _centred_affine(shape, sp, rng.uniform(-20, 20, 3))
        (fimg, flab), faff = reorient_to_file([img, lab], aff, flips=(0, 1))
        save_nifti(out / "imagesTr" / f"{cid}.nii.gz", fimg, faff)
        save_nifti(out / "labelsTr" / f"{cid}.nii.gz", flab, faff)
        training.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
    meta = {
        "name": "AMOS", "description": "synthetic stand-in for AMOS22 (CT ids <= 500, MRI ids > 500)",
        "tensorImageSize": "3D", "modality": {"0": "CT"},
        "labels": {str(k): n for k, n in enumerate(s.class_names)},
        "numTraining": len(training), "numValidation": 0, "numTest": 0, "training": training, "validation": [], "test": [],
    }  # fmt: skip
    write_json_atomic(out / "dataset.json", meta)
    return out


# ------------------------------------------------------------------------------------------- MSD / nnU-Net
def _generic_case(rng, kw, channels: Sequence[str], n_classes: int):
    """Body with an organ (class 1), a lesion inside it (class 2) and further blobs (classes 3..)."""
    nx, nz = kw["size"], _pick_int(rng, kw["slices"])
    sp = (_pick(rng, kw["spacing"]), _pick(rng, kw["spacing"]), _pick(rng, kw["slice_spacing"]))
    shape = (nx, nx, nz)
    g = _grid(shape, sp)
    half = np.array(shape) * np.array(sp) / 2
    body = _ellipsoid(g[:2], (0, 0), half[:2] * rng.uniform(0.75, 0.9, 2))
    body = np.broadcast_to(body[..., None] if body.ndim == 2 else body, shape)
    lab = np.zeros(shape, np.uint8)
    organ_c = rng.uniform(-0.25, 0.25, 3) * half
    organ_r = half * rng.uniform(0.3, 0.45, 3)
    organ = _ellipsoid(g, organ_c, organ_r, rng.uniform(0, math.pi)) & body
    lab[organ] = 1
    if n_classes > 2:
        les_c = organ_c + rng.uniform(-0.25, 0.25, 3) * organ_r
        lab[_ellipsoid(g, les_c, organ_r * rng.uniform(0.4, 0.6, 3)) & organ] = 2
    for k in range(3, n_classes):
        ctr = rng.uniform(-0.6, 0.6, 3) * half
        lab[_ellipsoid(g, ctr, half * rng.uniform(0.1, 0.2, 3)) & body & (lab == 0)] = k
    images = []
    c = kw["contrast"]
    for ch in channels:
        crng = np.random.default_rng(zlib.crc32(str(ch).encode()))  # per-channel tissue levels, same for all cases
        if str(ch).upper() == "CT":
            levels = np.array([40.0, *crng.uniform(60, 200, n_classes - 1)]) + rng.uniform(-10, 10, n_classes)
            hu = np.where(body, 40.0 + c * (levels[lab] - 40.0), -1000.0).astype(np.float32)
            images.append(_ct(rng, hu, kw["noise"], kw["blur"]))
        else:
            levels = np.array([0.4, *crng.uniform(0.6, 1.2, n_classes - 1)]) * rng.uniform(0.92, 1.08, n_classes)
            clean = np.where(body, 0.4 + c * (levels[lab] - 0.4), 0.03).astype(np.float32)
            images.append(_mri(rng, clean, kw["noise"], kw["blur"], kw["bias"], rng.uniform(200, 1500)))
    return images, lab, _centred_affine(shape, sp, rng.uniform(-20, 20, 3))


def _synth_msd(out: Path, patients: int, seed: int, kw: dict[str, Any]) -> Path:
    channels = tuple(kw.get("channels", ("T2", "ADC")))
    class_names = tuple(kw.get("class_names", ("background", "PZ", "TZ")))
    task = str(kw.get("task", "Task05_Prostate"))
    prefix = task.split("_", 1)[-1].lower()
    training = []
    for i in range(patients):
        rng = _rng(seed, i)
        images, lab, aff = _generic_case(rng, kw, channels, len(class_names))
        flips, perm = _ORIENTATIONS[i % len(_ORIENTATIONS)]
        cid = f"{prefix}_{i:02d}"
        # MSD keeps several channels in one 4-D file, channels last
        img = np.stack(images, axis=-1) if len(images) > 1 else images[0]
        (fimg, flab), faff = reorient_to_file([img, lab], aff, flips, perm)
        save_nifti(out / "imagesTr" / f"{cid}.nii.gz", fimg, faff)
        save_nifti(out / "labelsTr" / f"{cid}.nii.gz", flab, faff)
        training.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
    meta = {
        "name": task.split("_", 1)[-1], "description": f"synthetic stand-in in the MSD layout ({task})",
        "reference": "synthetic", "licence": "CC-BY-SA 4.0", "release": "1.0",
        "tensorImageSize": "4D" if len(channels) > 1 else "3D",
        "modality": {str(k): n for k, n in enumerate(channels)},
        "labels": {str(k): n for k, n in enumerate(class_names)},
        "numTraining": len(training), "numTest": 0, "training": training, "test": [],
    }  # fmt: skip
    write_json_atomic(out / "dataset.json", meta)
    return out


def _synth_nnunet(out: Path, patients: int, seed: int, kw: dict[str, Any]) -> Path:
    channels = tuple(kw.get("channels", ("T2", "ADC")))
    class_names = tuple(kw.get("class_names", ("background", "organ", "lesion")))
    root = out / f"Dataset{int(kw.get('dataset_id', 1)):03d}_{kw.get('dataset_name', 'Synthetic')}"
    for i in range(patients):
        rng = _rng(seed, i)
        images, lab, aff = _generic_case(rng, kw, channels, len(class_names))
        flips, perm = _ORIENTATIONS[i % len(_ORIENTATIONS)]
        arrays, faff = reorient_to_file([*images, lab], aff, flips, perm)
        cid = f"case_{i:04d}"
        for ch, arr in enumerate(arrays[:-1]):
            save_nifti(root / "imagesTr" / f"{cid}_{ch:04d}.nii.gz", arr, faff)
        save_nifti(root / "labelsTr" / f"{cid}.nii.gz", arrays[-1], faff)
    meta = {
        "channel_names": {str(k): n for k, n in enumerate(channels)},
        "labels": {n: k for k, n in enumerate(class_names)},
        "numTraining": patients, "file_ending": ".nii.gz", "name": root.name.split("_", 1)[-1],
        "description": "synthetic stand-in in the nnU-Net v2 raw layout",
    }  # fmt: skip
    write_json_atomic(root / "dataset.json", meta)
    return root


# ------------------------------------------------------------------------------------------------ public
_DEFAULTS: dict[str, dict[str, Any]] = {
    # ACDC: low noise and little blur (a high ceiling); the difficulty is in the anatomy (see _acdc_clean) and was
    # measured at the benchmark's budget (benchmarks/results/synth_headroom.md)
    "acdc": {"size": 80, "slices": (6, 9), "spacing": (1.8, 2.2), "slice_spacing": 10.0, "noise": 0.07, "blur": 0.6,
             "bias": 0.35},
    "brats": {"size": 48, "slices": (30, 34), "spacing": 4.0, "slice_spacing": 4.0, "noise": 0.05, "blur": 0.6},
    "kits": {"size": 64, "slices": (14, 18), "spacing": (4.8, 5.4), "slice_spacing": 6.0, "noise": 0.02, "blur": 0.6},
    "amos": {"size": 64, "slices": (22, 26), "spacing": (5.2, 5.8), "slice_spacing": 10.0, "noise": 0.02, "blur": 0.6},
    "msd": {"size": 64, "slices": (8, 12), "spacing": (1.8, 2.2), "slice_spacing": 4.0, "noise": 0.06, "blur": 0.6},
    "nnunet": {"size": 64, "slices": (8, 12), "spacing": (1.8, 2.2), "slice_spacing": 4.0, "noise": 0.06, "blur": 0.6},
}
_COMMON = {"contrast": 1.0, "bias": 0.25}
#: Options of one generator beyond size and difficulty (see :func:`synthesize`).
_OPTIONS: dict[str, set[str]] = {
    "acdc": {"frames", "test_fraction", "label_shift_mm"},
    "amos": {"mri_every"},
    "msd": {"task", "channels", "class_names"},
    "nnunet": {"dataset_id", "dataset_name", "channels", "class_names"},
}


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
            ``test_fraction``, ``label_shift_mm`` (the known-answer variant, :func:`shift_label`); AMOS ``mri_every``
            (every n-th case is MRI, 0 for none); MSD ``task``,
            ``channels``, ``class_names``; nnU-Net ``dataset_id``, ``dataset_name``, ``channels``,
            ``class_names``.

    Returns:
        The dataset root to give to the adapter (for nnU-Net the ``DatasetNNN_Name`` folder).
    """
    name = check_dataset_name(dataset)
    if not isinstance(patients, int) or patients < 1:
        raise ValueError(f"patients must be a whole number >= 1, got {patients!r}")
    family = "brats" if name.startswith("brats") else "kits" if name.startswith("kits") else name
    allowed = set(_COMMON) | set(_DEFAULTS[family]) | _OPTIONS.get(family, set())
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"unknown option {unknown[0]!r} for synthetic {name}{hint} (options: {', '.join(sorted(allowed))})")
    kw = {**_COMMON, **_DEFAULTS[family], **kwargs}
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if family == "acdc":
        return _synth_acdc(out, patients, seed, kw)
    if family == "brats":
        return _synth_brats(out, patients, seed, kw, 2023 if name == "brats2023" else 2021)
    if family == "kits":
        return _synth_kits(out, patients, seed, kw, int(name[-2:]))
    if family == "amos":
        return _synth_amos(out, patients, seed, kw)
    if family == "msd":
        return _synth_msd(out, patients, seed, kw)
    return _synth_nnunet(out, patients, seed, kw)
