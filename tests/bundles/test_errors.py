"""A missing dataset or a missing checkpoint stops a workflow with one line that says what to do."""

from __future__ import annotations

import shlex

import pytest
from bundle_utils import SMALL, SMALL_ARGS, copy_bundle, monai_bundle, run_workflow

from iac_components.bundles.overlays import command_files

# subprocess and whole-pipeline runs: the slow tier (`pytest -m slow`)
pytestmark = pytest.mark.slow


def test_train_without_dataset_says_where_acdc_comes_from(tmp_path):
    root = copy_bundle("acdc_iac", tmp_path)
    missing = tmp_path / "no_such_dataset"
    proc = monai_bundle("run", "--config_file", root / "configs" / "train.json", "--dataset_dir", missing, *SMALL_ARGS, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no dataset at {missing} (--dataset_dir)")
    assert "https://www.creatis.insa-lyon.fr/Challenge/acdc/" in last
    assert "iac synth acdc " in last and "--dataset_dir" in last
    assert not (root / "models" / "baseline.pt").exists()


@pytest.mark.parametrize(
    "workflow, missing, run_first",
    [("search", "baseline.pt", "configs/train.json"), ("retrain", "genotype.json", "configs/search.json")],
)
def test_missing_checkpoint_names_file_and_command(workflow, missing, run_first, acdc_trained, tmp_path):
    root = copy_bundle("acdc_iac", tmp_path)
    ckpt_dir = tmp_path / "models"
    ckpt_dir.mkdir()
    if workflow == "retrain":  # the baseline is there, the genotype is not
        (ckpt_dir / "baseline.pt").symlink_to(acdc_trained.root / "models" / "baseline.pt")
    with pytest.raises(SystemExit) as e:
        run_workflow(
            root / "configs" / f"{workflow}.json", dataset_dir=str(acdc_trained.raw), cache_dir=str(acdc_trained.root / "cache"),
            ckpt_dir=str(ckpt_dir), output_dir=str(tmp_path / "eval"), epochs=1, **SMALL,
        )  # fmt: skip
    message = str(e.value.code)
    assert "\n" not in message and message.startswith("error: ")
    assert str(ckpt_dir / missing) in message
    assert f"--config_file {shlex.quote(command_files(root / run_first))} --bundle_root {root}" in message


def test_a_failed_export_keeps_model_ts_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import monai.bundle

    from iac_components.bundles.runtime import export_torchscript

    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes(b"weights")
    (models / "model.ts").write_bytes(b"the deployed model")

    def export_that_fails(*args, filepath, **kwargs):
        open(filepath, "wb").write(b"half a model")
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(monai.bundle, "ckpt_export", export_that_fails)
    with pytest.raises(RuntimeError, match="tracing failed"):
        export_torchscript(str(tmp_path), str(models), [1, 1, 32, 32, 4])
    assert sorted(p.name for p in models.iterdir()) == ["model.pt", "model.ts"]
    assert (models / "model.ts").read_bytes() == b"the deployed model"
