"""The bundles on MONAI's workflow contract: ``bundle_root`` resolves the same way through every MONAI entry point,
and ``ConfigWorkflow(..., workflow_type=...).check_properties()`` finds every property of a training workflow
(train, search, retrain) and of an inference workflow, for every bundle, on tiny synthetic data.

``check_properties`` reads each property, so it builds the data, the trainer and the network: the search needs a
baseline checkpoint and the retrain and inference a genotype, which random weights stand in for here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bundle_utils import BUNDLES, GENOTYPE, REPO, SMALL, copy_bundle, representative_bundles, subprocess_env
from monai.bundle import ConfigParser, ConfigWorkflow

from iac_components.bundles.overlays import chain_files, command_files
from iac_components.bundles.table import all_bundles
from iac_components.data import synthesize
from iac_components.genotype import save_genotypes

NAMES = [s.name for s in all_bundles()]
#: the synthetic stand-in of each dataset row (custom_iac: the nnU-Net layout)
SYNTH = {"acdc": "acdc", "brats": "brats2021", "kits": "kits23", "amos": "amos", "custom": "nnunet"}


# ------------------------------------------------------------------------------------------------ bundle_root
@pytest.mark.parametrize("workflow", ["train", "search", "retrain", "evaluate", "inference"])
def test_bundle_root_is_the_same_through_parser_and_workflow(workflow, tmp_path):
    config = [str(f) for f in chain_files(BUNDLES / "acdc_iac" / "configs" / f"{workflow}.json")]
    parser = ConfigParser()
    parser.read_config(config)
    wf = ConfigWorkflow(config_file=config, workflow_type=None, logging_file=False)
    wf_root = ConfigWorkflow(config_file=config, workflow_type=None, logging_file=False, bundle_root=str(tmp_path))
    assert parser.get_parsed_content("bundle_root") == wf.parser.get_parsed_content("bundle_root") == "."
    assert wf_root.parser.get_parsed_content("bundle_root") == str(tmp_path)
    assert wf_root.parser.get_parsed_content("ckpt_dir") == f"{tmp_path}/models"


def _typed_root(cwd: Path, config: str, *extra: str) -> str:
    """``os.path.abspath(bundle_root)`` as ``python -m monai.bundle run`` resolves it, typed in ``cwd``."""
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "where", "--config_file", config, "--where",
         "$print('ROOT=' + os.path.abspath(@bundle_root))", *extra],
        cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next(line[5:] for line in proc.stdout.splitlines() if line.startswith("ROOT="))


@pytest.mark.slow
def test_bundle_root_typed_from_the_repository_and_from_the_bundle(tmp_path):
    """Outputs go to the current directory, or to ``--bundle_root``: the README's three forms."""
    bundle = BUNDLES / "acdc_iac"
    assert _typed_root(REPO, command_files("bundles/acdc_iac/configs/search.json")) == str(REPO)
    assert _typed_root(bundle, command_files("configs/search.json")) == str(bundle)
    assert _typed_root(tmp_path, command_files(bundle / "configs/search.json"), "--bundle_root", str(bundle)) == str(bundle)


# ------------------------------------------------------------------------------------------------ properties
@pytest.fixture(scope="module")
def raw_data(tmp_path_factory):
    """One tiny synthetic dataset per dataset row, made on first use."""
    made: dict[str, Path] = {}

    def get(key: str) -> Path:
        if key not in made:
            kw = {"size": 40, "slices": (4, 5)} if key == "acdc" else {"size": 32, "slices": (5, 6)}
            made[key] = synthesize(SYNTH[key], tmp_path_factory.mktemp(f"raw_{key}"), patients=6, seed=0, **kw)
        return made[key]

    return get


def _checked(root: Path, workflow: str, workflow_type: str, **override) -> ConfigWorkflow:
    wf = ConfigWorkflow(config_file=[str(f) for f in chain_files(root / "configs" / f"{workflow}.json")], workflow_type=workflow_type,
                        logging_file=False, bundle_root=str(root), **override)  # fmt: skip
    wf.initialize()
    assert wf.check_properties() == [], f"{root.name}/{workflow}.json"
    return wf


def _check_bundle(name: str, raw: Path, parent: Path) -> None:
    """train, search, retrain as training workflows and inference as an inference workflow, in a bundle copy."""
    root = copy_bundle(name, parent)
    models = root / "models"
    models.mkdir()
    # the synthetic CT volumes are larger in mm than the others: a coarser grid keeps them inside 48 x 48
    data = {"dataset_dir": str(raw), **SMALL, **({"spacing": [4.0, 4.0]} if name.startswith(("kits", "amos")) else {})}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        wf = _checked(root, "train", "train", **data)
        torch.save(wf.parser.get_parsed_content("network").state_dict(), models / "baseline.pt")
        wf = _checked(root, "search", "train", **data)
        assert type(wf.parser.get_parsed_content("train#trainer")).__name__ == "IACSearchTrainer"
        save_genotypes(models / "genotype.json", [GENOTYPE], share_genotype=True)
        wf = _checked(root, "retrain", "train", **data)
        torch.save({"model": wf.parser.get_parsed_content("network").state_dict()}, models / "model.pt")
        _checked(root, "inference", "infer", device="cpu")
    finally:
        torch.set_num_threads(threads)


def test_acdc_workflows_have_every_monai_property(raw_data, tmp_path):
    _check_bundle("acdc_iac", raw_data("acdc"), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in representative_bundles() if n != "acdc_iac"])
def test_every_bundle_has_every_monai_property(name, raw_data, tmp_path):
    key = name.split("_iac")[0]
    _check_bundle(name, raw_data(key), tmp_path)
    shutil.rmtree(tmp_path / name / "models")  # the big encoders' checkpoints
