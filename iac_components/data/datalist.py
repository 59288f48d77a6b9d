"""A datalist as a dataset: ``[{"image": file or [files], "label": file}, ...]`` of 3-D volumes, the form MONAI
Label and model-zoo users pass to a bundle (``train#dataset#data``, ``validate#dataset#data``).

:class:`DatalistAdapter` turns such a list into :class:`~iac_components.data.base.Case` entries, so that the one
preparation path (:func:`~iac_components.data.prepare.prepare_dataset`) builds the slice cache from it exactly as
from an official layout. Channel names, classes and label values are those of the bundle's dataset (``like``):
a datalist names files, not what their values mean.

Each entry may also give ``case_id`` and ``patient_id`` (default: the image's file name without ``.nii.gz`` and
nnU-Net's ``_0000`` channel suffix; each case its own patient) and ``subset`` (``training`` or ``validation``).
Relative paths are taken from ``base_dir`` (default: the current directory).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iac_components.data.base import Case, DatasetAdapter, DatasetError, modality_from_channel_names, strip_nii

__all__ = ["DatalistAdapter", "read_datalist"]


def read_datalist(data: Sequence[Mapping[str, Any]] | str | os.PathLike, key: str = "training") -> list[dict[str, Any]]:
    """A datalist as a list of dicts: given as a list, or as a JSON file (a list, or MSD's ``{"training": [...]}``
    whose relative paths are taken from the file's folder)."""
    if isinstance(data, (str, os.PathLike)):
        import json

        path = Path(data).expanduser()
        if not path.is_file():
            raise DatasetError(f"datalist file {path} does not exist")
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DatasetError(f"datalist file {path} is not JSON: {e}") from e
        items = content.get(key) if isinstance(content, dict) else content
        if not isinstance(items, list):
            raise DatasetError(f"datalist file {path}: expected a list or a {key!r} list")
        base = path.parent.resolve()
        return [_rebased(dict(item), base) if isinstance(item, Mapping) else item for item in items]
    if not isinstance(data, Sequence) or isinstance(data, (bytes, str)):
        raise DatasetError(f"a datalist must be a list of {{'image', 'label'}} dicts, got {type(data).__name__}")
    return [dict(item) if isinstance(item, Mapping) else item for item in data]


def _rebased(item: dict[str, Any], base: Path) -> dict[str, Any]:
    for k in ("image", "label"):
        v = item.get(k)
        if isinstance(v, str):
            item[k] = str(base / v)
        elif isinstance(v, list):
            item[k] = [str(base / p) for p in v]
    return item


class DatalistAdapter(DatasetAdapter):
    """The cases of a datalist, with the channels, classes and label values of dataset ``like``.

    Args:
        data: the datalist (see :func:`read_datalist`); entries of ``subset="validation"`` are the validation
            patients of :func:`~iac_components.data.splits.datalist_splits`.
        like: the dataset whose conventions the files follow (``acdc``, ``brats2021``, ...), an adapter
            instance (the user's ``dataset.json`` for ``msd`` / ``nnunet``), or a prepared manifest (a release's
            ``models/manifest.json``: the conventions the model was trained with).
        base_dir: folder of relative paths.
    """

    name = "datalist"

    def __init__(
        self,
        data: Sequence[Mapping[str, Any]] | str | os.PathLike,
        like: str | DatasetAdapter | Mapping[str, Any],
        base_dir: str | os.PathLike | None = None,
    ) -> None:
        items = read_datalist(data)
        if not items:
            raise DatasetError("the datalist is empty: give at least one {'image', 'label'} entry")
        base = Path(base_dir).expanduser().resolve() if base_dir is not None else Path.cwd()
        self._items = [_rebased(dict(i), base) if isinstance(i, dict) else i for i in items]
        if isinstance(like, DatasetAdapter):
            self.like = like.name
            self.channel_names, self.class_names, self.label_values = (
                tuple(like.channel_names), tuple(like.class_names), tuple(like.label_values)
            )  # fmt: skip
            self.modality = like.modality
        elif isinstance(like, Mapping):
            try:
                self.like = str(like["dataset"])
                self.channel_names, self.class_names = tuple(like["channel_names"]), tuple(like["class_names"])
                self.label_values = tuple(like["label_values"])
                self.modality = str(like["modality"])
            except KeyError as e:
                raise DatasetError(f"the model's manifest has no {e.args[0]!r}: package the bundle again") from None
        else:
            from iac_components.data.settings import get_settings

            s = get_settings(like)
            if not s.class_names:
                raise DatasetError(
                    f"a datalist for dataset {like!r} needs its classes: pass --dataset_dir with its dataset.json"
                )
            self.like = str(like)
            self.channel_names, self.class_names = tuple(s.channel_names), tuple(s.class_names)
            self.label_values = tuple(s.label_values) or tuple(range(len(s.class_names)))
            self.modality = _registered_modality(self.like) or modality_from_channel_names(self.channel_names)
        files = [f for i in self._items if isinstance(i, dict) for f in _files(i)]
        root = Path(os.path.commonpath([str(Path(f).parent) for f in files])) if files else base
        self.root = root
        self.require_labels = True
        self._cases = None

    def layout_hint(self) -> str:
        return "a list of {'image': file or [files], 'label': file} entries"

    def _find_cases(self) -> list[Case]:
        cases = []
        for i, item in enumerate(self._items):
            if not isinstance(item, dict) or not item.get("image"):
                raise DatasetError(f"datalist entry {i} has no 'image': {str(item)[:120]}")
            images = item["image"] if isinstance(item["image"], list) else [item["image"]]
            cid = str(item.get("case_id") or re.sub(r"_0000$", "", strip_nii(Path(images[0]).name)))
            paths = self._images_or_error([Path(p) for p in images], cid)
            if not item.get("label"):
                raise DatasetError(f"datalist entry {i} ({images[0]}) has no 'label': training needs one")
            label = self._label_or_error(Path(item["label"]), cid)
            # a mixed dataset (AMOS) gives each entry's modality, CT when it says nothing
            modality = str(item.get("modality") or ("CT" if self.modality in ("CT", "mixed") else "MRI")).upper()
            if modality not in ("CT", "MRI"):
                raise DatasetError(f"datalist entry {i} ({images[0]}): modality {modality!r} is not CT or MRI")
            subset = str(item.get("subset", "training"))
            cases.append(Case(cid, str(item.get("patient_id") or cid), paths, label, modality, subset, {}))
        return cases

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "like": self.like}


def _registered_modality(name: str) -> str | None:
    """The modality the registered adapter of ``name`` declares (``MRI``, ``CT`` or ``mixed``), if any."""
    from iac_components.data.base import adapter_class

    value = getattr(adapter_class(name), "modality", None)
    return str(value) if value else None


def _files(item: dict[str, Any]) -> list[str]:
    images = item.get("image") or []
    out = list(images) if isinstance(images, list) else [images]
    return out + ([item["label"]] if item.get("label") else [])
