"""ACDC (Automated Cardiac Diagnosis Challenge, MICCAI 2017): cine MRI, ED and ES frames.

Official layout (``database/`` of the 2023 release, or the challenge's ``training/`` and ``testing/``)::

    training/patient001/Info.cfg                       ED: 1, ES: 12, Group: DCM, Height, NbFrame, Weight
    training/patient001/patient001_4d.nii.gz           the whole cine sequence (not used for segmentation)
    training/patient001/patient001_frame01.nii.gz      ED frame
    training/patient001/patient001_frame01_gt.nii.gz   its label
    training/patient001/patient001_frame12.nii.gz      ES frame (+ _gt)
    testing/patient101/...                             the official 50 test patients (101..150)

Labels: 0 background, 1 RV (right ventricle cavity), 2 MYO (left ventricle myocardium), 3 LV (left ventricle
cavity). One patient gives two cases, ``patientNNN_ED`` and ``patientNNN_ES``, with the same ``patient_id``.

Reference: O. Bernard et al., "Deep Learning Techniques for Automatic MRI Cardiac Multi-structures
Segmentation and Diagnosis: Is the Problem Solved?", IEEE TMI 37(11), 2018.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.data.base import Case, DatasetAdapter, DatasetError
from iac_components.data.settings import DatasetSettings
from iac_components.data.synth import (
    ORIENTATIONS,
    SyntheticSpec,
    centred_affine,
    grid_mm,
    mri_image,
    patient_rng,
    pick,
    pick_int,
    reorient_to_file,
    save_nifti,
    write_text,
)

__all__ = ["ACDCAdapter", "read_info_cfg"]

_PATIENT_RE = re.compile(r"^patient(\d{3})$")


def read_info_cfg(path: str | os.PathLike) -> dict[str, Any]:
    """Parse an ACDC ``Info.cfg`` (``key: value`` lines) into a dict; ED, ES, NbFrame as ints.

    Raises:
        DatasetError: the file is missing or lacks the ED/ES frame numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"acdc: missing {path}")
    info: dict[str, Any] = {}
    for line in path.read_text(errors="replace").splitlines():
        if ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        if key in ("ED", "ES", "NbFrame"):
            try:
                info[key] = int(float(value))
            except ValueError as e:
                raise DatasetError(f"acdc: {path}: {key} is not a number: {value!r}") from e
        elif key in ("Height", "Weight"):
            try:
                info[key] = float(value)
            except ValueError:
                info[key] = value
        else:
            info[key] = value
    for key in ("ED", "ES"):
        if key not in info:
            raise DatasetError(f"acdc: {path} has no '{key}:' line")
    return info


#: Default preprocessing and evaluation settings (:mod:`iac_components.data.settings` says what each means).
SETTINGS = {
    "acdc": DatasetSettings(
        spacing=(1.5, 1.5), spatial_size=(256, 256), class_names=("background", "RV", "MYO", "LV"),
        label_values=(0, 1, 2, 3), channel_names=("cine",),
    ),
}  # fmt: skip


class ACDCAdapter(DatasetAdapter):
    """Adapter for the ACDC layout; one case per patient and phase (ED, ES).

    Args:
        root: the folder holding ``training/`` and/or ``testing/`` (or the patient folders directly).
        require_labels: raise when a frame's ``_gt`` file is missing.
        subsets: the official subsets to list (folders ``training``, ``testing``).
        phases: the cardiac phases to list, ``("ED", "ES")``.
    """

    name = "acdc"
    source = "ACDC: https://www.creatis.insa-lyon.fr/Challenge/acdc/ (the 'database' folder with training/ and testing/)"
    modality = "MRI"
    channel_names = SETTINGS["acdc"].channel_names
    class_names = SETTINGS["acdc"].class_names
    label_values = SETTINGS["acdc"].label_values

    def __init__(
        self,
        root: str | os.PathLike,
        require_labels: bool = True,
        subsets: Sequence[str] = ("training", "testing"),
        phases: Sequence[str] = ("ED", "ES"),
    ) -> None:
        super().__init__(root, require_labels)
        self.subsets = tuple(subsets)
        self.phases = tuple(phases)

    def layout_hint(self) -> str:
        return "training/patientNNN/Info.cfg and patientNNN_frameMM[_gt].nii.gz"

    def _patient_dirs(self) -> list[tuple[str, Path]]:
        dirs: list[tuple[str, Path]] = []
        for subset in self.subsets:
            d = self.root / subset
            if d.is_dir():
                dirs += [(subset, p) for p in sorted(d.iterdir()) if p.is_dir() and _PATIENT_RE.match(p.name)]
        if not dirs and not any((self.root / s).is_dir() for s in ("training", "testing")):
            # patient folders directly under root
            dirs = [("training", p) for p in sorted(self.root.iterdir()) if p.is_dir() and _PATIENT_RE.match(p.name)]
        return dirs

    def _find_cases(self) -> list[Case]:
        cases: list[Case] = []
        for subset, pdir in self._patient_dirs():
            pid = pdir.name
            info = read_info_cfg(pdir / "Info.cfg")
            four_d = pdir / f"{pid}_4d.nii.gz"
            for phase in self.phases:
                frame = info[phase]
                stem = f"{pid}_frame{frame:02d}"
                cid = f"{pid}_{phase}"
                image = self._images_or_error([pdir / f"{stem}.nii.gz"], cid)
                label = self._label_or_error(pdir / f"{stem}_gt.nii.gz", cid)
                meta = {"phase": phase, "frame": frame, "group": info.get("Group"), "nb_frames": info.get("NbFrame")}
                if four_d.is_file():
                    meta["file_4d"] = str(four_d)
                cases.append(Case(cid, pid, image, label, "MRI", subset, meta))
        return cases


# ------------------------------------------------------------------------------------------- synthetic stand-in
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
        rng = patient_rng(seed, i)
        subset, num = ("training", i + 1) if i < n_train else ("testing", 101 + i - n_train)
        pid = f"patient{num:03d}"
        pdir = out / subset / pid
        nx = kw["size"]
        nz = pick_int(rng, kw["slices"])
        sx, sy = pick(rng, kw["spacing"]), pick(rng, kw["spacing"])
        sz = pick(rng, kw["slice_spacing"])
        shape = (nx, nx, nz)
        g = grid_mm(shape, (sx, sy, sz))
        extent_z = (nz - 1) * sz
        p = _acdc_params(rng, extent_z, sz, nx, sx, sy)
        nb_frames = int(kw.get("frames", 10))
        es = int(round(nb_frames * rng.uniform(0.3, 0.45))) + 1
        ed = 1
        flips, perm = ORIENTATIONS[i % len(ORIENTATIONS)]
        aff = centred_affine(shape, (sx, sy, sz), rng.uniform(-20, 20, 3))
        frames = []
        for f in range(1, nb_frames + 1):
            t = math.sin(math.pi / 2 * (f - 1) / (es - 1)) ** 2 if f <= es else math.cos(math.pi / 2 * (f - es) / (nb_frames + 1 - es)) ** 2
            lab, aux = _acdc_phase(g, p, t)
            frng = patient_rng(seed, 100000 + i * 100 + f)
            clean = _acdc_clean(frng, lab, aux, g, p)
            clean = p["soft"] + kw["contrast"] * (clean - p["soft"])
            img = mri_image(frng, clean, kw["noise"], kw["blur"], kw["bias"], p["scale"])
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
        write_text(pdir / "Info.cfg", info)
    return out


def _generate(out: Path, patients: int, seed: int, kw: dict[str, Any], name: str) -> Path:
    return _synth_acdc(out, patients, seed, kw)


#: The synthetic stand-in of this dataset (``iac synth acdc``; :func:`iac_components.data.synth.synthesize`).
SYNTHETIC = SyntheticSpec(
    generate=_generate,
    # ACDC: low noise and little blur (a high ceiling); the difficulty is in the anatomy (see _acdc_clean) and was
    # measured at the benchmark's budget (benchmarks/results/synth_headroom.md)
    defaults={"size": 80, "slices": (6, 9), "spacing": (1.8, 2.2), "slice_spacing": 10.0, "noise": 0.07, "blur": 0.6,
              "bias": 0.35},
    options=frozenset({"frames", "test_fraction", "label_shift_mm"}),
    prepare={"spacing": (2.0, 2.0), "spatial_size": (80, 80)},
)


#: Its row of the bundle collection (fields of :class:`iac_components.bundles.table.DatasetRow`).
BUNDLE_ROW = {
    "key": "acdc", "title": "ACDC cine-MRI (RV, myocardium, LV)", "default_dir": "/workspace/data/ACDC/database",
    "license": "ACDC data: free for research after registration; cite Bernard et al., IEEE TMI 2018.",
    "image_description": "short-axis cine-MRI frame (ED or ES), z-scored over the image's non-zero voxels",
}  # fmt: skip
