"""The release format after TorchScript: ``models/model.pt2``, a ``torch.export`` program of the inference network
(dynamic number of slices). It equals the eager model for the base U-Net and a torchvision encoder, and
``inference.json`` runs it, when present, in a process where iac_components cannot be imported."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import BUNDLES, NO_IAC_IMPORTS, RUN_MONAI_BUNDLE, run_blocked, run_workflow
from monai.bundle import ConfigParser

from iac_components.bundles.runtime import export_program

pytestmark = pytest.mark.slow


def _labels(folder):
    return np.asarray(nib.load(next(folder.glob("*.nii.gz"))).dataobj)


def test_the_program_of_the_retrained_base_unet_segments_as_the_eager_model(acdc_retrained, tmp_path):
    p = acdc_retrained
    models = tmp_path / "models"
    shutil.copytree(p.root / "models", models)
    export_program(str(p.root), str(models), [1, 1, 48, 48, 4])
    volume = sorted((p.raw / "training").glob("patient*/patient*_frame01.nii.gz"))[0]
    run_workflow(p.root / "configs/inference.json", input=str(volume), output_dir=str(tmp_path / "eager"),
                 ckpt_dir=str(models), program="false", torchscript="false", device="cpu")  # fmt: skip
    wf = run_workflow(p.root / "configs/inference.json", input=str(volume), output_dir=str(tmp_path / "program"),
                      ckpt_dir=str(models), device="cpu")  # fmt: skip
    assert wf.parser.get_parsed_content("use_program")  # auto: model.pt2 is there
    assert np.array_equal(_labels(tmp_path / "eager"), _labels(tmp_path / "program"))

    # a release that ships the program alone runs it without iac_components (only aten operations inside)
    release = tmp_path / "release" / "acdc_iac"
    shutil.copytree(p.root / "configs", release / "configs")
    (release / "models").mkdir()
    for f in ("model.pt2", "manifest.json"):
        shutil.copy2(models / f, release / "models" / f)
    proc = run_blocked(RUN_MONAI_BUNDLE, "run", "--config_file", "configs/inference.json", "--input", str(volume),
                       "--output_dir", str(tmp_path / "blocked"), cwd=release)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] in NO_IAC_IMPORTS
    assert np.array_equal(_labels(tmp_path / "blocked"), _labels(tmp_path / "eager"))


def test_the_program_of_a_torchvision_encoder_equals_the_eager_network(acdc_retrained, tmp_path):
    """acdc_iac_resnet50 with random weights and the searched cell: the program and the eager network agree on a
    volume whose slices are not the exported example's."""
    root = tmp_path / "acdc_iac_resnet50"
    shutil.copytree(BUNDLES / "acdc_iac_resnet50", root)
    models = root / "models"
    models.mkdir()
    for f in ("genotype.json", "manifest.json"):
        shutil.copy2(acdc_retrained.root / "models" / f, models / f)
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.update({"bundle_root": str(root), "torchscript": "false", "program": "false"})
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def").eval()
    torch.save({"model": network.state_dict()}, models / "model.pt")
    export_program(str(root), str(models), [1, 1, 64, 64, 4])
    program = torch.export.load(str(models / "model.pt2")).module()
    x = torch.randn(1, 1, 64, 64, 7)
    with torch.no_grad():
        torch.testing.assert_close(program(x), network(x), rtol=1e-4, atol=1e-4)
    assert json.loads((models / "manifest.json").read_text())["settings"]["spatial_size"]
