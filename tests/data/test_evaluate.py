"""Evaluation in the original grid: a perfect model's inverted prediction reproduces the original label files
exactly; a real network through the default SliceInferer predictor."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from iac_components.data.evaluate import evaluate_patients
from iac_components.data.prepare import load_manifest


class CachedLabelPredictor:
    """A 'perfect model': returns one-hot scores of the cached (preprocessed) label of the case asked for."""

    def __init__(self, manifest):
        self.m = load_manifest(manifest)
        self.by_id = {c["case_id"]: c for c in self.m["cases"]}
        self.calls = 0

    def __call__(self, data):
        self.calls += 1
        c = self.by_id[data["case_id"]]
        lab = torch.from_numpy(np.load(f"{self.m['cache_dir']}/{c['label']}").astype(np.int64))
        assert tuple(data["image"].shape) == tuple(c["shape"])  # the chain reproduces the cached grid
        return torch.nn.functional.one_hot(lab, len(self.m["class_names"])).permute(3, 0, 1, 2).float()


@pytest.mark.parametrize("name", ["acdc", "kits21", "brats2021", "nnunet", "amos"])
def test_perfect_model_reproduces_original_labels(name, prepared, tmp_path):
    manifest = prepared(name, 4 if name != "brats2021" else 3)
    m = load_manifest(manifest)
    pred = CachedLabelPredictor(m)
    res = evaluate_patients(None, m, fold=None, predictor=pred, out_dir=tmp_path, save_predictions=True)
    assert pred.calls == m["num_cases"]
    codes, spacings = set(), []
    for row, c in zip(res["rows"], m["cases"]):
        assert all(v == 1.0 for v in row["dice"].values()), (c["case_id"], row["dice"])
        assert all(v == 0.0 for v in row["hd95"].values()), (c["case_id"], row["hd95"])
        # the saved prediction (label values, original affine) equals the original label file voxel for voxel
        orig = nib.load(c["source"]["label"])
        saved = nib.load(tmp_path / "predictions" / f"{c['case_id']}.nii.gz")
        np.testing.assert_array_equal(np.asarray(saved.dataobj), np.asarray(orig.dataobj))
        np.testing.assert_allclose(saved.affine, orig.affine, atol=1e-5)
        codes.add("".join(nib.aff2axcodes(orig.affine)))
        spacings.append(row["spacing"])
    assert codes - {"RAS"}, "no non-RAS file exercised"
    if not name.startswith("brats"):  # BraTS is isotropic
        assert any(max(s) / min(s) > 1.5 for s in spacings), "no anisotropic spacing exercised"
    assert res["summary"]["mean_dice"] == 1.0 and res["summary"]["mean_hd95"] == 0.0
    with open(res["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["case_id"] for r in rows] == [c["case_id"] for c in m["cases"]]
    assert json.loads(open(res["json"]).read())["num_cases"] == m["num_cases"]


def test_inversion_with_in_plane_anisotropy_and_non_ras(raw_copy, tmp_path):
    """One ACDC file rewritten with strongly anisotropic in-plane spacing and an LPI affine."""
    from iac_components.data.prepare import prepare_dataset
    from iac_components.data.synth import reorient_to_file, save_nifti

    raw = raw_copy("acdc", 3)
    for f in sorted((raw / "training" / "patient001").glob("patient001_frame*.nii.gz")):
        img = nib.load(f)
        aff = np.diag([1.9, 3.1, 7.0, 1.0])
        (arr,), faff = reorient_to_file([np.asarray(img.dataobj)], aff, flips=(0, 1, 2))
        save_nifti(f, arr, faff)
    assert nib.aff2axcodes(nib.load(f).affine) == ("L", "P", "I")
    manifest = prepare_dataset("acdc", raw, tmp_path / "cache", spacing=(1.5, 1.5), spatial_size=(80, 96), progress=False)
    m = load_manifest(manifest)
    c = m["cases"][0]
    assert c["case_id"] == "patient001_ED" and c["original_spacing"] == pytest.approx([1.9, 3.1, 7.0])
    res = evaluate_patients(None, m, fold=None, case_ids=["patient001_ED", "patient001_ES"], predictor=CachedLabelPredictor(m))
    for row in res["rows"]:
        assert set(row["dice"].values()) == {1.0} and set(row["hd95"].values()) == {0.0}


def test_coarser_target_is_close_not_exact(synth_root, tmp_path):
    from iac_components.data.prepare import prepare_dataset

    manifest = prepare_dataset("acdc", synth_root("acdc", 4), tmp_path, spacing=(3.0, 3.0), spatial_size=(32, 32), progress=False)
    res = evaluate_patients(None, manifest, fold=None, predictor=CachedLabelPredictor(manifest))
    assert 0.8 < res["summary"]["mean_dice"] < 1.0


def test_evaluate_with_a_real_network_and_slice_inferer(prepared, tmp_path):
    """The default predictor (SliceInferer over a 2-D MONAI UNet) runs end to end in the original grid."""
    from monai.networks.nets import BasicUNet

    m = load_manifest(prepared("acdc", 4))
    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=4, features=(4, 4, 8, 8, 16, 4))
    res = evaluate_patients(net, m, fold=None, case_ids=["patient001_ED"], out_dir=tmp_path)
    row = res["rows"][0]
    assert set(row["dice"]) == {"RV", "MYO", "LV"}
    assert all(0.0 <= v <= 1.0 for v in row["dice"].values())
    assert (tmp_path / "metrics_per_case.csv").is_file() and (tmp_path / "metrics_summary.json").is_file()
