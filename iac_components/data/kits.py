"""KiTS (kidney tumour CT): the 2019, 2021 and 2023 layouts.

::

    KiTS19: data/case_00000/imaging.nii.gz + segmentation.nii.gz         0 bg, 1 kidney, 2 tumour
    KiTS21: kits21/data/case_00000/imaging.nii.gz + aggregated_MAJ_seg.nii.gz   + 3 cyst
    KiTS23: dataset/case_00000/imaging.nii.gz + segmentation.nii.gz       + 3 cyst

Volumes are stored (z, y, x): the first voxel axis is the axial one, and the affine says so; the preprocessing
chain's reorientation to RAS brings the axial axis last. Case folders are looked for in ``root`` and in its
``data/``, ``dataset/`` and ``kits21/data/`` folders. KiTS19's official test cases (210..299) have no
segmentation; they are listed with ``subset="testing"`` and ``label=None`` and never raise. Each case is its
own patient.

Reference: N. Heller et al., "The state of the art in kidney and kidney tumor segmentation in contrast-enhanced
CT imaging: Results of the KiTS19 challenge", Medical Image Analysis 67, 2021.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.data.base import Case, DatasetAdapter, DatasetError
from iac_components.data.settings import DatasetSettings
from iac_components.data.synth import (
    SyntheticSpec,
    body_ct,
    centred_affine,
    ct_image,
    ct_patient,
    ellipsoid,
    patient_rng,
    reorient_to_file,
    save_nifti,
)

__all__ = ["KiTSAdapter", "KITS_LABEL_FILES"]

KITS_LABEL_FILES = {19: "segmentation.nii.gz", 21: "aggregated_MAJ_seg.nii.gz", 23: "segmentation.nii.gz"}
_CASE_RE = re.compile(r"^case_(\d{5})$")


_KITS_COMMON = dict(spacing=(1.0, 1.0), spatial_size=(512, 512), ct_window=(-79.0, 304.0))
#: Default preprocessing and evaluation settings per version (:mod:`iac_components.data.settings` says what each
#: means).
SETTINGS = {
    "kits19": DatasetSettings(**_KITS_COMMON, class_names=("background", "kidney", "tumor"), channel_names=("CT",)),
    "kits21": DatasetSettings(
        **_KITS_COMMON, class_names=("background", "kidney", "tumor", "cyst"), channel_names=("CT",)
    ),
    "kits23": DatasetSettings(
        **_KITS_COMMON, class_names=("background", "kidney", "tumor", "cyst"), channel_names=("CT",)
    ),
}  # fmt: skip


class KiTSAdapter(DatasetAdapter):
    """Adapter for KiTS19 / KiTS21 / KiTS23 case folders.

    Args:
        root: the repository or data folder.
        require_labels: raise when a case's label file is missing (except KiTS19's unlabelled test cases).
        version: 19, 21 or 23.
    """

    modality = "CT"
    source = 'KiTS23: https://github.com/neheller/kits23 (dataset/case_NNNNN/)'

    def __init__(self, root: str | os.PathLike, require_labels: bool = True, version: int = 23) -> None:
        super().__init__(root, require_labels)
        if int(version) not in KITS_LABEL_FILES:
            raise DatasetError(f"kits: unknown version {version}; valid: 19, 21, 23")
        self.version = int(version)
        self.name = f"kits{self.version}"
        s = SETTINGS[self.name]
        self.channel_names, self.class_names = s.channel_names, s.class_names
        self.label_values = tuple(range(len(s.class_names)))

    def layout_hint(self) -> str:
        return f"case_NNNNN/imaging.nii.gz + {KITS_LABEL_FILES[self.version]}"

    def _data_dir(self) -> Path:
        for sub in ("", "data", "dataset", "kits21/data"):
            d = self.root / sub if sub else self.root
            if d.is_dir() and any(_CASE_RE.match(p.name) for p in d.iterdir() if p.is_dir()):
                return d
        return self.root

    def _find_cases(self) -> list[Case]:
        cases = []
        for d in sorted(p for p in self._data_dir().iterdir() if p.is_dir() and _CASE_RE.match(p.name)):
            cid = d.name
            image = self._images_or_error([d / "imaging.nii.gz"], cid)
            label_path = d / KITS_LABEL_FILES[self.version]
            subset = "training"
            if self.version == 19 and int(_CASE_RE.match(cid).group(1)) >= 210 and not label_path.exists():
                label, subset = None, "testing"
            else:
                label = self._label_or_error(label_path, cid)
            cases.append(Case(cid, cid, image, label, "CT", subset, {}))
        return cases


# ------------------------------------------------------------------------------------------- synthetic stand-in
def _synth_kits(out: Path, patients: int, seed: int, kw: dict[str, Any], version: int) -> Path:
    data_dir = {19: out / "data", 21: out / "kits21" / "data", 23: out / "dataset"}[version]
    label_name = {19: "segmentation.nii.gz", 21: "aggregated_MAJ_seg.nii.gz", 23: "segmentation.nii.gz"}[version]
    c = kw["contrast"]
    for i in range(patients):
        rng = patient_rng(seed, i)
        shape, sp, g, half, p = ct_patient(rng, kw)
        hu = body_ct(g, shape, rng, p)
        hu[ellipsoid(g, (0.45 * p["body_rx"], 0.1 * p["body_ry"], half[2] * 0.3), (70, 60, half[2] * 0.8))] = 60.0  # liver
        lab = np.zeros(shape, np.uint8)
        kid_r = (rng.uniform(22, 30), rng.uniform(25, 32), min(rng.uniform(45, 60), half[2] * 0.8))
        kid_c = []
        for side in (-1, 1):
            ctr = (side * rng.uniform(0.35, 0.45) * p["body_rx"], -0.3 * p["body_ry"], rng.uniform(-0.2, 0.2) * half[2])
            kid_c.append(ctr)
            lab[ellipsoid(g, ctr, kid_r, rng.uniform(-0.4, 0.4))] = 1
        k = int(rng.integers(0, 2))
        tum_r = rng.uniform(10, 25)
        direction = rng.normal(0, 1, 3)
        direction /= np.linalg.norm(direction)
        tum_c = np.array(kid_c[k]) + direction * np.array(kid_r) * 0.8
        lab[ellipsoid(g, tum_c, (tum_r,) * 3)] = 2
        if version in (21, 23) and rng.uniform() < 0.6:
            cy_c = np.array(kid_c[1 - k]) + rng.uniform(-0.5, 0.5, 3) * np.array(kid_r)
            lab[ellipsoid(g, cy_c, (rng.uniform(6, 12),) * 3)] = 3
        levels = {1: 180.0 + rng.uniform(-30, 30), 2: 90.0 + rng.uniform(-25, 25), 3: 10.0 + rng.uniform(-5, 5)}
        for v, level in levels.items():
            hu[lab == v] = 40.0 + c * (level - 40.0)
        img = ct_image(rng, hu, kw["noise"], kw["blur"])
        aff = centred_affine(shape, sp, rng.uniform(-20, 20, 3))
        # KiTS stores (z, y, x): every axis reversed, then transposed; the affine's first column is the z axis
        (fimg, flab), faff = reorient_to_file([img, lab], aff, flips=(0, 1, 2), perm=(2, 1, 0))
        cid = f"case_{i:05d}"
        save_nifti(data_dir / cid / "imaging.nii.gz", fimg, faff)
        save_nifti(data_dir / cid / label_name, flab, faff)
    return out


def _generate(out: Path, patients: int, seed: int, kw: dict[str, Any], name: str) -> Path:
    return _synth_kits(out, patients, seed, kw, int(name[-2:]))


#: The synthetic stand-in of this dataset (``iac synth kits``; :func:`iac_components.data.synth.synthesize`).
SYNTHETIC = SyntheticSpec(
    generate=_generate,
    defaults={"size": 64, "slices": (14, 18), "spacing": (4.8, 5.4), "slice_spacing": 6.0, "noise": 0.02, "blur": 0.6},
    prepare={"spacing": (5.0, 5.0), "spatial_size": (64, 64)},
)


#: Its row of the bundle collection (fields of :class:`iac_components.bundles.table.DatasetRow`).
BUNDLE_ROW = {
    "key": "kits", "title": "KiTS23 kidney CT (kidney, tumour, cyst)", "default_dir": "/workspace/data/kits23/dataset",
    "license": "KiTS23 data: CC BY-NC-SA 4.0; cite Heller et al.", "batch_size": 8, "window_slices": 8,
    "image_description": "abdominal CT, HU clipped to [-79, 304] and scaled to [0, 1]",
    # kits_iac_3d: 1.5 mm isotropic (a 96^3 patch spans 144 mm, a kidney with its tumour), the in-plane field of the
    # 2-D bundles' 512 mm at that spacing
    "volume": {"spacing": (1.5, 1.5, 1.5), "spatial_size": (352, 352), "patch_size": (96, 96, 96)},
}  # fmt: skip
