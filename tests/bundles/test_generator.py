"""The committed bundles are exactly what ``iac bundles generate`` writes; ``iac bundles check`` lists any file that
differs and fails."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from bundle_utils import BUNDLES, subprocess_env

from iac_components.bundles.generator import check


def test_committed_bundles_match_the_generator():
    assert check(BUNDLES) == []


@pytest.mark.slow
def test_check_fails_and_lists_edited_and_missing_files(tmp_path):
    out = tmp_path / "bundles"
    shutil.copytree(BUNDLES, out, ignore=shutil.ignore_patterns("models", "cache", "eval"))
    assert check(out) == []
    edited = out / "acdc_iac" / "configs" / "train.json"
    edited.write_text(edited.read_text().replace('"epochs": 100', '"epochs": 99'))
    (out / "kits_iac" / "docs" / "README.md").unlink()
    (out / "amos_iac" / "configs" / "notes.json").write_text("{}")

    proc = subprocess.run(
        [sys.executable, "-m", "iac_components", "bundles", "check", "--out", str(out)],
        env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    report = proc.stdout + proc.stderr
    assert f"differs: {edited}" in report
    assert f"missing: {out / 'kits_iac' / 'docs' / 'README.md'}" in report
    assert f"extra: {out / 'amos_iac' / 'configs' / 'notes.json'}" in report
    assert sum(line.strip().startswith(("differs:", "missing:", "extra:")) for line in report.splitlines()) == 3


def test_show_gives_a_3d_bundles_own_geometry_and_patch(capsys):
    """``iac bundles show`` of a 3-D bundle: its grid (every axis), not the 2-D bundles' in-plane default."""
    from iac_components.cli import Bundles

    Bundles().show("kits_iac_3d")
    out = capsys.readouterr().out
    assert "default geometry: spacing [1.5, 1.5, 1.5] mm, slice size [352, 352]" in out
    assert "3-D: patch [96, 96, 96], batch 2 (search 1)" in out and "cell_channels 16" in out


def test_the_3d_memory_table_quotes_the_committed_measurement():
    """The memory table of the 3-D bundles' READMEs (templates/memory_3d.md) is a copy of
    benchmarks/results/peak_memory_3d_bundles.json: each row there, rounded as quoted, is in the template, and each
    bundle's defaults are the measured ones."""
    import json

    from bundle_utils import REPO

    from iac_components.bundles.table import get_bundle

    results = json.loads((REPO / "benchmarks/results/peak_memory_3d_bundles.json").read_text())
    template = (REPO / "iac_components/bundles/templates/memory_3d.md").read_text()
    assert len(results["rows"]) == 6
    for r in results["rows"]:
        search = r["workflow"] == "search"
        row = (f"| {r['bundle']} | {r['workflow']} | {r['in_channels']} | {r['classes']} | {r['batch']} | "
               f"{' x '.join(map(str, r['patch']))} | {r['partial_k'] if search else '-'} | "
               f"{r['cell_channels'] if search else '-'} | {r['peak_gb']:.1f} | {r['seconds']:.0f} |")  # fmt: skip
        assert row in template, row
        v = get_bundle(r["bundle"]).volume
        assert list(v.patch_size) == r["patch"]
        assert (v.search_batch_size, v.cell_channels) == (r["batch"], r["cell_channels"]) if search else v.batch_size == r["batch"]
