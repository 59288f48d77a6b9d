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

from iac_components.data.base import Case, DatasetAdapter, strip_nii
from iac_components.data.msd import MSDAdapter
from iac_components.data.settings import DEFAULT_SETTINGS

__all__ = ["AMOSAdapter", "amos_modality"]

_ID_RE = re.compile(r"^amos_(\d{4})$")


def amos_modality(case_id: str) -> str:
    """``"CT"`` for AMOS ids <= 500, ``"MRI"`` above (``amos_0507`` is MRI)."""
    m = _ID_RE.match(case_id)
    return "MRI" if m and int(m.group(1)) > 500 else "CT"


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
        s = DEFAULT_SETTINGS["amos"]
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
