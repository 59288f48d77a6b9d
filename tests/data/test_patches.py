"""The 3-D bundles' data: volumes resampled in every axis, and label-balanced 3-D patches of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from iac_components.data.datasets import PatchDataset
from iac_components.data.prepare import load_manifest, prepare_dataset
from iac_components.data.settings import get_settings

PATCH = [16, 16, 8]


def _chains(patch=PATCH):
    from iac_components.bundles.config_parts import train_preprocessing
    from iac_components.bundles.table import get_bundle

    parser = ConfigParser({**train_preprocessing(get_bundle("brats_iac_3d")), "patch_size": patch})
    return parser.get_parsed_content("sampling"), parser.get_parsed_content("preprocessing")


def test_three_spacing_values_resample_the_slices_too(synth_root, tmp_path):
    two = load_manifest(prepare_dataset("brats2021", synth_root("brats2021", 2), tmp_path / "a", progress=False,
                                        spacing=(8.0, 8.0), spatial_size=(32, 32)))  # fmt: skip
    three = load_manifest(prepare_dataset("brats2021", synth_root("brats2021", 2), tmp_path / "b", progress=False,
                                          spacing=(8.0, 8.0, 16.0), spatial_size=(32, 32)))  # fmt: skip
    for a, b in zip(two["cases"], three["cases"]):
        assert a["shape"][:3] == b["shape"][:3]  # channels and the in-plane size
        assert b["num_slices"] == pytest.approx(a["num_slices"] / 2, abs=1)  # 8 mm slices at 16 mm
        assert np.sqrt((np.asarray(b["affine"])[:3, :3] ** 2).sum(0)).tolist() == pytest.approx([8.0, 8.0, 16.0])


def test_a_spacing_of_another_length_is_one_line():
    with pytest.raises(ValueError, match=r"spacing \[1.0, 1.0, 1.0, 1.0\]: give two values .* or three"):
        get_settings("brats", spacing=(1, 1, 1, 1))


def test_patches_have_the_patch_size_and_half_are_centred_on_foreground(prepared):
    m = load_manifest(prepared("brats2021", 4))
    sampling, _ = _chains()
    ds = PatchDataset(m, sampling=sampling, samples_per_volume=8, seed=0)
    assert len(ds) == 8 * len(m["cases"])
    items = [ds[i] for i in range(len(ds))]
    assert all(it["image"].shape == (4, *PATCH) and it["label"].shape == (1, *PATCH) for it in items)
    assert all(isinstance(it["image"], torch.Tensor) and not hasattr(it["image"], "meta") for it in items)
    centre = tuple(p // 2 for p in PATCH)
    centred = np.mean([float(it["label"][(0, *centre)] > 0) for it in items])
    fraction = np.mean([c["class_voxels"][0] / sum(c["class_voxels"]) for c in m["cases"]])
    # pos = neg = 1: half the patches centred on a labelled voxel, the other half anywhere (mostly background)
    assert centred >= 0.4 and centred > 1 - fraction + 0.2


def test_patches_follow_the_seed_and_the_augmentation_is_optional(prepared):
    m = load_manifest(prepared("brats2021", 4))
    a = PatchDataset(m, sampling=_chains()[0], seed=3)
    b = PatchDataset(m, sampling=_chains()[0], seed=3)
    c = PatchDataset(m, sampling=_chains()[0], seed=4)
    assert all(torch.equal(a[i]["image"], b[i]["image"]) for i in range(len(a)))
    assert any(not torch.equal(a[i]["image"], c[i]["image"]) for i in range(len(a)))
    augmented = PatchDataset(m, sampling=_chains()[0], augment=_chains()[1], seed=3)
    assert augmented[0]["image"].shape == (4, *PATCH)
    assert PatchDataset(m, sampling=_chains()[0], augment=False).augment is None


def test_a_volume_smaller_than_the_patch_is_padded_to_it(prepared):
    m = load_manifest(prepared("brats2021", 4))
    big = [40, 40, 24]  # larger than the 32 x 32 x ~16 cached volumes on every axis
    ds = PatchDataset(m, sampling=_chains(big)[0])
    assert ds[0]["image"].shape == (4, *big) and ds[0]["label"].shape == (1, *big)


def test_a_patch_dataset_without_a_crop_or_with_no_sample_is_refused(prepared):
    m = load_manifest(prepared("brats2021", 4))
    with pytest.raises(ValueError, match="needs `sampling`"):
        PatchDataset(m)
    with pytest.raises(ValueError, match="samples_per_volume must be at least 1"):
        PatchDataset(m, sampling=_chains()[0], samples_per_volume=0)


@pytest.mark.parametrize("patch", [[16, 16, 16], [32, 32], "96"])
def test_a_patch_the_3d_unet_cannot_take_is_one_line(patch):
    from iac_components.bundles.runtime import check_patch_size

    with pytest.raises(SystemExit, match=r"--patch_size .*: give three sizes, each at least 17 voxels"):
        check_patch_size(patch)
    check_patch_size([32, 32, 17])


def test_a_3d_bundles_inference_defaults_to_its_own_grid_and_the_models_patch(tmp_path):
    """inference.json of a 3-D bundle: without any manifest, the bundle's grid (every axis) and patch; with a model's
    manifest.json, its geometry and the patch it was trained on (MONAI Label cannot pass --patch_size)."""
    import json
    import shutil

    from iac_components.bundles.table import get_bundle

    root = tmp_path / "kits_iac_3d"
    shutil.copytree(Path(__file__).resolve().parents[2] / "bundles" / "kits_iac_3d" / "configs", root / "configs")
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.update({"bundle_root": str(root)})
    v = get_bundle("kits_iac_3d").volume
    assert parser.get_parsed_content("spacing") == list(v.spacing) == [1.5, 1.5, 1.5]
    assert parser.get_parsed_content("spatial_size") == list(v.spatial_size)
    assert parser.get_parsed_content("patch_size") == list(v.patch_size)
    (root / "models").mkdir()
    manifest = {"settings": {"spacing": [10.0, 10.0, 10.0], "spatial_size": [32, 32]}, "patch_size": [32, 32, 48]}
    (root / "models" / "manifest.json").write_text(json.dumps(manifest))
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.update({"bundle_root": str(root)})
    assert parser.get_parsed_content("patch_size") == [32, 32, 48]
    assert parser.get_parsed_content("spacing") == [10.0, 10.0, 10.0]
    assert list(parser.get_parsed_content("inferer").roi_size) == [32, 32, 48]
