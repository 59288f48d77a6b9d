"""The model zoo's own CI on a trained bundle: ``ci/verify_bundle.py`` (vendored under tests/zoo_ci, unmodified but
for the list of bundles that trace rather than script) in ``min`` and full mode, from a model-zoo-shaped folder, as
the zoo's CI runs it. Offline: the metadata schema the zoo downloads is placed where its script looks for it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from bundle_utils import REPO, subprocess_env

ZOO_CI = REPO / "tests" / "zoo_ci"
SCHEMA = REPO / "iac_components" / "bundles" / "schema" / "meta_schema.json"


@pytest.fixture(scope="module")
def zoo(acdc_retrained, acdc_exported, tmp_path_factory):
    root = tmp_path_factory.mktemp("model-zoo")
    shutil.copytree(ZOO_CI, root / "ci", ignore=shutil.ignore_patterns("README.md", "LICENSE"))
    bundle = root / "models" / "acdc_iac"
    for part in ("configs", "docs"):
        shutil.copytree(acdc_retrained.root / part, bundle / part)
    shutil.copy2(acdc_retrained.root / "LICENSE", bundle / "LICENSE")
    (bundle / "models").mkdir()
    for f in ("model.pt", "genotype.json", "manifest.json"):
        shutil.copy2(acdc_retrained.root / "models" / f, bundle / "models" / f)
    shutil.copy2(acdc_exported / "model.ts", bundle / "models" / "model.ts")
    (root / "models" / "model_info.json").write_text("{}")
    (bundle / "eval").mkdir()
    shutil.copy2(SCHEMA, bundle / "eval" / "schema.json")  # what the zoo's prepare_schema.py downloads
    return root


def _verify(zoo, mode):
    return subprocess.run([sys.executable, "ci/verify_bundle.py", "-b", "acdc_iac", "-m", mode], cwd=zoo,
                          env=subprocess_env(), capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_verify_bundle_min(zoo):
    proc = _verify(zoo, "min")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "metadata format is verified correctly." in proc.stdout


@pytest.mark.slow
def test_verify_bundle_full(zoo):
    proc = _verify(zoo, "full")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "data shape is verified correctly." in proc.stdout
    assert "does not support torchscript, skip verifying" in proc.stdout  # declared trace-only (docs/README.md)
    meta = json.loads((zoo / "models" / "acdc_iac" / "configs" / "metadata.json").read_text())
    assert "supported_apps" in meta and "eval_metrics" not in meta


def test_the_vendored_exclusion_list_names_every_bundle():
    from iac_components.bundles.table import all_bundles

    text = (ZOO_CI / "bundle_custom_data.py").read_text()
    listed = text.split("# --- added for the iac_components collection", 1)[1]
    assert all(f'"{s.name}"' in listed for s in all_bundles())
