"""A package users can install: the sdist and the wheel build, pass ``twine check``, and the wheel installs into a
fresh virtualenv (its dependencies seen from the test environment, the repository not), where ``iac --help`` lists
the commands and a bundle workflow runs from the installed package (the eager inference of a trained bundle needs
iac_components: the wheel's, not the checkout's)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _run(cmd, cwd, timeout=600):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    # no build isolation: the build needs setuptools, which the test environment has (no download)
    _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir", dist, REPO], cwd=tmp)
    _run([sys.executable, "-m", "twine", "check", *sorted(dist.iterdir())], cwd=tmp)
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip())
    # torch, MONAI, ... from the test environment's site-packages as a plain path (its .pth files, the editable
    # install of this checkout among them, are not processed)
    (site / "test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("iac_components-*.whl"))
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp)
    return venv, tmp


def test_the_wheel_installs_and_iac_lists_its_commands(installed):
    venv, tmp = installed
    where = _run([venv / "bin" / "python", "-c", "import iac_components; print(iac_components.__file__)"], cwd=tmp)
    assert str(venv) in where.stdout and str(REPO) not in where.stdout  # the wheel's copy, not the checkout
    proc = _run([venv / "bin" / "iac", "--help"], cwd=tmp)
    out = proc.stdout + proc.stderr  # fire shows help on stderr when it is not a terminal
    assert all(c in out for c in ("demo", "synth", "bundles", "benchmark", "gpu_check"))
    version = _run([venv / "bin" / "iac", "--version"], cwd=tmp).stdout
    assert version.strip().startswith("iac_components ")


def test_a_bundle_generated_from_the_wheel_runs_its_eager_inference(installed, acdc_retrained):
    venv, tmp = installed
    py = venv / "bin" / "python"
    _run([venv / "bin" / "iac", "bundles", "generate", "--out", tmp / "bundles", "--names", "acdc_iac"], cwd=tmp)
    bundle = tmp / "bundles" / "acdc_iac"
    shutil.copytree(acdc_retrained.root / "models", bundle / "models")
    volume = sorted((acdc_retrained.raw / "training").glob("patient*/patient*_frame01.nii.gz"))[0]
    _run([py, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json", "--input", volume,
          "--output_dir", tmp / "out", "--torchscript", "false", "--program", "false", "--device", "cpu"], cwd=bundle)
    assert (tmp / "out" / volume.name).is_file()
