"""The inference-only bundle: with ``models/model.ts`` alone (no ``model.pt``, no genotype), ``inference.json`` runs
with ``iac_components`` not importable and writes the same label map as the eager model."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import BLOCK_IAC, NO_IAC_IMPORTS, RUN_MONAI_BUNDLE, SMALL_INFER, copy_bundle, run_blocked, run_workflow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ts_only_bundle(acdc_exported, tmp_path_factory):
    """A copy of ``acdc_iac`` whose models/ holds only the exported TorchScript of the retrained model."""
    root = copy_bundle("acdc_iac", tmp_path_factory.mktemp("ts_only"))
    (root / "models").mkdir()
    shutil.copy2(acdc_exported / "model.ts", root / "models" / "model.ts")
    return root


def test_blocker_blocks(tmp_path):
    proc = run_blocked(BLOCK_IAC + "import iac_components.networks\n", cwd=tmp_path)
    assert proc.returncode != 0 and "iac_components is blocked" in proc.stderr
    assert "blocked imports: ['iac_components']" in proc.stderr


def test_torchscript_inference_without_iac_components(ts_only_bundle, acdc_retrained, tmp_path):
    src = acdc_retrained.raw / "testing" / "patient102" / "patient102_frame01.nii.gz"
    proc = run_blocked(
        RUN_MONAI_BUNDLE, "run", "--config_file", str(ts_only_bundle / "configs" / "inference.json"), "--bundle_root",
        str(ts_only_bundle), "--input", str(src),
        "--output_dir", str(tmp_path / "ts"), "--spacing", "[2.0, 2.0]", "--spatial_size", "[48, 48]", "--device", "cpu",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] in NO_IAC_IMPORTS
    out = tmp_path / "ts" / src.name
    a, b = nib.load(src), nib.load(out)
    assert b.shape == a.shape
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-4)

    # the same label map as the eager model (model.pt + genotype.json) of the bundle it was exported from
    run_workflow(
        acdc_retrained.root / "configs" / "inference.json", input=str(src), output_dir=str(tmp_path / "eager"), **SMALL_INFER
    )
    eager = np.asarray(nib.load(tmp_path / "eager" / src.name).dataobj)
    np.testing.assert_array_equal(np.asarray(b.dataobj), eager)
    assert set(np.unique(eager).tolist()) <= {0, 1, 2, 3}
