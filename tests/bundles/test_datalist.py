"""Training from a datalist of 3-D files (``train#dataset#data``, ``validate#dataset#data``), as MONAI Label and
model-zoo users pass it: the adapter, its folds, the dataset filter, and train -> search -> retrain on one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bundle_utils import SEARCH_EPOCHS, SMALL, copy_bundle, run_workflow

from iac_components.data import DatasetError, SliceDataset, prepare_dataset, synthesize
from iac_components.data.datalist import DatalistAdapter, read_datalist
from iac_components.data.splits import datalist_splits
from iac_components.genotype import load_genotypes


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list[dict[str, str]]:
    """{image, label} of the ED frames of 6 synthetic ACDC patients."""
    raw = synthesize("acdc", tmp_path_factory.mktemp("dl_raw"), patients=6, seed=1, size=40, slices=(4, 5), frames=4)
    images = sorted(raw.glob("*/patient*/patient*_frame01.nii.gz"))
    return [{"image": str(p), "label": str(p).replace(".nii.gz", "_gt.nii.gz")} for p in images]


def test_adapter_takes_the_dataset_conventions_and_ids_from_file_names(pairs):
    a = DatalistAdapter(pairs, like="acdc")
    assert a.class_names == ("background", "RV", "MYO", "LV") and a.channel_names == ("cine",)
    cases = a.cases()
    assert [c.case_id for c in cases] == sorted(Path(p["image"]).name[:-7] for p in pairs)
    assert all(c.patient_id == c.case_id and c.modality == "MRI" for c in cases)


def test_adapter_errors_name_the_entry(pairs, tmp_path):
    with pytest.raises(DatasetError, match="empty"):
        DatalistAdapter([], like="acdc")
    with pytest.raises(DatasetError, match=r"missing image file .*nowhere\.nii\.gz"):
        DatalistAdapter([{"image": str(tmp_path / "nowhere.nii.gz"), "label": pairs[0]["label"]}], like="acdc").cases()
    with pytest.raises(DatasetError, match=r"entry 0 .* has no 'label'"):
        DatalistAdapter([{"image": pairs[0]["image"]}], like="acdc").cases()
    with pytest.raises(DatasetError, match="duplicate case ids"):
        DatalistAdapter([pairs[0], pairs[0]], like="acdc").cases()
    with pytest.raises(DatasetError, match="needs its classes"):
        DatalistAdapter(pairs, like="nnunet")


def test_a_json_datalist_is_read_relative_to_its_folder(pairs, tmp_path):
    base = Path(pairs[0]["image"]).parent
    (base / "list.json").write_text(json.dumps({"training": [{"image": Path(pairs[0]["image"]).name,
                                                              "label": Path(pairs[0]["label"]).name}]}))
    assert read_datalist(base / "list.json") == [{"image": pairs[0]["image"], "label": pairs[0]["label"]}]


def test_splits_keep_validation_entries_apart_and_the_dataset_filters_by_file(pairs, tmp_path):
    entries = [{**p, "subset": "training"} for p in pairs[:4]] + [{**p, "subset": "validation"} for p in pairs[4:]]
    manifest = prepare_dataset("acdc", None, tmp_path, adapter=DatalistAdapter(entries, like="acdc"),
                               spacing=(2.0, 2.0), spatial_size=(48, 48), progress=False)  # fmt: skip
    s = datalist_splits(manifest, seed=0)
    ids = [Path(p["image"]).name[:-7] for p in pairs]
    assert sorted(s["patients"]["train"]) == sorted(ids[:4]) and s["patients"]["validation"] == sorted(ids[4:])
    assert s["patients"]["test"] == [] and not set(s["patients"]["search_train"]) & set(s["patients"]["search_val"])
    one = SliceDataset(manifest, fold="train", splits=s, data=pairs[:1])
    assert {one[i]["case_id"] for i in range(len(one))} == {ids[0]}
    with pytest.raises(DatasetError, match="in the datalist but not in the cache"):
        SliceDataset(manifest, fold="train", splits=s, data=[{"image": "/elsewhere/x.nii.gz"}])
    # without validation entries, validation is drawn from the training patients
    alone = datalist_splits([{"case_id": i, "patient_id": i} for i in ids], seed=0)
    assert alone["patients"]["validation"] and set(alone["patients"]["train"]) | set(alone["patients"]["validation"]) == set(ids)


@pytest.mark.slow  # three bundle workflows end to end
def test_train_search_retrain_from_a_datalist(pairs, tmp_path):
    """What MONAI Label's bundle trainer passes: no --dataset_dir, the datalists in the MONAI properties."""
    root = copy_bundle("acdc_iac", tmp_path)
    data = {"train#dataset#data": pairs[:4], "validate#dataset#data": pairs[4:], **SMALL}
    wf = run_workflow(root / "configs" / "train.json", epochs=1, **data)
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 1
    assert (root / "models" / "baseline.pt").is_file() and (root / "cache" / "datalist" / "manifest.json").is_file()
    search = {"train#dataset#data": pairs[:4], **SMALL, **SEARCH_EPOCHS}
    wf = run_workflow(root / "configs" / "search.json", **search)
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 2
    weight = {trainer.data_loader.dataset[i]["case_id"] for i in range(len(trainer.data_loader.dataset))}
    arch = {trainer.val_data_loader.dataset[i]["case_id"] for i in range(len(trainer.val_data_loader.dataset))}
    assert weight and arch and not weight & arch  # search-train and search-val patients from the one list
    load_genotypes(root / "models" / "genotype.json", num_levels=1)
    wf = run_workflow(root / "configs" / "retrain.json", epochs=1, **data)
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 1
    assert torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)


def test_few_labelled_volumes_give_overlapping_folds_that_keep_the_search_apart(tmp_path):
    """One or two labelled volumes (MONAI Label): with two the search folds stay disjoint and validation shares
    them; with one every fold holds it and a search refuses it."""
    from iac_components.data.splits import datalist_splits

    def manifest(n):
        return {"dataset": "acdc", "cases": [{"case_id": f"c{i}", "patient_id": f"p{i}", "subset": "training"}
                                              for i in range(n)]}  # fmt: skip

    two = datalist_splits(manifest(2))
    assert two["overlapping"] and two["search_disjoint"]
    assert set(two["patients"]["search_train"]).isdisjoint(two["patients"]["search_val"])
    assert sorted(two["patients"]["validation"]) == ["p0", "p1"]
    one = datalist_splits(manifest(1))
    assert one["overlapping"] and not one["search_disjoint"] and one["patients"]["validation"] == ["p0"]
