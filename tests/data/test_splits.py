"""Patient-level folds: disjoint, ED/ES together, stable, official ACDC split, clear errors."""

from __future__ import annotations

import pytest

from iac_components.data import DatasetError
from iac_components.data.prepare import load_manifest
from iac_components.data.splits import FOLDS, fold_cases, load_splits, make_splits


def _cases(n_patients, per_patient=2, testing=0):
    out = []
    for p in range(n_patients):
        subset = "testing" if p >= n_patients - testing else "training"
        for k in range(per_patient):
            out.append({"case_id": f"p{p:03d}_{k}", "patient_id": f"p{p:03d}", "subset": subset})
    return out


def test_folds_are_disjoint_and_cover_every_patient():
    s = make_splits(_cases(40), seed=3)
    seen = {}
    for f in FOLDS:
        for p in s["patients"][f]:
            assert p not in seen, f"{p} in {seen.get(p)} and {f}"
            seen[p] = f
    assert len(seen) == 40
    assert [len(s["patients"][f]) for f in FOLDS] == [14, 14, 4, 8]
    assert s["patients"]["train"] == sorted(s["patients"]["search_train"] + s["patients"]["search_val"])
    assert s["cases"]["train"] == sorted(s["cases"]["search_train"] + s["cases"]["search_val"])


def test_acdc_ed_and_es_stay_together(prepared):
    m = load_manifest(prepared("acdc", 4))
    s = make_splits(m, seed=0, save=False)
    for f in FOLDS:
        cases = s["cases"][f]
        pids = {c.split("_")[0] for c in cases}
        assert sorted(cases) == sorted(f"{p}_{ph}" for p in pids for ph in ("ED", "ES"))


def test_same_seed_gives_identical_json(prepared, tmp_path):
    manifest = prepared("acdc", 4)
    a = make_splits(manifest, seed=5, out_path=tmp_path / "a.json")
    b = make_splits(manifest, seed=5, out_path=tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert a == b == load_splits(tmp_path / "a.json")
    many = _cases(30)
    assert make_splits(many, seed=1) == make_splits(list(reversed(many)), seed=1)
    assert make_splits(many, seed=1)["patients"] != make_splits(many, seed=2)["patients"]


def test_default_location_is_the_cache_dir(prepared):
    manifest = prepared("nnunet", 4)
    s = make_splits(manifest, seed=0)
    assert load_splits(manifest.parent) == s
    val = fold_cases(manifest, s, "validation")
    assert [c["case_id"] for c in val] == s["cases"]["validation"]


def test_official_acdc_split_uses_testing_folder():
    cases = _cases(15, testing=5)
    s = make_splits(cases, seed=0, official=True)
    assert s["patients"]["test"] == [f"p{p:03d}" for p in range(10, 15)]
    rest = [p for f in ("search_train", "search_val", "validation") for p in s["patients"][f]]
    assert sorted(rest) == [f"p{p:03d}" for p in range(10)]
    with pytest.raises(DatasetError, match="no patient comes from an official testing set"):
        make_splits(_cases(10), official=True)


def test_official_split_on_synthetic_acdc(prepared):
    m = load_manifest(prepared("acdc", 4))  # patients 001-003 in training/, 101 in testing/
    s = make_splits(m, official=True, save=False)
    assert s["official"] is True
    assert s["patients"]["test"] == ["patient101"]
    assert s["cases"]["test"] == ["patient101_ED", "patient101_ES"]
    assert sorted(s["patients"]["train"] + s["patients"]["validation"]) == ["patient001", "patient002", "patient003"]
    m2 = dict(m, cases=[c for c in m["cases"] if c["patient_id"] != "patient003"])
    with pytest.raises(DatasetError) as e:
        make_splits(m2, official=True, save=False)
    assert "2 patient(s)" in str(e.value) and "3 folds need at least 3" in str(e.value)


def test_too_small_dataset_message():
    with pytest.raises(DatasetError) as e:
        make_splits(_cases(3), seed=0)
    msg = str(e.value)
    assert "3 patient(s)" in msg and "need at least 4" in msg and "\n" not in msg


def test_empty_dataset_message():
    with pytest.raises(DatasetError, match="empty"):
        make_splits([], seed=0)


def test_custom_fractions_and_minimum_one_each():
    s = make_splits(_cases(5, per_patient=1), fractions={"search_train": 0.7, "search_val": 0.1, "validation": 0.1, "test": 0.1})
    assert [len(s["patients"][f]) for f in FOLDS] == [2, 1, 1, 1]
    with pytest.raises(ValueError, match="unknown fold"):
        make_splits(_cases(5), fractions={"tset": 0.2})
