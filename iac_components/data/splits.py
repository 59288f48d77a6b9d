"""Deterministic patient-level folds, saved as ``splits.json``.

Folds (our defaults, configurable):

* ``search_train`` (35 %) and ``search_val`` (35 %): the NAS search's weight steps and alpha/beta steps;
* ``train`` = ``search_train`` + ``search_val``: the baseline U-Net and the retrain;
* ``validation`` (10 %): checkpoint selection only;
* ``test`` (20 %): reporting only.

No patient is in two of the four base folds (an ACDC patient's ED and ES cases stay together). With
``official=True`` (ACDC), ``test`` is the official ``testing/`` folder and the other folds are drawn from
``training/`` with the remaining fractions rescaled.

``splits.json``::

    {"format_version": 1, "dataset": "acdc", "seed": 0, "official": false,
     "fractions": {"search_train": 0.35, "search_val": 0.35, "validation": 0.1, "test": 0.2},
     "patients": {"search_train": [...], "search_val": [...], "validation": [...], "test": [...], "train": [...]},
     "cases":    {"search_train": [...], ...same keys, case ids...}}

The same inputs and seed always give byte-identical JSON (patients are sorted, shuffled with
``random.Random(seed)``, then cut by largest-remainder counts; every fold gets at least one patient).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iac_components.data.base import Case, DatasetError
from iac_components.utils import write_json_atomic

__all__ = ["make_splits", "datalist_splits", "load_splits", "fold_cases", "DEFAULT_FRACTIONS", "FOLDS", "SPLITS_NAME"]

FOLDS = ("search_train", "search_val", "validation", "test")
DEFAULT_FRACTIONS: dict[str, float] = {"search_train": 0.35, "search_val": 0.35, "validation": 0.1, "test": 0.2}
SPLITS_NAME = "splits.json"


def _counts(n: int, fractions: Sequence[float], what: str) -> list[int]:
    """Largest-remainder apportionment of ``n`` patients, at least one per fold."""
    k = len(fractions)
    if n < k:
        raise DatasetError(f"{what}: {n} patient(s), but the {k} folds need at least {k}")
    total = float(sum(fractions))
    raw = [n * f / total for f in fractions]
    counts = [max(1, int(r)) for r in raw]
    while sum(counts) < n:  # give the rest to the largest remainders
        i = max(range(k), key=lambda j: (raw[j] - counts[j], -j))
        counts[i] += 1
    while sum(counts) > n:  # take back from the largest folds that can spare one
        i = max((j for j in range(k) if counts[j] > 1), key=lambda j: (counts[j] - raw[j], j))
        counts[i] -= 1
    return counts


def _patients_of(source: Any) -> tuple[str, dict[str, list[str]], dict[str, str], Path | None]:
    """(dataset name, patient -> case ids, patient -> subset, cache dir or None) from any accepted input."""
    from iac_components.data.prepare import load_manifest

    cache_dir = None
    if isinstance(source, (str, os.PathLike)) or (isinstance(source, Mapping) and "cases" in source):
        m = load_manifest(source)
        cache_dir = Path(m["cache_dir"]) if "cache_dir" in m else None
        dataset = m.get("dataset", "")
        items = [(c["case_id"], c["patient_id"], c.get("subset", "training")) for c in m["cases"]]
    else:
        dataset = ""
        items = []
        for c in source:
            if isinstance(c, Case):
                items.append((c.case_id, c.patient_id, c.subset))
            else:
                items.append((c["case_id"], c["patient_id"], c.get("subset", "training")))
    patients: dict[str, list[str]] = {}
    subsets: dict[str, str] = {}
    for cid, pid, subset in items:
        patients.setdefault(str(pid), []).append(str(cid))
        if subsets.setdefault(str(pid), subset) != subset:
            raise DatasetError(f"patient {pid} has cases in two subsets ({subsets[str(pid)]}, {subset})")
    return dataset, {p: sorted(c) for p, c in sorted(patients.items())}, subsets, cache_dir


def make_splits(
    manifest_or_cases: Any,
    seed: int = 0,
    fractions: Mapping[str, float] | None = None,
    official: bool = False,
    out_path: str | os.PathLike | None = None,
    save: bool = True,
) -> dict[str, Any]:
    """Patient-level folds ``search_train``, ``search_val``, ``validation``, ``test`` and their union ``train``.

    Args:
        manifest_or_cases: a cache dir, a ``manifest.json`` path or dict, or a list of
            :class:`~iac_components.data.base.Case` / dicts with ``case_id`` and ``patient_id``.
        seed: shuffling seed.
        fractions: fold -> fraction (normalised; missing folds take the defaults).
        official: use the official test set (cases with ``subset == "testing"``, ACDC's ``testing/``) as
            ``test``; the other folds come from the remaining patients.
        out_path: where to write the JSON; default ``splits.json`` in the cache dir when a manifest is given.
        save: write the JSON (when a path is known).

    Returns:
        The splits dict (the content of ``splits.json``).

    Raises:
        DatasetError: an empty dataset, too few patients for the folds (the message says how many patients
            there are and how many are needed), or ``official`` without an official test set.
    """
    dataset, patients, subsets, cache_dir = _patients_of(manifest_or_cases)
    what = f"dataset {dataset!r}" if dataset else "dataset"
    if not patients:
        raise DatasetError(f"{what} is empty: no patients to split")
    fr = dict(DEFAULT_FRACTIONS)
    if fractions:
        bad = sorted(set(fractions) - set(FOLDS))
        if bad:
            raise ValueError(f"unknown fold(s) {bad}; valid: {list(FOLDS)}")
        fr.update({k: float(v) for k, v in fractions.items()})
    if any(v <= 0 for v in fr.values()):
        raise ValueError(f"every fold fraction must be > 0, got {fr}")
    ids = list(patients)
    rng = random.Random(int(seed))
    folds: dict[str, list[str]] = {}
    if official:
        test = [p for p in ids if subsets[p] == "testing"]
        rest = [p for p in ids if subsets[p] != "testing"]
        if not test:
            raise DatasetError(f"{what}: official=True but no patient comes from an official testing set")
        rng.shuffle(rest)
        names = [f for f in FOLDS if f != "test"]
        counts = _counts(len(rest), [fr[f] for f in names], f"{what} (official training set)")
        start = 0
        for f, n in zip(names, counts):
            folds[f] = sorted(rest[start : start + n])
            start += n
        folds["test"] = sorted(test)
    else:
        rng.shuffle(ids)
        counts = _counts(len(ids), [fr[f] for f in FOLDS], what)
        start = 0
        for f, n in zip(FOLDS, counts):
            folds[f] = sorted(ids[start : start + n])
            start += n
    folds["train"] = sorted(folds["search_train"] + folds["search_val"])
    order = [*FOLDS, "train"]
    out = {
        "format_version": 1,
        "dataset": dataset,
        "seed": int(seed),
        "official": bool(official),
        "fractions": {f: fr[f] for f in FOLDS},
        "patients": {f: folds[f] for f in order},
        "cases": {f: sorted(c for p in folds[f] for c in patients[p]) for f in order},
    }
    target = Path(out_path) if out_path is not None else (cache_dir / SPLITS_NAME if cache_dir else None)
    if save and target is not None:
        write_json_atomic(target, out)
    return out


def datalist_splits(
    manifest: Any,
    seed: int = 0,
    fractions: Mapping[str, float] | None = None,
    out_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The folds of a cache prepared from a datalist (:class:`~iac_components.data.datalist.DatalistAdapter`).

    Patients of ``subset="validation"`` entries (``validate#dataset#data``) are ``validation``; the others
    (``train#dataset#data``) are ``train``, split into ``search_train`` / ``search_val`` by their fractions. With
    no validation entries, ``validation`` is drawn from the training patients by its fraction. ``test`` is empty:
    a datalist names the data to train on; evaluation takes its own.

    Too few patients for disjoint folds (MONAI Label users fine-tune from one or two labelled volumes): with two or
    more, search-train and search-val stay apart and ``validation`` (when no validation entries are given) holds
    them all; with one, every fold holds it. The splits then say ``"overlapping": true`` (a fine-tune validates on
    what it has), and ``"search_disjoint": false`` when the search folds share their patient (a search refuses that:
    its weight and α/β steps need different patients).
    """
    dataset, patients, subsets, cache_dir = _patients_of(manifest)
    fr = {**DEFAULT_FRACTIONS, **{k: float(v) for k, v in (fractions or {}).items()}}
    val = sorted(p for p in patients if subsets[p] == "validation")
    rest = [p for p in patients if subsets[p] != "validation"]
    rng = random.Random(int(seed))
    rng.shuffle(rest)
    names = ["search_train", "search_val"] + ([] if val else ["validation"])
    what = f"the training datalist ({dataset})" if dataset else "the training datalist"
    folds: dict[str, list[str]] = {"validation": val}
    overlapping = len(rest) < len(names)
    search_disjoint = True
    if overlapping:
        if not rest:
            raise DatasetError(f"{what}: no training patient (train#dataset#data is empty)")
        if len(rest) >= 2:  # the search folds stay apart; validation shares their patients
            folds["search_train"], folds["search_val"] = sorted(rest[: len(rest) // 2]), sorted(rest[len(rest) // 2 :])
            if not val:
                folds["validation"] = sorted(rest)
        else:  # one patient: every fold is it
            search_disjoint = False
            for f in names:
                folds[f] = sorted(rest)
    else:
        counts = _counts(len(rest), [fr[f] for f in names], what)
        start = 0
        for f, n in zip(names, counts):
            folds[f] = sorted(rest[start : start + n])
            start += n
    folds["test"] = []
    folds["train"] = sorted(set(folds["search_train"]) | set(folds["search_val"]))
    order = [*FOLDS, "train"]
    out = {
        "format_version": 1,
        "dataset": dataset,
        "seed": int(seed),
        "official": False,
        "datalist": True,
        "overlapping": overlapping,
        "search_disjoint": search_disjoint,
        "fractions": {f: fr[f] for f in FOLDS},
        "patients": {f: folds[f] for f in order},
        "cases": {f: sorted(c for p in folds[f] for c in patients[p]) for f in order},
    }
    target = Path(out_path) if out_path is not None else (cache_dir / SPLITS_NAME if cache_dir else None)
    if target is not None:
        write_json_atomic(target, out)
    return out


def load_splits(path: str | os.PathLike) -> dict[str, Any]:
    """Load ``splits.json`` (given the file or the cache dir)."""
    p = Path(path)
    if p.is_dir():
        p = p / SPLITS_NAME
    if not p.is_file():
        raise DatasetError(f"no splits: {p} does not exist (run make_splits first)")
    return json.loads(p.read_text())


def fold_cases(manifest: Any, splits: Any, fold: str) -> list[dict[str, Any]]:
    """The manifest's case entries of one fold (``search_train``, ``search_val``, ``train``, ``validation``,
    ``test``), in the manifest's order."""
    from iac_components.data.prepare import load_manifest

    m = load_manifest(manifest)
    s = splits if isinstance(splits, Mapping) else load_splits(splits)
    if fold not in s["cases"]:
        raise DatasetError(f"unknown fold {fold!r}; valid: {sorted(s['cases'])}")
    wanted = set(s["cases"][fold])
    return [c for c in m["cases"] if c["case_id"] in wanted]
