"""One home per dataset: its adapter, default settings, synthetic stand-in and bundle row live in its own module,
and the registry line in ``data/base.py`` is all that points there."""

from __future__ import annotations

import importlib

import pytest

from iac_components.data.base import DATASET_NAMES, adapter_class, dataset_module
from iac_components.data.settings import DEFAULT_SETTINGS, DatasetSettings
from iac_components.data.synth import SyntheticSpec, synth_settings


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_registered_dataset_keeps_its_facts_in_its_own_module(name):
    module = importlib.import_module(dataset_module(name))
    assert adapter_class(name).__module__ == module.__name__
    assert isinstance(module.SETTINGS[name], DatasetSettings) and DEFAULT_SETTINGS[name] is module.SETTINGS[name]
    assert isinstance(module.SYNTHETIC, SyntheticSpec) and synth_settings(name) == module.SYNTHETIC.prepare


def test_the_collection_reads_its_dataset_rows_from_the_dataset_modules():
    from iac_components.bundles.table import COLLECTION_DATASETS, DATASET_ROWS

    for adapter in COLLECTION_DATASETS:
        row = importlib.import_module(dataset_module(adapter)).BUNDLE_ROW
        assert DATASET_ROWS[row["key"]].adapter == adapter and DATASET_ROWS[row["key"]].title == row["title"]
    assert list(DATASET_ROWS) == ["acdc", "brats", "kits", "amos", "custom"]


def test_settings_of_an_unknown_name_list_the_registered_ones():
    from iac_components.data.base import DatasetError

    with pytest.raises(DatasetError, match="valid names: acdc"):
        DEFAULT_SETTINGS["acdc2"]
