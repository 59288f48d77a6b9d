"""AMOS22 (abdominal multi-organ CT and MRI, 15 organs).

::

    amos22/dataset.json                     MSD-style: "training" (and "validation") [{image, label}]
    amos22/imagesTr/amos_0001.nii.gz
    amos22/labelsTr/amos_0001.nii.gz
    amos22/imagesVa/..., labelsVa/...        the validation set (listed with subset "validation")

Case ids up to 500 are CT, above 500 MRI (the AMOS convention); each case gets its own modality, so CT cases
are windowed and MRI cases z-scored. Labels: 0 background, 1 spleen, 2 right kidney, 3 left kidney,
4 gallbladder, 5 esophagus, 6 liver, 7 stomach, 8 aorta, 9 postcava, 10 pancreas, 11 right adrenal gland,
12 left adrenal gland, 13 duodenum, 14 bladder, 15 prostate/uterus. Without ``dataset.json`` the adapter
lists ``imagesTr`` / ``labelsTr`` itself and uses these class names. Each case is its own patient.

Reference: Y. Ji et al., "AMOS: A Large-Scale Abdominal Multi-Organ Benchmark for Versatile Medical Image
Segmentation", NeurIPS Datasets and Benchmarks, 2022.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.data.base import Case, DatasetAdapter, strip_nii
from iac_components.data.msd import MSDAdapter
from iac_components.data.settings import DatasetSettings
from iac_components.data.synth import (
    SyntheticSpec,
    body_ct,
    centred_affine,
    ct_image,
    ct_patient,
    ellipsoid,
    mri_image,
    patient_rng,
    reorient_to_file,
    save_nifti,
)
from iac_components.utils import write_json_atomic

__all__ = ["AMOSAdapter", "amos_modality"]

_ID_RE = re.compile(r"^amos_(\d{4})$")


def amos_modality(case_id: str) -> str:
    """``"CT"`` for AMOS ids <= 500, ``"MRI"`` above (``amos_0507`` is MRI)."""
    m = _ID_RE.match(case_id)
    return "MRI" if m and int(m.group(1)) > 500 else "CT"


_AMOS_CLASSES = (
    "background", "spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach",
    "aorta", "postcava", "pancreas", "right adrenal gland", "left adrenal gland", "duodenum", "bladder",
    "prostate/uterus",
)  # fmt: skip
#: Default preprocessing and evaluation settings (:mod:`iac_components.data.settings` says what each means).
SETTINGS = {
    "amos": DatasetSettings(
        spacing=(1.0, 1.0), spatial_size=(512, 512), ct_window=(-175.0, 250.0), class_names=_AMOS_CLASSES,
        channel_names=("image",),
    ),
}  # fmt: skip


class AMOSAdapter(MSDAdapter):
    """Adapter for AMOS22 (``imagesTr``/``labelsTr`` + ``dataset.json``); CT or MRI per case id.

    Args:
        root: the AMOS folder.
        require_labels: raise when a label file is missing.
        modalities: keep only cases of these modalities (``("CT",)`` for the CT-only task 1).
    """

    name = "amos"
    source = 'AMOS22: https://amos22.grand-challenge.org/ (imagesTr/, labelsTr/, dataset.json)'
    modality = "mixed"

    def __init__(
        self, root: str | os.PathLike, require_labels: bool = True, modalities: Sequence[str] = ("CT", "MRI")
    ) -> None:
        self.modalities = tuple(modalities)
        s = SETTINGS["amos"]
        if (Path(root).expanduser() / "dataset.json").is_file():
            super().__init__(root, require_labels, sections={"training": "training", "validation": "validation"})
        else:
            DatasetAdapter.__init__(self, root, require_labels)
            self.meta = {}
            self.class_names, self.label_values = s.class_names, tuple(range(len(s.class_names)))
        self.channel_names = s.channel_names
        self.modality = "mixed"

    def layout_hint(self) -> str:
        return "imagesTr/amos_NNNN.nii.gz + labelsTr/amos_NNNN.nii.gz (+ dataset.json)"

    def case_modality(self, case_id: str) -> str:
        return amos_modality(case_id)

    def _find_cases(self) -> list[Case]:
        if self.meta:
            cases = super()._find_cases()
        else:
            cases = []
            for img_dir, lab_dir, subset in (("imagesTr", "labelsTr", "training"), ("imagesVa", "labelsVa", "validation")):
                d = self.root / img_dir
                if not d.is_dir():
                    continue
                for p in sorted(d.glob("amos_*.nii.gz")):
                    cid = strip_nii(p.name)
                    label = self._label_or_error(self.root / lab_dir / p.name, cid)
                    cases.append(Case(cid, cid, [str(p)], label, amos_modality(cid), subset, {}))
        return [c for c in cases if c.modality in self.modalities]


# ------------------------------------------------------------------------------------------- synthetic stand-in
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
    s = SETTINGS["amos"]
    mri_every = int(kw.get("mri_every", 4))  # every n-th case is MRI (id > 500)
    training = []
    c = kw["contrast"]
    for i in range(patients):
        rng = patient_rng(seed, i)
        is_mri = mri_every > 0 and i % mri_every == mri_every - 1
        num = 501 + i if is_mri else 1 + i
        cid = f"amos_{num:04d}"
        shape, sp, g, half, p = ct_patient(rng, kw)
        extent = np.array([p["body_rx"], p["body_ry"], half[2]])
        hu = body_ct(g, shape, rng, p)
        lab = np.zeros(shape, np.uint8)
        for organ, (ctr, rad, level) in _AMOS_ORGANS.items():
            m = ellipsoid(g, (np.array(ctr) + rng.uniform(-0.04, 0.04, 3)) * extent, np.array(rad) * rng.uniform(0.85, 1.15, 3) * extent)
            lab[m] = organ
            hu[m] = 40.0 + c * (level + rng.uniform(-10, 10) - 40.0)
        if is_mri:
            body = hu > -500
            mr = np.where(body, 0.4 + (hu - 40.0) / 400.0, 0.02).astype(np.float32)
            img = mri_image(rng, np.clip(mr, 0.02, None), kw["noise"], kw["blur"], kw["bias"], rng.uniform(200, 900))
        else:
            img = ct_image(rng, hu, kw["noise"], kw["blur"])
        aff = centred_affine(shape, sp, rng.uniform(-20, 20, 3))
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


def _generate(out: Path, patients: int, seed: int, kw: dict[str, Any], name: str) -> Path:
    return _synth_amos(out, patients, seed, kw)


#: The synthetic stand-in of this dataset (``iac synth amos``; :func:`iac_components.data.synth.synthesize`).
SYNTHETIC = SyntheticSpec(
    generate=_generate,
    defaults={"size": 64, "slices": (22, 26), "spacing": (5.2, 5.8), "slice_spacing": 10.0, "noise": 0.02, "blur": 0.6},
    options=frozenset({"mri_every"}),
    prepare={"spacing": (5.5, 5.5), "spatial_size": (64, 64)},
)


#: Its row of the bundle collection (fields of :class:`iac_components.bundles.table.DatasetRow`).
BUNDLE_ROW = {
    "key": "amos", "title": "AMOS22 abdominal CT/MRI (15 organs)", "default_dir": "/workspace/data/amos22",
    "license": "AMOS22 data: CC BY 4.0; cite Ji et al., NeurIPS 2022.", "batch_size": 8, "window_slices": 8,
    "image_description": "abdominal CT (HU clipped to [-175, 250], scaled) or MRI (z-scored)",
    # amos_iac_3d: 1.5 x 1.5 x 2 mm (AMOS's slices are thicker than its pixels), 96 x 96 x 64 patches (144 x 144 x
    # 128 mm), the in-plane field of the 2-D bundles' 512 mm at that spacing
    "volume": {"spacing": (1.5, 1.5, 2.0), "spatial_size": (352, 352), "patch_size": (96, 96, 64)},
}  # fmt: skip
