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
from pathlib import Path
from typing import Any

from iac_components.data.base import Case, DatasetAdapter, DatasetError, modality_from_channel_names
from iac_components.data.msd import parse_channels, parse_labels, read_dataset_json
from iac_components.data.settings import DatasetSettings
from iac_components.data.synth import ORIENTATIONS, SyntheticSpec, generic_case, patient_rng, reorient_to_file, save_nifti
from iac_components.utils import write_json_atomic

__all__ = ["NNUNetAdapter"]

_DATASET_RE = re.compile(r"^Dataset(\d{3})_(.+)$")
logger = logging.getLogger(__name__)


#: Default settings: everything but the normalisation comes from the folder's ``dataset.json``.
SETTINGS = {"nnunet": DatasetSettings()}


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


# ------------------------------------------------------------------------------------------- synthetic stand-in
def _synth_nnunet(out: Path, patients: int, seed: int, kw: dict[str, Any]) -> Path:
    channels = tuple(kw.get("channels", ("T2", "ADC")))
    class_names = tuple(kw.get("class_names", ("background", "organ", "lesion")))
    root = out / f"Dataset{int(kw.get('dataset_id', 1)):03d}_{kw.get('dataset_name', 'Synthetic')}"
    for i in range(patients):
        rng = patient_rng(seed, i)
        images, lab, aff = generic_case(rng, kw, channels, len(class_names))
        flips, perm = ORIENTATIONS[i % len(ORIENTATIONS)]
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


def _generate(out: Path, patients: int, seed: int, kw: dict[str, Any], name: str) -> Path:
    return _synth_nnunet(out, patients, seed, kw)


#: The synthetic stand-in of this dataset (``iac synth nnunet``; :func:`iac_components.data.synth.synthesize`).
SYNTHETIC = SyntheticSpec(
    generate=_generate,
    defaults={"size": 64, "slices": (8, 12), "spacing": (1.8, 2.2), "slice_spacing": 4.0, "noise": 0.06, "blur": 0.6},
    options=frozenset({"dataset_id", "dataset_name", "channels", "class_names"}),
    prepare={"spacing": (2.0, 2.0), "spatial_size": (64, 64)},
)


#: Its row of the bundle collection (fields of :class:`iac_components.bundles.table.DatasetRow`).
BUNDLE_ROW = {
    "key": "custom", "title": "your dataset (nnU-Net v2 raw or MSD layout)",
    "default_dir": "/workspace/data/nnUNet_raw/Dataset001_Custom", "license": "as your data's.",
    "image_description": "channels and classes read from the dataset's dataset.json",
    # custom_iac_3d: the data's median in-plane spacing with their slice spacing kept (no spacing here), 96^3 patches
    "volume": {"patch_size": (96, 96, 96)},
}  # fmt: skip
