"""The inference-only bundle: with ``models/model.ts`` alone (no ``model.pt``, no genotype), ``inference.json`` runs
with ``iac_components`` not importable and writes the same label map as the eager model."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import SMALL_INFER, copy_bundle, run_workflow, subprocess_env
from monai.bundle import ckpt_export

# a meta-path finder ahead of the editable install's: any import of iac_components fails, and is recorded
BLOCK_IAC = textwrap.dedent(
    """
    import atexit, sys
    class BlockIAC:
        attempts = []
        def find_spec(self, name, path=None, target=None):
            if name == "iac_components" or name.startswith("iac_components."):
                self.attempts.append(name)
                raise ImportError(f"iac_components is blocked in this test ({name})")
            return None
    sys.meta_path.insert(0, BlockIAC())
    atexit.register(lambda: print(f"blocked imports: {BlockIAC.attempts}", file=sys.stderr))
    """
)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]

RUN_MONAI_BUNDLE = BLOCK_IAC + "import runpy\nsys.argv[0] = 'monai.bundle'\nrunpy.run_module('monai.bundle', run_name='__main__')\n"


def _blocked(code: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def ts_only_bundle(acdc_retrained, tmp_path_factory):
    """A copy of ``acdc_iac`` whose models/ holds only the exported TorchScript of the retrained model."""
    root = copy_bundle("acdc_iac", tmp_path_factory.mktemp("ts_only"))
    (root / "models").mkdir()
    ckpt_export(
        "network_def", filepath=str(root / "models" / "model.ts"), ckpt_file=str(acdc_retrained.root / "models" / "model.pt"),
        config_file=str(acdc_retrained.root / "configs" / "inference.json"), bundle_root=str(acdc_retrained.root),
        key_in_ckpt="model", use_trace=True,
        input_shape=[1, 1, 48, 48, 4], converter_kwargs={"check_trace": False},
    )  # fmt: skip
    assert sorted(p.name for p in (root / "models").iterdir()) == ["model.ts"]
    return root


def test_blocker_blocks(tmp_path):
    proc = _blocked(BLOCK_IAC + "import iac_components.networks\n", cwd=tmp_path)
    assert proc.returncode != 0 and "iac_components is blocked" in proc.stderr
    assert "blocked imports: ['iac_components']" in proc.stderr


def test_torchscript_inference_without_iac_components(ts_only_bundle, acdc_retrained, tmp_path):
    src = acdc_retrained.raw / "testing" / "patient102" / "patient102_frame01.nii.gz"
    proc = _blocked(
        RUN_MONAI_BUNDLE, "run", "--config_file", str(ts_only_bundle / "configs" / "inference.json"), "--bundle_root",
        str(ts_only_bundle), "--input", str(src),
        "--output_dir", str(tmp_path / "ts"), "--spacing", "[2.0, 2.0]", "--spatial_size", "[48, 48]", "--device", "cpu",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == "blocked imports: []"
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
