"""Shared fixtures of the bundle tests: tiny synthetic datasets, bundle copies in temporary folders, and one ACDC
pipeline (train -> search -> retrain) run once per session the way a user runs it, whose outputs the workflow,
inference and export tests share.

Workflows run either as a user types them (``python -m monai.bundle run ...`` in a subprocess, about 6 s of
imports each) or in-process through :class:`monai.bundle.ConfigWorkflow` (same config resolution, no import
cost).
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from bundle_utils import GENOTYPE, SEARCH_EPOCHS, SMALL, SMALL_ARGS, check_ok, copy_bundle, monai_bundle, run_workflow
from monai.bundle import ckpt_export

from iac_components.data import synthesize
from iac_components.genotype import save_genotypes


@pytest.fixture(scope="session")
def acdc_raw(tmp_path_factory) -> Path:
    """8 ACDC patients (5 training, 3 testing), 40x40 pixels, 4-5 slices, in RAS, LPS, RPS and LAI files."""
    return synthesize("acdc", tmp_path_factory.mktemp("acdc_raw"), patients=8, seed=0, size=40, slices=(4, 5), frames=4)


@pytest.fixture(scope="session")
def nnunet_raw(tmp_path_factory) -> Path:
    """6 cases in the nnU-Net v2 raw layout (2 channels, 3 classes); the ``Dataset001_Synthetic`` folder."""
    return synthesize("nnunet", tmp_path_factory.mktemp("nnunet_raw"), patients=6, seed=0, size=32, slices=(5, 6))


@pytest.fixture(scope="session")
def msd_raw(tmp_path_factory) -> Path:
    """6 cases in the Medical Segmentation Decathlon layout."""
    return synthesize("msd", tmp_path_factory.mktemp("msd_raw"), patients=6, seed=0, size=32, slices=(5, 6))


@dataclass
class Pipeline:
    """A bundle copy and the runs that wrote its ``models/`` and ``eval/``."""

    root: Path
    raw: Path
    runs: dict[str, Any]


@pytest.fixture(scope="session")
def acdc_trained(tmp_path_factory, acdc_raw) -> Pipeline:
    """``acdc_iac`` copied to a temporary folder and its baseline trained for one epoch, typed from the folder
    above the bundle (``--config_file acdc_iac/configs/train.json --bundle_root acdc_iac``) with no path overrides
    but the dataset's: the cache and ``models/`` land in the copy."""
    parent = tmp_path_factory.mktemp("acdc_bundle")
    root = copy_bundle("acdc_iac", parent)
    proc = monai_bundle(
        "run", "--config_file", "acdc_iac/configs/train.json", "--bundle_root", "acdc_iac", "--dataset_dir", acdc_raw,
        *SMALL_ARGS, "--epochs", "1",
        cwd=parent,
    )  # fmt: skip
    return Pipeline(root, acdc_raw, {"train": check_ok(proc)})


@pytest.fixture(scope="session")
def acdc_searched(acdc_trained) -> Pipeline:
    """The search of the README (id ``search``), typed from inside the bundle folder (``configs/search.json`` over
    ``configs/train.json``)."""
    p = acdc_trained
    proc = monai_bundle(
        "run", "search", "--config_file", "['configs/train.json','configs/search.json']", "--dataset_dir", p.raw, *SMALL_ARGS,
        "--epochs", "2", "--warmup_steps", "2", cwd=p.root,
    )  # fmt: skip
    p.runs["search"] = check_ok(proc)
    return p


@pytest.fixture(scope="session")
def acdc_retrained(acdc_searched) -> Pipeline:
    """The retrain with the searched cells, one epoch (in-process)."""
    p = acdc_searched
    p.runs["retrain"] = run_workflow(p.root / "configs/retrain.json", dataset_dir=str(p.raw), epochs=1, **SMALL)
    return p


@pytest.fixture(scope="session")
def acdc_exported(acdc_retrained, tmp_path_factory) -> Path:
    """A folder with the retrained model exported to TorchScript (``model.ts``, traced as the README's export
    command does) and its ``genotype.json``: what ``iac bundles package --ckpt_dir`` takes."""
    out = tmp_path_factory.mktemp("acdc_export")
    models = acdc_retrained.root / "models"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        ckpt_export(
            "network_def", filepath=str(out / "model.ts"), ckpt_file=str(models / "model.pt"),
            config_file=str(acdc_retrained.root / "configs" / "inference.json"), bundle_root=str(acdc_retrained.root),
            key_in_ckpt="model", use_trace=True, input_shape=[1, 1, 48, 48, 4], converter_kwargs={"check_trace": False},
        )  # fmt: skip
    shutil.copy2(models / "genotype.json", out / "genotype.json")
    return out


@pytest.fixture(scope="session")
def custom_pipeline(tmp_path_factory, nnunet_raw) -> Pipeline:
    """``custom_iac`` on the nnU-Net layout: train, search, retrain (in-process, one epoch each, search two)."""
    root = copy_bundle("custom_iac", tmp_path_factory.mktemp("custom_bundle"))
    data = {"dataset_dir": str(nnunet_raw), **SMALL}
    runs = {
        "train": run_workflow(root / "configs/train.json", epochs=1, **data),
        "search": run_workflow(root / "configs/search.json", run_id="search", **data, **SEARCH_EPOCHS),
        "retrain": run_workflow(root / "configs/retrain.json", epochs=1, **data),
    }
    return Pipeline(root, nnunet_raw, runs)


@pytest.fixture(scope="session")
def genotype_file(tmp_path_factory) -> Path:
    """``genotype.json`` of :data:`GENOTYPE`, shared by all levels."""
    return Path(save_genotypes(tmp_path_factory.mktemp("genotype") / "genotype.json", [GENOTYPE], share_genotype=True))


@pytest.fixture(scope="session")
def monailabel_venv() -> Path:
    """MONAI Label's own virtualenv (it pins numpy 1.26), built by ``tests/monailabel/make_venv.sh`` on first use
    (about 7 minutes) and reused after (``IAC_MONAILABEL_VENV`` chooses where)."""
    import subprocess

    from bundle_utils import REPO

    make_venv = REPO / "tests" / "monailabel" / "make_venv.sh"
    proc = subprocess.run(["bash", str(make_venv)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"building MONAI Label's virtualenv failed:\n{proc.stderr[-3000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])
