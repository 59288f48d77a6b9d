"""Synthetic stand-ins: deterministic, per-patient independent, realistic conventions and intensity ranges."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from iac_components.data import DatasetError, get_adapter
from iac_components.data.synth import reorient_to_file, synthesize


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_and_patients_independent_of_count(tmp_path):
    kw = dict(size=24, slices=(3, 4), frames=3)
    a = synthesize("acdc", tmp_path / "a", patients=3, seed=4, **kw)
    b = synthesize("acdc", tmp_path / "b", patients=3, seed=4, **kw)
    c = synthesize("acdc", tmp_path / "c", patients=3, seed=5, **kw)
    assert _digest(a) == _digest(b) != _digest(c)
    d = synthesize("nnunet", tmp_path / "d", patients=2, seed=0, size=24)
    e = synthesize("nnunet", tmp_path / "e", patients=4, seed=0, size=24)
    f = "labelsTr/case_0001.nii.gz"
    assert (d / f).read_bytes() == (e / f).read_bytes()


def test_acdc_anatomy_and_phases(synth_root):
    root = synth_root("acdc", patients=6)
    lv_ratio = []
    for case_ed, case_es in zip(*[iter(get_adapter("acdc", root).cases())] * 2):
        ed = np.asarray(nib.load(case_ed.label).dataobj)
        es = np.asarray(nib.load(case_es.label).dataobj)
        assert set(np.unique(ed)) == {0, 1, 2, 3}
        # LV blood pool is inside the myocardium ring: every LV voxel's in-plane neighbours are LV or MYO
        lv = ed == 3
        for ax in (0, 1):
            for shift in (-1, 1):
                nb = np.roll(ed, shift, axis=ax)[lv]
                assert np.isin(nb, [2, 3]).all()
        lv_ratio.append((es == 3).sum() / (ed == 3).sum())
        assert not ed.reshape(-1, ed.shape[-1]).any(0).all()  # a slice above the base has no label
    assert max(lv_ratio) < 0.9  # the LV contracts at ES
    sizes = [(np.asarray(nib.load(c.label).dataobj) == 3).sum() for c in get_adapter("acdc", root).cases()[::2]]
    assert len(set(sizes)) == len(sizes)  # patients differ


@pytest.mark.parametrize("name,kidney", [("kits23", 1), ("amos", 2)])
def test_ct_is_in_hounsfield_units(synth_root, name, kidney):
    case = [c for c in get_adapter(name, synth_root(name, 4)).cases() if c.modality == "CT"][0]
    img = np.asarray(nib.load(case.image[0]).dataobj)
    assert img.dtype == np.int16 and img.min() >= -1024 and img.max() <= 3071
    assert img.min() <= -900  # air
    lab = np.asarray(nib.load(case.label).dataobj)
    assert np.median(img[lab == kidney]) > 100  # contrast-enhanced kidney above soft tissue (40 HU)


def test_mri_is_positive_and_brats_is_skull_stripped(synth_root):
    case = get_adapter("brats2021", synth_root("brats2021", 3)).cases()[0]
    for f in case.image:
        img = np.asarray(nib.load(f).dataobj)
        assert img.min() >= 0 and img.max() > 100
        assert (img == 0).mean() > 0.2  # background outside the brain is exactly 0
    assert nib.aff2axcodes(nib.load(case.label).affine) == ("L", "P", "S")


def test_orientations_and_dataset_json(synth_root):
    root = synth_root("nnunet", 4)
    codes = {nib.aff2axcodes(nib.load(c.label).affine) for c in get_adapter("nnunet", root).cases()}
    assert len(codes) == 4 and ("R", "A", "S") in codes
    meta = json.loads((synth_root("msd", 3) / "dataset.json").read_text())
    assert meta["modality"] == {"0": "T2", "1": "ADC"} and meta["training"][0]["image"].startswith("./imagesTr/")
    amos = json.loads((synth_root("amos", 4) / "dataset.json").read_text())
    assert len(amos["labels"]) == 16 and amos["numTraining"] == 4


def test_reorient_to_file_keeps_world_positions():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 9, (5, 6, 7))
    aff = np.diag([1.5, 2.0, 3.0, 1.0])
    aff[:3, 3] = [10, -4, 7]
    (out,), faff = reorient_to_file([arr], aff, flips=(0, 1, 2), perm=(2, 1, 0))
    assert out.shape == (7, 6, 5)
    for idx in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        world = aff @ np.array([*idx, 1.0])
        fidx = np.round(np.linalg.solve(faff, world)[:3]).astype(int)
        assert out[tuple(fidx)] == arr[idx]


def test_bad_arguments():
    with pytest.raises(DatasetError, match="valid names"):
        synthesize("decathlon", "/tmp/never")
    with pytest.raises(ValueError, match="patients"):
        synthesize("acdc", "/tmp/never", patients=0)
