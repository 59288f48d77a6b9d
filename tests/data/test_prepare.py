"""prepare_dataset: the cache format, idempotence, rebuild on a changed setting, and one-line errors that
leave nothing half-written."""

from __future__ import annotations

import gzip
import json
import time

import nibabel as nib
import numpy as np
import pytest

from iac_components.data import DatasetError
from iac_components.data.prepare import MANIFEST_NAME, load_manifest, prepare_dataset
from iac_components.data.synth import save_nifti


def _files(cache):
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


def _assert_nothing_written(cache):
    assert not (cache / MANIFEST_NAME).exists()
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


def test_manifest_and_arrays(prepared):
    m = load_manifest(prepared("acdc", 4))
    assert m["dataset"] == "acdc" and m["modality"] == "MRI" and m["num_cases"] == 8 and m["num_patients"] == 4
    assert m["class_names"] == ["background", "RV", "MYO", "LV"] and m["channel_names"] == ["cine"]
    assert m["settings"]["spacing"] == [1.75, 1.75] and m["settings"]["spatial_size"] == [64, 64]
    assert len(m["settings_hash"]) == 16
    targets = [t["_target_"] for t in m["transforms"]["MRI"]["image_label"]]
    assert targets == ["LoadImaged", "Orientationd", "Spacingd", "NormalizeIntensityd", "ResizeWithPadOrCropd"]
    for c in m["cases"]:
        img = np.load(f"{m['cache_dir']}/{c['image']}", mmap_mode="r")
        lab = np.load(f"{m['cache_dir']}/{c['label']}", mmap_mode="r")
        assert img.dtype == np.float16 and lab.dtype == np.uint8
        assert img.shape == (1, 64, 64, c["num_slices"]) and lab.shape == img.shape[1:] and list(img.shape) == c["shape"]
        assert c["spacing"][:2] == [1.75, 1.75]
        assert c["spacing"][2] == pytest.approx(10.0)  # slice spacing kept
        assert c["original_shape"] == list(nib.load(c["source"]["label"]).shape)
        fg = [s for s in range(lab.shape[-1]) if lab[..., s].any()]
        assert c["labelled_slices"] == fg and c["num_labelled_slices"] == len(fg) > 0
        assert c["class_voxels"] == np.bincount(lab.ravel(), minlength=4).tolist()
        assert set(np.unique(lab)) <= {0, 1, 2, 3}
        assert c["patient_id"] == c["case_id"][:10]
        # MRI z-score over the image's non-zero voxels: mean 0, std 1 there
        v = np.asarray(img, dtype=np.float64)[np.asarray(img) != 0]
        assert abs(v.mean()) < 0.05 and abs(v.std() - 1) < 0.05


def test_brats_labels_are_mapped_to_indices(prepared):
    m = load_manifest(prepared("brats2021", 3))
    assert m["label_values"] == [0, 1, 2, 4]
    assert m["postprocessing"] == [
        {"_target_": "MapLabelValued", "keys": "pred", "orig_labels": [0, 1, 2, 3], "target_labels": [0, 1, 2, 4]}
    ]
    for c in m["cases"]:
        raw = np.asarray(nib.load(c["source"]["label"]).dataobj)
        lab = np.load(f"{m['cache_dir']}/{c['label']}")
        assert lab.max() <= 3
        assert (lab == 3).sum() == (raw == 4).sum()  # same grid size here (8 mm both), ET kept whole


def test_ct_window_and_mixed_modalities(prepared):
    m = load_manifest(prepared("amos", 4))
    assert m["modality"] == "mixed" and sorted(m["transforms"]) == ["CT", "MRI"]
    ct = m["transforms"]["CT"]["image"][3]
    assert ct["_target_"] == "ScaleIntensityRanged" and (ct["a_min"], ct["a_max"]) == (-175.0, 250.0)
    for c in m["cases"]:
        img = np.load(f"{m['cache_dir']}/{c['image']}")
        if c["modality"] == "CT":
            assert img.min() >= 0 and img.max() <= 1
        else:
            assert img.min() < 0  # z-scored


def test_second_run_reuses_cache(synth_root, tmp_path, tiny_prep):
    raw = synth_root("acdc", 4)
    m1 = prepare_dataset("acdc", raw, tmp_path, progress=False, **tiny_prep["acdc"])
    stats = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    time.sleep(0.01)
    m2 = prepare_dataset("acdc", raw, tmp_path, progress=False, **tiny_prep["acdc"])
    assert m1 == m2
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stats


def test_changed_setting_rebuilds(synth_root, tmp_path, tiny_prep):
    raw = synth_root("acdc", 4)
    prepare_dataset("acdc", raw, tmp_path, progress=False, **tiny_prep["acdc"])
    m1 = load_manifest(tmp_path)
    img1 = tmp_path / m1["cases"][0]["image"]
    t1 = img1.stat().st_mtime_ns
    prepare_dataset("acdc", raw, tmp_path, progress=False, spacing=(1.75, 1.75), spatial_size=(72, 72))
    m2 = load_manifest(tmp_path)
    assert m2["settings_hash"] != m1["settings_hash"]
    assert m2["cases"][0]["shape"][1:3] == [72, 72]
    assert img1.stat().st_mtime_ns != t1
    assert np.load(img1).shape[1:3] == (72, 72)
    assert _files(tmp_path) == sorted(["manifest.json"] + [c[k] for c in m2["cases"] for k in ("image", "label")])


def test_a_changed_source_file_rebuilds_only_that_case(raw_copy, tmp_path, tiny_prep):
    raw = raw_copy("nnunet", 3)
    cache = tmp_path / "cache"
    prepare_dataset("nnunet", raw, cache, progress=False, **tiny_prep["nnunet"])
    before = {p.name: p.stat().st_mtime_ns for p in (cache / "arrays").iterdir()}
    lab = raw / "labelsTr" / "case_0001.nii.gz"
    img = nib.load(lab)
    save_nifti(lab, np.zeros(img.shape, np.uint8), img.affine)
    prepare_dataset("nnunet", raw, cache, progress=False, **tiny_prep["nnunet"])
    after = {p.name: p.stat().st_mtime_ns for p in (cache / "arrays").iterdir()}
    changed = sorted(k for k in after if after[k] != before[k])
    assert changed == ["case_0001_image.npy", "case_0001_label.npy"]
    assert load_manifest(cache)["cases"][1]["num_labelled_slices"] == 0


def test_parallel_workers_write_the_same_cache_as_one(tmp_path):
    """Cases prepared on several threads give the same manifest cases and arrays as one thread (how fast that is
    belongs to benchmarks/bench_slice_loader.py, not to a test)."""
    from iac_components.data.synth import synth_settings, synthesize

    raw = synthesize("acdc", tmp_path / "raw", patients=4, seed=1)
    caches = {n: prepare_dataset("acdc", raw, tmp_path / f"cache{n}", num_workers=n, progress=False,
                                 **synth_settings("acdc")) for n in (1, 3)}  # fmt: skip
    one, three = (load_manifest(caches[n]) for n in (1, 3))
    assert one["num_cases"] == three["num_cases"] == 8
    assert [c["case_id"] for c in one["cases"]] == [c["case_id"] for c in three["cases"]]
    for a, b in zip(one["cases"], three["cases"]):
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.load(f"{one['cache_dir']}/{a[key]}"), np.load(f"{three['cache_dir']}/{b[key]}"))

# ---------------------------------------------------------------------------------------------- bad input
def _one_line_error(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert str(n) in msg, (n, msg)


def test_missing_label_file(raw_copy, tmp_path):
    raw = raw_copy("brats2023", 3)
    seg = next(raw.glob("BraTS-GLI-00001-000/*-seg.nii.gz"))
    seg.unlink()
    with pytest.raises(DatasetError) as e:
        prepare_dataset("brats2023", raw, tmp_path / "c", progress=False)
    _one_line_error(e, seg, "missing label file")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_unreadable_nifti(raw_copy, tmp_path, damage, tiny_prep):
    raw = raw_copy("kits23", 3)
    bad = raw / "dataset" / "case_00001" / "imaging.nii.gz"
    blob = bad.read_bytes()
    bad.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"\x00not a nifti" * 50)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as e:
        prepare_dataset("kits23", raw, cache, num_workers=1, progress=False, **tiny_prep["kits23"])
    _one_line_error(e, "case_00001", bad)
    _assert_nothing_written(cache)


def test_image_label_shape_mismatch(raw_copy, tmp_path, tiny_prep):
    raw = raw_copy("msd", 3)
    lab = raw / "labelsTr" / "prostate_02.nii.gz"
    img = nib.load(lab)
    save_nifti(lab, np.asarray(img.dataobj)[:-2], img.affine)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as e:
        prepare_dataset("msd", raw, cache, progress=False, **tiny_prep["msd"])
    _one_line_error(e, "prostate_02", lab, "differ")
    _assert_nothing_written(cache)


def test_label_value_outside_classes(raw_copy, tmp_path, tiny_prep):
    raw = raw_copy("acdc", 3)
    lab = next(raw.glob("training/patient002/*_gt.nii.gz"))
    img = nib.load(lab)
    arr = np.asarray(img.dataobj).copy()
    arr[0, 0, 0] = 7
    save_nifti(lab, arr, img.affine)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as e:
        prepare_dataset("acdc", raw, cache, progress=False, **tiny_prep["acdc"])
    _one_line_error(e, lab, "[7]", "outside")
    _assert_nothing_written(cache)


def test_crop_that_removes_labels_is_an_error(synth_root, tmp_path):
    with pytest.raises(DatasetError) as e:
        prepare_dataset("acdc", synth_root("acdc", 4), tmp_path, progress=False, spacing=(1.75, 1.75), spatial_size=(16, 16))
    _one_line_error(e, "patient", "would remove", "spatial_size")
    _assert_nothing_written(tmp_path)


def test_failed_rebuild_invalidates_old_cache(raw_copy, tmp_path, tiny_prep):
    raw = raw_copy("nnunet", 3)
    cache = tmp_path / "cache"
    prepare_dataset("nnunet", raw, cache, progress=False, **tiny_prep["nnunet"])
    bad = raw / "imagesTr" / "case_0002_0001.nii.gz"
    bad.write_bytes(gzip.compress(b"garbage"))
    with pytest.raises(DatasetError) as e:
        prepare_dataset("nnunet", raw, cache, progress=False, **tiny_prep["nnunet"])
    _one_line_error(e, bad)
    assert not (cache / MANIFEST_NAME).exists()
    assert not list(cache.rglob("*.tmp"))


def test_wrong_dataset_name(tmp_path):
    with pytest.raises(DatasetError) as e:
        prepare_dataset("kits", tmp_path, tmp_path / "c")
    _one_line_error(e, "'kits'", "kits19", "kits21", "kits23", "acdc", "nnunet")
    assert not (tmp_path / "c").exists()


def test_manifest_is_json_with_chain_of_monai_targets(prepared):
    m = json.loads(prepared("nnunet", 3).read_text())
    import monai.transforms as mt

    for chain in m["transforms"]["MRI"].values():
        for t in chain:
            assert hasattr(mt, t["_target_"])


def test_automatic_spacing_and_size_for_generic_layouts(synth_root, tmp_path):
    raw = synth_root("nnunet", 4)
    m = load_manifest(prepare_dataset("nnunet", raw, tmp_path, progress=False))
    sp = []
    ext = []
    for c in m["cases"]:
        img = nib.load(c["source"]["label"])
        codes = nib.aff2axcodes(img.affine)
        zooms = np.array(img.header.get_zooms()[:3])
        order = [next(i for i, cd in enumerate(codes) if cd in pair) for pair in ("LR", "PA")]
        sp.append(zooms[order])
        ext.append(zooms[order] * np.array(img.shape)[order])
    spacing = np.median(np.array(sp), axis=0)
    assert m["settings"]["spacing"] == pytest.approx(spacing.round(4).tolist())
    size = m["settings"]["spatial_size"]
    assert all(s % 32 == 0 for s in size)
    assert all(s >= e / p > s - 32 for s, e, p in zip(size, np.max(ext, axis=0), spacing))


def test_unlabelled_official_test_cases_are_skipped(raw_copy, tmp_path, tiny_prep):
    import shutil

    raw = raw_copy("kits19", 3)
    shutil.copytree(raw / "data" / "case_00002", raw / "data" / "case_00210")
    (raw / "data" / "case_00210" / "segmentation.nii.gz").unlink()  # KiTS19's test cases come without labels
    m = load_manifest(prepare_dataset("kits19", raw, tmp_path, progress=False, **tiny_prep["kits19"]))
    assert [c["case_id"] for c in m["cases"]] == ["case_00000", "case_00001", "case_00002"]
