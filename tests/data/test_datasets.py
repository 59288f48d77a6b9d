"""Slice and volume datasets over the memory-mapped cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iac_components.data.datasets import SliceDataset, VolumeDataset, make_slice_sampler
from iac_components.data.prepare import load_manifest
from iac_components.data.splits import make_splits


def test_slicing_then_stacking_returns_the_volume_exactly(prepared):
    m = load_manifest(prepared("brats2021", 3))
    ds = SliceDataset(m)
    assert len(ds) == sum(c["num_slices"] for c in m["cases"])
    for c in m["cases"]:
        items = [ds[i] for i, (ci, _) in enumerate(ds.index) if ds.cases[ci]["case_id"] == c["case_id"]]
        assert [it["slice"] for it in items] == list(range(c["num_slices"]))
        image = torch.stack([it["image"] for it in items], dim=-1)
        label = torch.stack([it["label"] for it in items], dim=-1)
        ref_img = np.load(f"{m['cache_dir']}/{c['image']}")
        ref_lab = np.load(f"{m['cache_dir']}/{c['label']}")
        assert items[0]["image"].shape == (4, 32, 32) and items[0]["label"].shape == (1, 32, 32)
        assert items[0]["image"].dtype == torch.float32
        assert torch.equal(image, torch.from_numpy(ref_img.astype(np.float32)))
        assert torch.equal(label[0].to(torch.uint8), torch.from_numpy(ref_lab))


def test_memory_maps_are_used(prepared):
    ds = SliceDataset(prepared("acdc", 4))
    ds[0]
    arr = next(iter(ds.arrays._maps.values()))
    assert isinstance(arr, np.memmap)
    assert arr.ndim == 4 and arr[..., 2].flags["F_CONTIGUOUS"]  # one slice = one contiguous block on disk
    assert ds[0]["image"].is_contiguous() and ds[0]["label"].is_contiguous()
    import pickle

    clone = pickle.loads(pickle.dumps(ds))  # what a spawned worker gets: no copied arrays
    assert clone.arrays._maps == {}
    assert torch.equal(clone[3]["image"], ds[3]["image"])


def test_fold_selection(prepared):
    manifest = prepared("acdc", 4)
    s = make_splits(manifest, seed=0, save=False)
    ds = SliceDataset(manifest, fold="train", splits=s)
    assert sorted({c["case_id"] for c in ds.cases}) == s["cases"]["train"]
    vol = VolumeDataset(manifest, fold="test", splits=s)
    assert [v["case_id"] for v in vol] == s["cases"]["test"]


def test_empty_slices_can_be_thinned_or_down_weighted(prepared):
    m = load_manifest(prepared("acdc", 4))
    full = SliceDataset(m)
    n_fg = sum(c["num_labelled_slices"] for c in m["cases"])
    n_empty = len(full) - n_fg
    assert n_empty > 0 and int(full.labelled.sum()) == n_fg
    none = SliceDataset(m, empty_fraction=0.0)
    assert len(none) == n_fg and all(none[i]["label"].sum() > 0 for i in range(len(none)))
    w = full.slice_weights(empty_weight=0.25)
    assert sorted(set(w.tolist())) == [0.25, 1.0] and int((w == 1.0).sum()) == n_fg
    sampler = make_slice_sampler(full, empty_weight=0.0, num_samples=200, seed=0)
    drawn = list(sampler)
    assert len(drawn) == 200 and all(full.labelled[i] for i in drawn)
    assert list(make_slice_sampler(full, 0.1, 50, seed=3)) == list(make_slice_sampler(full, 0.1, 50, seed=3))


def test_augmentation_keeps_shapes_and_label_values(prepared):
    m = load_manifest(prepared("acdc", 4))
    plain = SliceDataset(m, empty_fraction=0.0)
    aug = SliceDataset(m, empty_fraction=0.0, augment={"prob": 1.0, "rotate_deg": 20, "scale": 0.1}, seed=1)
    changed = 0
    for i in range(len(plain)):
        a, b = plain[i], aug[i]
        assert b["image"].shape == a["image"].shape and b["label"].shape == a["label"].shape
        assert type(b["image"]) is torch.Tensor  # plain tensors, cheap to collate
        assert set(torch.unique(b["label"]).tolist()) <= {0.0, 1.0, 2.0, 3.0}  # nearest for labels
        changed += int(not torch.equal(a["image"], b["image"]))
    assert changed == len(plain)


def test_a_bundles_train_preprocessing_is_the_default_augmentation_seeded_alike(prepared):
    """``train#preprocessing`` (a Compose the bundle builds) in place of ``augment=True``: the same items, draw for
    draw, since the dataset seeds whatever chain it is given."""
    from monai.bundle import ConfigParser

    from iac_components.bundles.config_parts import train_preprocessing
    from iac_components.bundles.table import get_bundle

    m = load_manifest(prepared("acdc", 4))
    chain = ConfigParser(train_preprocessing(get_bundle("acdc_iac"))).get_parsed_content("preprocessing")
    built, default = SliceDataset(m, augment=chain, seed=3), SliceDataset(m, augment=True, seed=3)
    assert built.augment is chain
    for i in range(len(default)):
        a, b = default[i], built[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert SliceDataset(m, augment=None).augment is None


def test_dataloader_with_workers(prepared):
    from monai.data import DataLoader

    ds = SliceDataset(prepared("acdc", 4), augment=True)
    batch = next(iter(DataLoader(ds, batch_size=4, num_workers=2, shuffle=True)))
    assert batch["image"].shape == (4, 1, 64, 64) and batch["label"].shape == (4, 1, 64, 64)
    assert len(batch["case_id"]) == 4


def test_volume_dataset_items(prepared):
    m = load_manifest(prepared("nnunet", 3))
    vol = VolumeDataset(m)
    item = vol[1]
    c = m["cases"][1]
    assert item["image"].shape == tuple(c["shape"]) and item["label"].shape == (1, *c["shape"][1:])
    assert torch.equal(item["label"][0].to(torch.uint8), torch.from_numpy(np.load(f"{m['cache_dir']}/{c['label']}")))


def test_bad_fraction_and_unknown_case(prepared):
    from iac_components.data import DatasetError

    with pytest.raises(ValueError, match="empty_fraction"):
        SliceDataset(prepared("acdc", 4), empty_fraction=1.5)
    with pytest.raises(DatasetError, match="nope"):
        VolumeDataset(prepared("acdc", 4), case_ids=["nope"])
