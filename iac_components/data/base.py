"""Dataset adapter interface: cases, patients, the registry of dataset names, one error type.

An adapter reads one official raw layout and lists its cases. A *case* is one 3-D volume (one file per
channel, or one multi-channel file) with its label file; a *patient* may own several cases (an ACDC patient
has an end-diastolic and an end-systolic case), and every case keeps its ``patient_id`` so that splits never
put one patient in two folds.

Example::

    from iac_components.data import get_adapter

    adapter = get_adapter("acdc", "/data/ACDC/database")
    for case in adapter.cases():
        print(case.case_id, case.patient_id, case.image, case.label)
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Case",
    "DatasetAdapter",
    "DatasetError",
    "DATASET_NAMES",
    "get_adapter",
    "dataset_names",
    "check_dataset_name",
    "modality_from_channel_names",
    "strip_nii",
]


class DatasetError(ValueError):
    """A problem with the input data, reported in one line that names the file, case or value at fault."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass
class Case:
    """One 3-D volume of a dataset.

    Attributes:
        case_id: unique id of the volume inside its dataset (e.g. ``patient001_ED``); used for cache file names.
        patient_id: the patient the volume belongs to (splits are made over patients).
        image: image files, one per channel in channel order (a single file may hold several channels).
        label: label file, or ``None`` where the layout has none (e.g. an unlabelled official test case).
        modality: ``"MRI"`` or ``"CT"``: selects the intensity normalisation.
        subset: the official subset the case comes from (``"training"``, ``"testing"``, ``"validation"``).
        meta: dataset-specific extras (ACDC phase, frame, group, ...); must be JSON-serialisable.
    """

    case_id: str
    patient_id: str
    image: list[str]
    label: str | None
    modality: str
    subset: str = "training"
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The case as a plain JSON-serialisable dict."""
        return asdict(self)

    def data_dict(self, image_key: str = "image", label_key: str | None = "label") -> dict[str, Any]:
        """The MONAI input dict for the preprocessing chain: ``{"image": [files], "label": file, ...}``."""
        d: dict[str, Any] = {image_key: list(self.image), "case_id": self.case_id, "patient_id": self.patient_id}
        if label_key is not None and self.label is not None:
            d[label_key] = self.label
        return d


def modality_from_channel_names(names: list[str] | tuple[str, ...]) -> str:
    """``"CT"`` if any channel is called CT (the MSD and nnU-Net convention), otherwise ``"MRI"``."""
    return "CT" if any(str(n).strip().upper() == "CT" for n in names) else "MRI"


class DatasetAdapter:
    """Base class of the dataset adapters: a raw layout in, a list of :class:`Case` out.

    Subclasses set ``name`` and implement :meth:`_find_cases`; they fill ``channel_names``, ``class_names``
    and ``label_values`` (the label value in the files for each class, in class order), either as class
    defaults or from the layout's ``dataset.json``.

    Args:
        root: the dataset folder in its official layout.
        require_labels: raise a :class:`DatasetError` naming the file when a case's label file is missing.
            With ``False`` such cases are listed with ``label=None``.
    """

    name: str = ""
    #: where the dataset comes from and in which layout, for the message shown when it is missing
    source: str = ""
    channel_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    label_values: tuple[int, ...] = ()
    modality: str = "MRI"

    def __init__(self, root: str | os.PathLike, require_labels: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.require_labels = require_labels
        if not self.root.is_dir():
            raise DatasetError(f"{self.name or type(self).__name__}: dataset folder {self.root} does not exist")
        self._cases: list[Case] | None = None

    # subclasses -----------------------------------------------------------------------------------------
    def _find_cases(self) -> list[Case]:
        raise NotImplementedError

    def layout_hint(self) -> str:
        """One line describing the expected layout, used in 'no cases found' errors."""
        return ""

    # public ---------------------------------------------------------------------------------------------
    def cases(self) -> list[Case]:
        """All cases, sorted by case id. Raises :class:`DatasetError` when the layout holds none."""
        if self._cases is None:
            cases = sorted(self._find_cases(), key=lambda c: c.case_id)
            if not cases:
                raise DatasetError(f"{self.name}: no cases found under {self.root} (expected {self.layout_hint()})")
            ids = [c.case_id for c in cases]
            if len(set(ids)) != len(ids):
                dup = sorted({i for i in ids if ids.count(i) > 1})
                raise DatasetError(f"{self.name}: duplicate case ids under {self.root}: {dup[:5]}")
            self._cases = cases
        return list(self._cases)

    def patients(self) -> dict[str, list[Case]]:
        """Cases grouped by patient id (sorted)."""
        out: dict[str, list[Case]] = {}
        for c in self.cases():
            out.setdefault(c.patient_id, []).append(c)
        return dict(sorted(out.items()))

    @property
    def num_classes(self) -> int:
        """Number of classes including the background."""
        return len(self.class_names)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary: name, root, channels, classes, label values, modality, counts."""
        cases = self.cases()
        mods = sorted({c.modality for c in cases})
        return {
            "dataset": self.name,
            "root": str(self.root),
            "channel_names": list(self.channel_names),
            "class_names": list(self.class_names),
            "label_values": [int(v) for v in self.label_values],
            "modality": mods[0] if len(mods) == 1 else "mixed",
            "num_cases": len(cases),
            "num_patients": len({c.patient_id for c in cases}),
        }

    # helpers for subclasses -----------------------------------------------------------------------------
    def _label_or_error(self, path: Path, case_id: str) -> str | None:
        if path.is_file():
            return str(path)
        if self.require_labels:
            raise DatasetError(f"{self.name}: case {case_id}: missing label file {path}")
        return None

    def _images_or_error(self, paths: list[Path], case_id: str) -> list[str]:
        for p in paths:
            if not p.is_file():
                raise DatasetError(f"{self.name}: case {case_id}: missing image file {p}")
        return [str(p) for p in paths]


# registry -------------------------------------------------------------------------------------------------
# name -> (module, class, constructor kwargs). Modules are imported on first use.
_REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "acdc": ("iac_components.data.acdc", "ACDCAdapter", {}),
    "brats": ("iac_components.data.brats", "BraTSAdapter", {"version": "auto"}),
    "brats2021": ("iac_components.data.brats", "BraTSAdapter", {"version": 2021}),
    "brats2023": ("iac_components.data.brats", "BraTSAdapter", {"version": 2023}),
    "kits19": ("iac_components.data.kits", "KiTSAdapter", {"version": 19}),
    "kits21": ("iac_components.data.kits", "KiTSAdapter", {"version": 21}),
    "kits23": ("iac_components.data.kits", "KiTSAdapter", {"version": 23}),
    "amos": ("iac_components.data.amos", "AMOSAdapter", {}),
    "msd": ("iac_components.data.msd", "MSDAdapter", {}),
    "nnunet": ("iac_components.data.nnunet", "NNUNetAdapter", {}),
}

DATASET_NAMES: tuple[str, ...] = tuple(sorted(_REGISTRY))


def dataset_names() -> list[str]:
    """The registered dataset names."""
    return list(DATASET_NAMES)


def check_dataset_name(name: str) -> str:
    """Return the normalised name or raise a one-line :class:`DatasetError` listing the valid names."""
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return key


def dataset_module(name: str) -> str:
    """The module of the dataset registered as ``name``: its adapter, settings and synthetic stand-in live there."""
    return _REGISTRY[check_dataset_name(name)][0]


def adapter_class(name: str) -> type[DatasetAdapter]:
    """The adapter class registered as ``name`` (its class attributes are the dataset's facts: ``source``,
    ``modality``, ...), without reading any data."""
    module, cls, _ = _REGISTRY[check_dataset_name(name)]
    return getattr(importlib.import_module(module), cls)


def get_adapter(name: str, root: str | os.PathLike, **kwargs: Any) -> DatasetAdapter:
    """Build the adapter registered as ``name`` over the raw layout in ``root``.

    Args:
        name: one of :data:`DATASET_NAMES` (``acdc``, ``amos``, ``brats``, ``brats2021``, ``brats2023``,
            ``kits19``, ``kits21``, ``kits23``, ``msd``, ``nnunet``); ``brats`` detects 2021 vs 2023.
        root: the dataset folder.
        kwargs: adapter options (e.g. ``require_labels=False``, ACDC ``subsets=("training",)``).

    Raises:
        DatasetError: unknown name (the message lists the valid names) or a broken layout.
    """
    name = detect_layout(check_dataset_name(name), root)
    module, cls, defaults = _REGISTRY[name]
    adapter_cls = getattr(importlib.import_module(module), cls)
    return adapter_cls(root, **{**defaults, **kwargs})


def detect_layout(name: str, root: str | os.PathLike) -> str:
    """``nnunet`` or ``msd`` as the folder's ``dataset.json`` says (nnU-Net v2's has ``file_ending``, the
    Decathlon's a ``training`` list), whichever of the two was asked for; any other name as given."""
    if name not in ("nnunet", "msd"):
        return name
    path = Path(root) / "dataset.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return name  # no readable dataset.json at the top: the adapter reports it (or finds DatasetNNN_Name/)
    detected = "nnunet" if "file_ending" in meta else "msd" if isinstance(meta.get("training"), list) else name
    if detected != name:
        import logging

        logging.getLogger("iac_components.data").info("%s is in the %s layout: read as --dataset %s", path,
                                                      "nnU-Net v2 raw" if detected == "nnunet" else "MSD", detected)
    return detected


def strip_nii(name: str) -> str:
    """File name without ``.nii.gz`` / ``.nii`` (or the last suffix for other formats)."""
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem
