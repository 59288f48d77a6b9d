"""The one preprocessing chain: pure-MONAI config, instantiable without iac_components, RAS, in-plane
resampling only, image-derived normalisation."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from iac_components.data import get_settings, instantiate_transforms, preprocessing_config
from iac_components.data.transforms import augmentation_config, label_to_values_config


def test_config_is_json_with_monai_targets_only():
    import monai.transforms as mt

    for name, mod in [("acdc", "MRI"), ("kits19", "CT"), ("brats2021", "MRI")]:
        cfg = preprocessing_config(get_settings(name), mod)
        assert json.loads(json.dumps(cfg)) == cfg
        for t in cfg:
            assert hasattr(mt, t["_target_"]) and "." not in t["_target_"]
    cfg = preprocessing_config(get_settings("brats2021"), "MRI")
    assert cfg[1] == {"_target_": "MapLabelValued", "keys": "label", "orig_labels": [0, 1, 2, 4], "target_labels": [0, 1, 2, 3]}
    assert label_to_values_config(get_settings("acdc")) == []


def test_normalisation_never_sees_the_label():
    mri = preprocessing_config(get_settings("acdc"), "MRI")
    norm = [t for t in mri if t["_target_"] == "NormalizeIntensityd"][0]
    assert norm == {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}
    ct = [t for t in preprocessing_config(get_settings("kits23"), "CT") if t["_target_"] == "ScaleIntensityRanged"][0]
    assert ct["keys"] == "image" and (ct["a_min"], ct["a_max"], ct["clip"]) == (-79.0, 304.0, True)


def test_chain_output_is_ras_with_in_plane_spacing(synth_root):
    from iac_components.data import get_adapter

    case = get_adapter("kits19", synth_root("kits19", 3)).cases()[0]  # stored (z, y, x)
    s = get_settings("kits19", spacing=(4.0, 4.0), spatial_size=(96, 96))
    out = instantiate_transforms(preprocessing_config(s, "CT"))(case.data_dict())
    img, lab = out["image"], out["label"]
    assert nib.aff2axcodes(img.affine.numpy()) == ("R", "A", "S")
    raw = nib.load(case.image[0])
    zooms = raw.header.get_zooms()
    assert img.shape == (1, 96, 96, raw.shape[0])  # the first stored axis became the slice axis, slices kept
    assert np.sqrt((img.affine.numpy()[:3, :3] ** 2).sum(0)) == pytest.approx([4.0, 4.0, zooms[0]])
    assert lab.shape == img.shape and set(torch.unique(lab).tolist()) <= {0.0, 1.0, 2.0}
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0


@pytest.mark.slow
def test_chain_instantiates_in_a_process_without_iac_components(tmp_path):
    """What inference.json does: only MONAI, the config from JSON."""
    cfg = preprocessing_config(get_settings("acdc", spacing=(2.0, 2.0), spatial_size=(32, 32)), "MRI", label_key=None)
    arr = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(arr, np.diag([1.0, 1.5, 8.0, 1.0])), tmp_path / "img.nii.gz")
    (tmp_path / "chain.json").write_text(json.dumps({"pre": {"_target_": "Compose", "transforms": cfg}}))
    code = (
        "import sys, json; sys.modules['iac_components'] = None\n"
        "from monai.bundle import ConfigParser\n"
        f"p = ConfigParser(json.load(open({str(tmp_path / 'chain.json')!r})))\n"
        f"out = p.get_parsed_content('pre')({{'image': {str(tmp_path / 'img.nii.gz')!r}}})\n"
        "print(tuple(out['image'].shape))\n"
    )
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "(1, 32, 32, 3)"


def test_unresolved_settings_are_refused():
    with pytest.raises(ValueError, match="resolved"):
        preprocessing_config(get_settings("msd"), "MRI")
    with pytest.raises(ValueError, match="modality"):
        preprocessing_config(get_settings("acdc"), "PET")


def test_augmentation_config_is_monai_and_configurable():
    cfg = augmentation_config(prob=0.3, flip=False, rotate_deg=0, scale=0, noise_std=0.05)
    assert [t["_target_"] for t in cfg] == ["RandScaleIntensityd", "RandShiftIntensityd", "RandGaussianNoised"]
    full = augmentation_config()
    affine = [t for t in full if t["_target_"] == "RandAffined"][0]
    assert affine["mode"] == ["bilinear", "nearest"] and affine["rotate_range"] == [pytest.approx(np.radians(15))]
    t = instantiate_transforms(full)
    item = {"image": torch.rand(1, 16, 16), "label": torch.randint(0, 3, (1, 16, 16)).float()}
    out = t(item)
    assert out["image"].shape == (1, 16, 16) and set(torch.unique(out["label"]).tolist()) <= {0.0, 1.0, 2.0}
