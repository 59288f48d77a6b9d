"""``iac gpu-check``: the prepared GPU run. Its CPU dry run (every part at toy sizes, each in its own process under
its time box) runs in the slow tier so that the command cannot rot between GPU leases."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from iac_components.gpu_check import PARTS, run_gpu_check


def test_the_gpu_time_boxes_fit_one_ten_minute_command():
    assert sum(gpu for gpu, _ in PARTS.values()) <= 8 * 60
    with pytest.raises(ValueError, match="unknown part"):
        run_gpu_check("/tmp/never_written", dry_run=True, parts="search_amp,warp_drive")


def test_without_a_gpu_the_real_run_says_so_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "iac_components", "gpu-check", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no CUDA device (iac gpu-check --dry_run runs")


@pytest.mark.slow
def test_the_dry_run_runs_every_part_and_writes_its_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "iac_components", "gpu-check", "--out", str(tmp_path), "--dry_run"],
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["parts"]) == set(PARTS) and summary["dry_run"]
    parts = {p: json.loads((tmp_path / f"{p}.json").read_text()) for p in PARTS}
    assert all(p["ok"] for p in parts.values()), {k: v.get("error") for k, v in parts.items()}
    search = parts["search_amp"]["result"]["runs"]["bfloat16"]
    assert search["alpha_finite"] and search["skipped_arch_steps"] == 0 and search["arch_steps"] > 0
    assert parts["workflows"]["result"]["torchscript_equals_eager_voxels"] == 1.0
    assert parts["torchrun"]["result"]["backend"] == "gloo" and parts["torchrun"]["result"]["alpha_finite"]
    assert parts["nnunet"]["result"]["search"]["arch_steps"] > 0
    assert {r["backbone"] for r in parts["memory"]["result"]["rows"]} == {"unet", "resnet50"}
    assert parts["inference"]["result"]["rows"][0]["seconds"]["cells"]


def test_parts_as_fire_hands_them_over():
    """``--parts a,b`` reaches the function as a tuple; an unknown part among them is still named."""
    with pytest.raises(ValueError, match="warp_drive"):
        run_gpu_check("/tmp/never_written", dry_run=True, parts=("search_amp", "warp_drive"))
