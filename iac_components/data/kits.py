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

from iac_components.data.base import Case, DatasetAdapter, DatasetError
from iac_components.data.settings import DEFAULT_SETTINGS

__all__ = ["KiTSAdapter", "KITS_LABEL_FILES"]

KITS_LABEL_FILES = {19: "segmentation.nii.gz", 21: "aggregated_MAJ_seg.nii.gz", 23: "segmentation.nii.gz"}
_CASE_RE = re.compile(r"^case_(\d{5})$")


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
        s = DEFAULT_SETTINGS[self.name]
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
