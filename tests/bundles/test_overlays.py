"""Each key in one file: train.json is the base and the other training workflows are overlays on it; merged the
way ``monai.bundle`` merges a list of config files, every chain equals the workflow written whole."""

from __future__ import annotations

import json

import pytest
from bundle_utils import BUNDLES

from iac_components.bundles.overlays import CHAINS, chain_files, command_files, load_merged, merge, overlay_of
from iac_components.bundles.table import all_bundles
from iac_components.bundles.template import render

NAMES = [s.name for s in all_bundles()]


def test_an_overlay_edits_nested_entries_and_list_items_by_id():
    base = {"a": 1, "train": {"trainer": {"_target_": "T", "max_epochs": 2, "lr": 1}, "handlers": [{"x": 1}, {"y": 2}]}}
    whole = {"a": 1, "b": 3, "train": {"trainer": {"_target_": "T", "max_epochs": 5, "lr": 1},
                                       "handlers": [{"x": 1}, {"y": 4}]}}  # fmt: skip
    overlay = overlay_of(whole, base)
    assert overlay == {"b": 3, "train#trainer#max_epochs": 5, "train#handlers#1#y": 4}
    assert merge([base, overlay]) == whole
    assert base["train"]["trainer"]["max_epochs"] == 2  # merging never edits its inputs


@pytest.mark.parametrize(
    "base, whole",
    [({"d": {"_target_": "A", "k": 1}}, {"d": {"_target_": "B", "k": 1}}),  # another object
     ({"d": {"k": 1, "gone": 2}}, {"d": {"k": 1}}),  # a key a merge cannot delete
     ({"d": [1, 2]}, {"d": [1, 2, 3]})],  # a list of another length
)  # fmt: skip
def test_an_entry_that_cannot_be_edited_in_place_is_replaced_whole(base, whole):
    assert overlay_of(whole, base) == {"d": whole["d"]}
    assert merge([base, overlay_of(whole, base)]) == whole


@pytest.mark.parametrize("name", NAMES)
def test_every_chain_merges_to_the_whole_workflow(name):
    spec = next(s for s in all_bundles() if s.name == name)
    files, whole = render(spec), render(spec, whole=True)
    for overlay, bases in CHAINS.items():
        merged = merge([files[b] for b in bases] + [files[overlay]])
        expected = merge([whole[b] for b in bases] + [whole[overlay]])
        assert {k: merged[k] for k in expected} == expected, f"{name}/{overlay}"
        # what the base adds beyond the workflow is never referred to by it
        text = json.dumps({k: merged[k] for k in expected})
        for extra in set(merged) - set(expected):
            assert f"@{extra}" not in text, f"{name}/{overlay} refers to the base's {extra!r}"


def test_the_committed_overlays_are_small_and_name_their_chain():
    configs = BUNDLES / "acdc_iac" / "configs"
    train = json.loads((configs / "train.json").read_text())
    search = json.loads((configs / "search.json").read_text())
    assert "imports" not in search and "bundle_root" not in search  # the base's, not repeated
    assert {"train#arch_dataloader", "pruning", "arch_optimizer"} <= set(search)
    assert load_merged(configs / "search.json")["dataset_dir"] == train["dataset_dir"]
    assert [f.name for f in chain_files(configs / "multi_gpu_search.json")] == ["train.json", "search.json", "multi_gpu_search.json"]
    assert command_files(configs / "inference.json") == str(configs / "inference.json")  # stands alone
    assert command_files("configs/retrain.json") == "['configs/train.json','configs/retrain.json']"
    assert not (configs / "multi_gpu_retrain.json").exists()  # retrain uses multi_gpu_train.json: one file per key


def test_train_preprocessing_is_what_the_training_dataset_augments_with():
    """The zoo's ``train#preprocessing``: the training transforms, applied by ``train#dataset`` while ``augment`` is
    on (``--augment false`` leaves it unused); the search keeps it off."""
    from monai.bundle import ConfigParser

    configs = BUNDLES / "acdc_iac" / "configs"
    for workflow, on in (("train", True), ("retrain", True), ("search", False)):
        parser = ConfigParser(load_merged(configs / f"{workflow}.json"))
        chain = parser.get_parsed_content("train#preprocessing")
        assert [type(t).__name__ for t in chain.transforms][:3] == ["RandFlipd", "RandFlipd", "RandAffined"]
        assert callable(parser.get_parsed_content("train#dataset#augment")) is on, workflow
    parser = ConfigParser(load_merged(configs / "train.json"))
    parser["augment"] = False
    assert not parser.get_parsed_content("train#dataset#augment")
