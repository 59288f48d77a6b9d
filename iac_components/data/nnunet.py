"""nnU-Net v2 raw layout.

::

    nnUNet_raw/Dataset001_Name/dataset.json   {"channel_names": {"0": "T2", "1": "ADC"},
                                               "labels": {"background": 0, "PZ": 1, "TZ": 2},
                                               "numTraining": 32, "file_ending": ".nii.gz"}
    nnUNet_raw/Dataset001_Name/imagesTr/case_0001_0000.nii.gz   channel 0 (one file per channel: _0000, _0001...)
    nnUNet_raw/Dataset001_Name/imagesTr/case_0001_0001.nii.gz   channel 1
    nnUNet_raw/Dataset001_Name/labelsTr/case_0001.nii.gz

Cases are the label files in ``labelsTr`` with the dataset's ``file_ending``; their images are
``imagesTr/{case}_{channel:04d}{file_ending}``. ``root`` is the ``DatasetNNN_Name`` folder, or ``nnUNet_raw``
holding exactly one such folder (or pass ``dataset_id``). A channel called ``CT`` makes the dataset CT.
Region-based labels (lists of values) are not supported. Each case is its own patient.

Reference: F. Isensee et al., "nnU-Net: a self-configuring method for deep learning-based biomedical image
segmentation", Nature Methods 18, 2021.
"""

from __future__ import annotations

import logging
import os
import re

from iac_components.data.base import Case, DatasetAdapter, DatasetError, modality_from_channel_names
from iac_components.data.msd import parse_channels, parse_labels, read_dataset_json

__all__ = ["NNUNetAdapter"]

_DATASET_RE = re.compile(r"^Dataset(\d{3})_(.+)$")
logger = logging.getLogger(__name__)


class NNUNetAdapter(DatasetAdapter):
    """Adapter for an nnU-Net v2 raw dataset folder.

    Args:
        root: ``DatasetNNN_Name`` or a folder holding it.
        require_labels: raise when an image's label is missing (cases are listed from ``labelsTr``).
        dataset_id: pick ``DatasetNNN_*`` when ``root`` holds several.
    """

    name = "nnunet"
    source = 'your data in the nnU-Net v2 raw layout (DatasetNNN_Name/ with imagesTr/, labelsTr/, dataset.json)'

    def __init__(self, root: str | os.PathLike, require_labels: bool = True, dataset_id: int | None = None) -> None:
        super().__init__(root, require_labels)
        if not (self.root / "dataset.json").is_file():
            subs = sorted(p for p in self.root.iterdir() if p.is_dir() and _DATASET_RE.match(p.name))
            if dataset_id is not None:
                subs = [p for p in subs if int(_DATASET_RE.match(p.name).group(1)) == int(dataset_id)]
            if len(subs) != 1:
                names = [p.name for p in subs]
                raise DatasetError(
                    f"nnunet: {self.root} has no dataset.json and {len(subs)} DatasetNNN_Name folders {names}; "
                    "pass the dataset folder or dataset_id"
                )
            self.root = subs[0]
        self.json_path = self.root / "dataset.json"
        self.meta = read_dataset_json(self.json_path)
        where = str(self.json_path)
        if "file_ending" not in self.meta and isinstance(self.meta.get("training"), list):
            raise DatasetError(
                f"nnunet: {where} is in the MSD layout (a 'training' list of image/label pairs, no 'file_ending'): "
                "pass --dataset msd"
            )
        self.channel_names = parse_channels(self.meta, where)
        self.class_names, self.label_values = parse_labels(self.meta.get("labels") or {}, where)
        self.modality = modality_from_channel_names(self.channel_names)
        self.file_ending = str(self.meta.get("file_ending", ".nii.gz"))

    def layout_hint(self) -> str:
        return f"labelsTr/case{self.file_ending} + imagesTr/case_0000{self.file_ending}"

    def _find_cases(self) -> list[Case]:
        end = self.file_ending
        img_dir, lab_dir = self.root / "imagesTr", self.root / "labelsTr"
        if lab_dir.is_dir():
            ids = sorted(p.name[: -len(end)] for p in lab_dir.iterdir() if p.name.endswith(end) and not p.name.startswith("."))
        else:
            ids = []
        # images without a label file
        pat = re.compile(r"^(.+)_(\d{4})" + re.escape(end) + "$")
        img_ids = sorted({m.group(1) for p in img_dir.glob(f"*{end}") if (m := pat.match(p.name))}) if img_dir.is_dir() else []
        for cid in img_ids:
            if cid not in ids:
                if self.require_labels:
                    raise DatasetError(f"nnunet: case {cid}: missing label file {lab_dir / (cid + end)}")
                ids.append(cid)
        cases = []
        for cid in sorted(ids):
            images = self._images_or_error([img_dir / f"{cid}_{i:04d}{end}" for i in range(len(self.channel_names))], cid)
            label_path = lab_dir / f"{cid}{end}"
            label = str(label_path) if label_path.is_file() else None
            cases.append(Case(cid, cid, images, label, modality_from_channel_names(self.channel_names), "training", {}))
        n = self.meta.get("numTraining")
        if n is not None and int(n) != len(cases):
            logger.warning("nnunet: %s says numTraining=%s but %d cases were found", self.json_path, n, len(cases))
        return cases
