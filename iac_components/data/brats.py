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

import os
import re
from pathlib import Path

from iac_components.data.base import Case, DatasetAdapter, DatasetError
from iac_components.data.settings import DEFAULT_SETTINGS

__all__ = ["BraTSAdapter", "BRATS_LAYOUTS"]

BRATS_LAYOUTS = {
    2021: {"dir": re.compile(r"^BraTS2021_(\d{5})$"), "sep": "_", "channels": ("t1", "t1ce", "t2", "flair")},
    2023: {"dir": re.compile(r"^BraTS-GLI-(\d{5})-(\d{3})$"), "sep": "-", "channels": ("t1n", "t1c", "t2w", "t2f")},
}


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
        s = DEFAULT_SETTINGS[self.name]
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
