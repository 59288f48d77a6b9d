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

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iac_components.data.base import Case, DatasetAdapter, DatasetError
from iac_components.data.settings import DEFAULT_SETTINGS

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
    channel_names = DEFAULT_SETTINGS["acdc"].channel_names
    class_names = DEFAULT_SETTINGS["acdc"].class_names
    label_values = DEFAULT_SETTINGS["acdc"].label_values

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
