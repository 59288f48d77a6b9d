"""BraTS (brain tumour MRI, 4 channels): the 2021 and 2023 (glioma) layouts.

2021 (``RSNA_ASNR_MICCAI_BraTS2021_TrainingData``)::

    BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz     labels 0, 1 NCR, 2 ED, 4 ET

2023 (``ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData``)::

    BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz   labels 0, 1 NCR, 2 ED (SNFH), 3 ET

Evaluation also reports the regions WT (whole tumour: all labels), TC (tumour core: NCR + ET) and ET.
Case folders are looked for in ``root`` and one level below it. Each case is its own patient (2023's suffix
``-NNN`` numbers time points; its ``NNNNN`` part is the patient).

Reference: U. Baid et al., "The RSNA-ASNR-MICCAI BraTS 2021 Benchmark on Brain Tumor Segmentation and
Radiogenomic Classification", arXiv:2107.02314, 2021.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.data.base import Case, DatasetAdapter, DatasetError
from iac_components.data.settings import BRATS_HD95_MAX, DatasetSettings
from iac_components.data.synth import (
    SyntheticSpec,
    centred_affine,
    ellipsoid,
    grid_mm,
    mri_image,
    patient_rng,
    pick,
    pick_int,
    reorient_to_file,
    save_nifti,
)

__all__ = ["BraTSAdapter", "BRATS_LAYOUTS"]

BRATS_LAYOUTS = {
    2021: {"dir": re.compile(r"^BraTS2021_(\d{5})$"), "sep": "_", "channels": ("t1", "t1ce", "t2", "flair")},
    2023: {"dir": re.compile(r"^BraTS-GLI-(\d{5})-(\d{3})$"), "sep": "-", "channels": ("t1n", "t1c", "t2w", "t2f")},
}


_BRATS_COMMON = dict(spacing=(1.0, 1.0), spatial_size=(224, 224), hd95_max=BRATS_HD95_MAX)
#: Default preprocessing and evaluation settings per version (:mod:`iac_components.data.settings` says what each
#: means); ``brats`` is 2021's.
SETTINGS = {
    "brats2021": DatasetSettings(
        **_BRATS_COMMON, class_names=("background", "NCR", "ED", "ET"), label_values=(0, 1, 2, 4),
        channel_names=("t1", "t1ce", "t2", "flair"), regions={"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)},
    ),
    "brats2023": DatasetSettings(
        **_BRATS_COMMON, class_names=("background", "NCR", "ED", "ET"), label_values=(0, 1, 2, 3),
        channel_names=("t1n", "t1c", "t2w", "t2f"), regions={"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)},
    ),
}  # fmt: skip
SETTINGS["brats"] = SETTINGS["brats2021"]


class BraTSAdapter(DatasetAdapter):
    """Adapter for BraTS 2021 / 2023 case folders.

    Args:
        root: folder holding the case folders (or a folder one level above them).
        require_labels: raise when a ``seg`` file is missing (validation-phase data has none: pass ``False``).
        version: 2021, 2023 or ``"auto"`` (detected from the folder names; an error when both are present).
    """

    modality = "MRI"
    source = 'BraTS 2021 / 2023: https://www.synapse.org/brats (one folder per case)'

    def __init__(self, root: str | os.PathLike, require_labels: bool = True, version: int | str = "auto") -> None:
        super().__init__(root, require_labels)
        self._dirs: dict[int, list[Path]] = {v: self._case_dirs(v) for v in BRATS_LAYOUTS}
        if version == "auto":
            found = [v for v, d in self._dirs.items() if d]
            if len(found) > 1:
                raise DatasetError(f"brats: {self.root} holds both 2021 and 2023 case folders; name brats2021 or brats2023")
            version = found[0] if found else 2021
        version = int(version)
        if version not in BRATS_LAYOUTS:
            raise DatasetError(f"brats: unknown version {version}; valid: 2021, 2023")
        self.version = version
        self.name = f"brats{version}"
        s = SETTINGS[self.name]
        self.channel_names, self.class_names, self.label_values = s.channel_names, s.class_names, s.label_values

    def layout_hint(self) -> str:
        return (
            "BraTS2021_NNNNN/BraTS2021_NNNNN_{t1,t1ce,t2,flair,seg}.nii.gz"
            if self.version == 2021
            else "BraTS-GLI-NNNNN-NNN/BraTS-GLI-NNNNN-NNN-{t1n,t1c,t2w,t2f,seg}.nii.gz"
        )

    def _case_dirs(self, version: int) -> list[Path]:
        pattern = BRATS_LAYOUTS[version]["dir"]
        found = [p for p in self.root.iterdir() if p.is_dir() and pattern.match(p.name)]
        if not found:
            for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
                found += [p for p in sub.iterdir() if p.is_dir() and pattern.match(p.name)]
        return sorted(found)

    def _find_cases(self) -> list[Case]:
        layout = BRATS_LAYOUTS[self.version]
        sep = layout["sep"]
        cases = []
        for d in self._dirs[self.version]:
            cid = d.name
            images = self._images_or_error([d / f"{cid}{sep}{ch}.nii.gz" for ch in layout["channels"]], cid)
            label = self._label_or_error(d / f"{cid}{sep}seg.nii.gz", cid)
            pid = cid if self.version == 2021 else f"BraTS-GLI-{layout['dir'].match(cid).group(1)}"
            cases.append(Case(cid, pid, images, label, "MRI", "training", {}))
        return cases


# ------------------------------------------------------------------------------------------- synthetic stand-in
def _synth_brats(out: Path, patients: int, seed: int, kw: dict[str, Any], version: int) -> Path:
    s = SETTINGS[f"brats{version}"]
    et = s.label_values[-1]
    # tissue intensities per channel (t1, t1ce, t2, flair): brain, CSF, ED, ET, NCR
    table = np.array(
        [[0.70, 0.20, 0.50, 0.60, 0.30], [0.60, 0.20, 0.50, 1.30, 0.25], [0.50, 1.20, 1.00, 0.80, 1.10], [0.50, 0.15, 1.10, 0.90, 0.60]]
    )  # fmt: skip
    for i in range(patients):
        rng = patient_rng(seed, i)
        if version == 2021:
            cid, sep = f"BraTS2021_{i:05d}", "_"
        else:
            cid, sep = f"BraTS-GLI-{i:05d}-000", "-"
        nx, nz = kw["size"], pick_int(rng, kw["slices"])
        sp = (pick(rng, kw["spacing"]),) * 2 + (pick(rng, kw["slice_spacing"]),)
        shape = (nx, nx, nz)
        g = grid_mm(shape, sp)
        half = np.array(shape) * np.array(sp) / 2
        brain_r = half * np.array([rng.uniform(0.68, 0.78), rng.uniform(0.8, 0.9), rng.uniform(0.75, 0.88)])
        brain = ellipsoid(g, rng.uniform(-5, 5, 3), brain_r)
        vent = ellipsoid(g, (-8, 5, 5), brain_r * [0.1, 0.3, 0.2]) | ellipsoid(g, (8, 5, 5), brain_r * [0.1, 0.3, 0.2])
        ctr = rng.uniform(-0.45, 0.45, 3) * brain_r
        r_ed = rng.uniform(0.25, 0.4) * brain_r.min() * 2
        r_core = r_ed * rng.uniform(0.45, 0.7)
        r_ncr = r_core * rng.uniform(0.3, 0.7)
        ang = rng.uniform(0, math.pi)
        lab = np.zeros(shape, np.uint8)
        ed = ellipsoid(g, ctr, r_ed * rng.uniform(0.8, 1.2, 3), ang) & brain
        core = ellipsoid(g, ctr + rng.uniform(-2, 2, 3), r_core * rng.uniform(0.85, 1.15, 3), ang) & brain
        ncr = ellipsoid(g, ctr, np.full(3, r_ncr), ang) & core
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
            images.append(mri_image(rng, clean, kw["noise"], kw["blur"], kw["bias"], rng.uniform(300, 2500), mask=brain))
        aff = centred_affine(shape, sp, rng.uniform(-10, 10, 3))
        arrays, faff = reorient_to_file([*images, lab], aff, flips=(0, 1))  # BraTS files are LPS
        names = list(s.channel_names) + ["seg"]
        for name, arr in zip(names, arrays):
            save_nifti(out / cid / f"{cid}{sep}{name}.nii.gz", arr, faff)
    return out


def _generate(out: Path, patients: int, seed: int, kw: dict[str, Any], name: str) -> Path:
    return _synth_brats(out, patients, seed, kw, 2023 if name == "brats2023" else 2021)


#: The synthetic stand-in of this dataset (``iac synth brats``; :func:`iac_components.data.synth.synthesize`).
SYNTHETIC = SyntheticSpec(
    generate=_generate,
    defaults={"size": 48, "slices": (30, 34), "spacing": 4.0, "slice_spacing": 4.0, "noise": 0.05, "blur": 0.6},
    prepare={"spacing": (4.0, 4.0), "spatial_size": (48, 48)},
)


#: Its row of the bundle collection (fields of :class:`iac_components.bundles.table.DatasetRow`).
BUNDLE_ROW = {
    "key": "brats", "title": "BraTS 2021/2023 glioma MRI (NCR, ED, ET)", "default_dir": "/workspace/data/BraTS2021",
    "license": "BraTS data: CC BY 4.0 / challenge terms; cite Baid et al. 2021 and Menze et al. 2015.",
    "image_description": "4 MRI sequences (t1, t1ce, t2, flair), each z-scored over the brain (non-zero voxels)",
    # brats_iac_3d: BraTS's own 1 mm grid, 96^3 patches (a third of the 240 x 240 x 155 volume per axis)
    "volume": {"spacing": (1.0, 1.0, 1.0), "patch_size": (96, 96, 96)},
}  # fmt: skip
