"""The search recipe has one home: a default changed in iac_components.search.recipe reaches the bundles (as
``iac bundles generate`` writes them), the nnU-Net search trainer, the rule, the handler and the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from iac_components.bundles.overlays import load_merged
from iac_components.search.recipe import SEARCH_RECIPE, demo_search

PROBE = r"""
import dataclasses, json
import iac_components.search.recipe as recipe
recipe.SEARCH_RECIPE = dataclasses.replace(recipe.SEARCH_RECIPE, partial_k=8,
                                           rule=dataclasses.replace(recipe.SEARCH_RECIPE.rule, patience=5))
from iac_components.bundles.table import get_bundle
from iac_components.bundles.template import render
from iac_components.search.rule import JSDRule
from iac_components.search.pruning import JSDPruningHandler
from iac_components.demo import DEMO_OVERRIDES
search = render(get_bundle("acdc_iac"))["search.json"]
out = {"bundle_patience": search["pruning"]["patience"], "bundle_k": search["partial_k"],
       "rule": JSDRule().patience, "handler": JSDPruningHandler().patience,
       "demo_overrides": DEMO_OVERRIDES["search"]}
try:
    from iac_components.nnunet.trainers import nnUNetTrainerIACSearch
    import inspect
    src = inspect.getsource(nnUNetTrainerIACSearch.__init__)
    out["nnunet_reads_recipe"] = "SEARCH_RECIPE.rule" in src and "SEARCH_RECIPE.partial_k" in src
except ImportError:
    out["nnunet_reads_recipe"] = None
print(json.dumps(out))
"""


@pytest.mark.slow  # subprocesses: the generator, the nnU-Net trainer, the demo (about 20 s)
def test_one_change_in_the_recipe_reaches_every_consumer():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bundle_patience"] == 5 and out["bundle_k"] == 8
    assert out["rule"] == 5 and out["handler"] == 5
    # the demo names only its own differences: it inherits the new patience and K through the bundle's search.json
    assert "pruning#patience" not in out["demo_overrides"] and "partial_k" not in out["demo_overrides"]
    assert out["nnunet_reads_recipe"] in (True, None)


def test_the_committed_bundles_are_the_recipe():
    from pathlib import Path

    search = load_merged(Path(__file__).resolve().parents[2] / "bundles" / "acdc_iac" / "configs" / "search.json")
    assert search["pruning"] == {**SEARCH_RECIPE.rule.to_config(), "control": None}
    assert (search["learning_rate"], search["arch_learning_rate"], search["warmup_steps"], search["epochs"]) == (
        SEARCH_RECIPE.learning_rate, SEARCH_RECIPE.arch_learning_rate, SEARCH_RECIPE.warmup_steps, SEARCH_RECIPE.epochs)
    assert search["ops"] == list(SEARCH_RECIPE.ops) and search["cell_channels"] == SEARCH_RECIPE.cell_channels


def test_the_demo_is_the_recipe_with_named_differences():
    demo = demo_search()
    overrides = demo.overrides()
    for key, value in overrides.items():
        assert value != SEARCH_RECIPE.to_dict().get(key, SEARCH_RECIPE.rule.to_config().get(key.removeprefix("pruning#")))
    assert demo.rule.keep_schedule == SEARCH_RECIPE.rule.keep_schedule
