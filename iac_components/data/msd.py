"""Generic MSD-style ``dataset.json`` layout (Medical Segmentation Decathlon, also MONAI datalists).

::

    Task09_Spleen/dataset.json        {"modality": {"0": "CT"}, "labels": {"0": "background", "1": "spleen"},
                                       "training": [{"image": "./imagesTr/spleen_2.nii.gz",
                                                     "label": "./labelsTr/spleen_2.nii.gz"}, ...]}
    Task09_Spleen/imagesTr/spleen_2.nii.gz
    Task09_Spleen/labelsTr/spleen_2.nii.gz

``modality`` (or nnU-Net's ``channel_names``) names the channels; several channels may sit in one 4-D file
(MSD stores them last, ``(x, y, z, c)``; ``LoadImaged(ensure_channel_first=True)`` moves them first) or come
as a list of files per case. Any channel called ``CT`` makes the dataset CT (window), else MRI (z-score).
``labels`` maps label value -> name (the MSD form) or name -> value (the nnU-Net form). Paths are relative
to the folder of ``dataset.json``. Each case is its own patient.

Reference: M. Antonelli et al., "The Medical Segmentation Decathlon", Nature Communications 13, 2022.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.data.base import Case, DatasetAdapter, DatasetError, modality_from_channel_names, strip_nii
from iac_components.data.settings import DatasetSettings
from iac_components.data.synth import ORIENTATIONS, SyntheticSpec, generic_case, patient_rng, reorient_to_file, save_nifti
from iac_components.utils import write_json_atomic

__all__ = ["MSDAdapter", "read_dataset_json", "parse_labels", "parse_channels"]


def read_dataset_json(path: str | os.PathLike) -> dict[str, Any]:
    """Load a ``dataset.json``; a one-line :class:`DatasetError` naming the file when missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path} is not valid JSON: {e}") from e


def parse_labels(labels: dict[str, Any], where: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Class names and label values, sorted by value, from MSD (``{"1": "liver"}``) or nnU-Net (``{"liver": 1}``).

    Raises:
        DatasetError: region-based (list) label values, or labels that are neither form.
    """
    pairs: list[tuple[int, str]] = []
    for k, v in labels.items():
        if isinstance(v, (list, tuple)):
            raise DatasetError(f"{where}: region-based label {k!r}: {v} is not supported (use one value per class)")
        try:
            pairs.append((int(k), str(v)))
        except (TypeError, ValueError):
            try:
                pairs.append((int(v), str(k)))
            except (TypeError, ValueError) as e:
                raise DatasetError(f"{where}: cannot read label entry {k!r}: {v!r}") from e
    pairs.sort()
    if not pairs or pairs[0][0] != 0:
        raise DatasetError(f"{where}: labels must include background 0, got {dict(labels)}")
    return tuple(n for _, n in pairs), tuple(v for v, _ in pairs)


def parse_channels(meta: dict[str, Any], where: str) -> tuple[str, ...]:
    """Channel names in channel order from ``channel_names`` or ``modality`` (``{"0": "T2", "1": "ADC"}``)."""
    ch = meta.get("channel_names", meta.get("modality"))
    if not isinstance(ch, dict) or not ch:
        raise DatasetError(f"{where}: needs 'channel_names' or 'modality' as {{\"0\": name, ...}}")
    try:
        return tuple(str(ch[k]) for k in sorted(ch, key=int))
    except ValueError as e:
        raise DatasetError(f"{where}: channel keys must be integers, got {sorted(ch)}") from e


#: Default settings: everything but the normalisation comes from the folder's ``dataset.json``.
SETTINGS = {"msd": DatasetSettings()}


class MSDAdapter(DatasetAdapter):
    """Adapter for an MSD-style ``dataset.json`` (``training: [{image, label}]``).

    Args:
        root: the folder holding ``dataset.json``.
        require_labels: raise when a listed label file is missing.
        json_name: name of the JSON file in ``root``.
        sections: the ``dataset.json`` lists to read and the subset each becomes.
    """

    name = "msd"
    source = "your data in the Medical Segmentation Decathlon layout (dataset.json with a 'training' list)"

    def __init__(
        self,
        root: str | os.PathLike,
        require_labels: bool = True,
        json_name: str = "dataset.json",
        sections: dict[str, str] | None = None,
    ) -> None:
        super().__init__(root, require_labels)
        self.json_path = self.root / json_name
        self.meta = read_dataset_json(self.json_path)
        self.sections = dict(sections or {"training": "training"})
        where = str(self.json_path)
        if not any(self.meta.get(k) for k in self.sections) and "file_ending" in self.meta:
            raise DatasetError(
                f"{self.name}: {where} is in the nnU-Net v2 raw layout ('file_ending', no 'training' list): "
                "pass --dataset nnunet"
            )
        self.channel_names = parse_channels(self.meta, where)
        self.class_names, self.label_values = parse_labels(self.meta.get("labels") or {}, where)
        self.modality = modality_from_channel_names(self.channel_names)

    def layout_hint(self) -> str:
        return f"'training': [{{'image', 'label'}}] entries in {self.json_path}"

    def case_modality(self, case_id: str) -> str:
        """Modality of one case (one per dataset here; AMOS overrides it)."""
        return self.modality

    def _find_cases(self) -> list[Case]:
        cases = []
        for section, subset in self.sections.items():
            entries = self.meta.get(section) or []
            if not isinstance(entries, list):
                raise DatasetError(f"{self.json_path}: '{section}' must be a list")
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict) or "image" not in entry:
                    raise DatasetError(f"{self.json_path}: '{section}'[{i}] has no 'image'")
                imgs = entry["image"] if isinstance(entry["image"], list) else [entry["image"]]
                img_paths = [(self.root / p).resolve() for p in imgs]
                cid = strip_nii(Path(entry.get("label") or imgs[0]).name)
                images = self._images_or_error(img_paths, cid)
                label = None
                if entry.get("label"):
                    label = self._label_or_error((self.root / entry["label"]).resolve(), cid)
                elif self.require_labels:
                    raise DatasetError(f"{self.json_path}: '{section}'[{i}] ({cid}) has no 'label'")
                cases.append(Case(cid, cid, images, label, self.case_modality(cid), subset, {}))
        return cases


# ------------------------------------------------------------------------------------------- synthetic stand-in
def _synth_msd(out: Path, patients: int, seed: int, kw: dict[str, Any]) -> Path:
    channels = tuple(kw.get("channels", ("T2", "ADC")))
    class_names = tuple(kw.get("class_names", ("background", "PZ", "TZ")))
    task = str(kw.get("task", "Task05_Prostate"))
    prefix = task.split("_", 1)[-1].lower()
    training = []
    for i in range(patients):
        rng = patient_rng(seed, i)
        images, lab, aff = generic_case(rng, kw, channels, len(class_names))
        flips, perm = ORIENTATIONS[i % len(ORIENTATIONS)]
        cid = f"{prefix}_{i:02d}"
        # MSD keeps several channels in one 4-D file, channels last
        img = np.stack(images, axis=-1) if len(images) > 1 else images[0]
        (fimg, flab), faff = reorient_to_file([img, lab], aff, flips, perm)
        save_nifti(out / "imagesTr" / f"{cid}.nii.gz", fimg, faff)
        save_nifti(out / "labelsTr" / f"{cid}.nii.gz", flab, faff)
        training.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
    meta = {
        "name": task.split("_", 1)[-1], "description": f"synthetic stand-in in the MSD layout ({task})",
        "reference": "synthetic", "licence": "CC-BY-SA 4.0", "release": "1.0",
        "tensorImageSize": "4D" if len(channels) > 1 else "3D",
        "modality": {str(k): n for k, n in enumerate(channels)},
        "labels": {str(k): n for k, n in enumerate(class_names)},
        "numTraining": len(training), "numTest": 0, "training": training, "test": [],
    }  # fmt: skip
    write_json_atomic(out / "dataset.json", meta)
    return out


def _generate(out: Path, patients: int, seed: int, kw: dict[str, Any], name: str) -> Path:
    return _synth_msd(out, patients, seed, kw)


#: The synthetic stand-in of this dataset (``iac synth msd``; :func:`iac_components.data.synth.synthesize`).
SYNTHETIC = SyntheticSpec(
    generate=_generate,
    defaults={"size": 64, "slices": (8, 12), "spacing": (1.8, 2.2), "slice_spacing": 4.0, "noise": 0.06, "blur": 0.6},
    options=frozenset({"task", "channels", "class_names"}),
    prepare={"spacing": (2.0, 2.0), "spatial_size": (64, 64)},
)
