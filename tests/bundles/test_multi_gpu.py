"""The ``multi_gpu_*.json`` overlays under a real ``torchrun`` with 2 CPU processes (gloo on 127.0.0.1), typed the
model-zoo way from inside the bundle folder: train and retrain run an epoch with DDP, the search runs with
sharded loaders and writes its genotype once, and evaluation on 2 ranks writes the same per-patient CSV as one
process (no patient twice, none lost)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
from bundle_utils import SMALL, run_workflow
from launch_utils import torchrun

pytestmark = pytest.mark.slow

#: SMALL_ARGS without --device: the overlay gives each rank its device
ARGS = ["--spacing", "[2.0, 2.0]", "--spatial_size", "[48, 48]", "--num_workers", "0", "--batch_size", "4",
        "--amp", "false"]  # fmt: skip


def _configs(*names: str) -> str:
    return "[" + ",".join(f"'configs/{n}.json'" for n in names) + "]"


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_overlays_train_search_retrain_evaluate_on_two_ranks(acdc_trained, tmp_path):
    root = tmp_path / "acdc_iac"
    shutil.copytree(acdc_trained.root, root, ignore=shutil.ignore_patterns("eval"))
    data = ["--dataset_dir", str(acdc_trained.raw)]
    models = root / "models"

    before = (models / "baseline.pt").stat().st_mtime_ns
    torchrun("-m", "monai.bundle", "run", "--config_file", _configs("train", "multi_gpu_train"), *data, *ARGS,
             "--epochs", "1", cwd=root)  # fmt: skip
    assert (models / "baseline.pt").stat().st_mtime_ns != before  # rank 0 saved the best epoch

    proc = torchrun("-m", "monai.bundle", "run", "search", "--config_file", _configs("train", "search", "multi_gpu_search"),
                    *data, *ARGS, "--epochs", "2", "--warmup_steps", "2", cwd=root)  # fmt: skip
    history = json.loads((root / "eval" / "search_history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert (models / "genotype.json").is_file()
    assert proc.stderr.count("search epoch 2/2") <= 1  # the progress line comes from rank 0 only

    torchrun("-m", "monai.bundle", "run", "--config_file", _configs("train", "retrain", "multi_gpu_train"), *data, *ARGS,
             "--epochs", "1", cwd=root)  # fmt: skip
    state = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state.get("model", state))  # without the DDP wrapper

    # evaluation: one process, then two ranks into another folder: the same rows, each patient once
    small = {k: v for k, v in SMALL.items() if k in ("spacing", "spatial_size", "num_workers")}
    run_workflow(root / "configs" / "evaluate.json", dataset_dir=str(acdc_trained.raw), device="cpu", **small)
    torchrun("-m", "monai.bundle", "run", "--config_file", _configs("train", "evaluate", "multi_gpu_evaluate"), *data,
             "--spacing", "[2.0, 2.0]", "--spatial_size", "[48, 48]", "--num_workers", "0",
             "--output_dir", str(tmp_path / "eval2"), cwd=root)  # fmt: skip
    for name in ("iac", "baseline"):
        one = _rows(root / "eval" / "evaluation" / name / "metrics_per_case.csv")
        two = _rows(tmp_path / "eval2" / "evaluation" / name / "metrics_per_case.csv")
        splits = json.loads((root / "cache" / "splits.json").read_text())
        assert sorted(r["case_id"] for r in two) == sorted(splits["cases"]["test"])
        assert two == one
