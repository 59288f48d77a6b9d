"""A 3-D bundle end to end as a user types it (``python -m monai.bundle ...`` in the bundle folder), on a tiny
synthetic KiTS23 in its official layout: the baseline on 3-D patches, the IAC-LTH search on the frozen 3-D U-Net
(Conv3d cells, a genotype that records 3-D), the retrain, the per-patient evaluation in the original grid with
sliding windows, TorchScript and ``torch.export`` export, inference of a NIfTI into its own grid (eager, TorchScript
and the exported program agree), the model zoo's ``verify_bundle.py``, a real MONAI Label server's ``/infer``,
``finetune.json`` on a release (MONAI Label's ``/train``) and the multi-GPU overlays under ``torchrun``.

Patches are 32^3 (the smallest the 3-D BasicUNet takes: it halves them four times) over volumes resampled to 10 mm in
every axis; the search runs 3 ops at width 4.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from bundle_utils import REPO, check_ok, copy_bundle, monai_bundle, subprocess_env

from iac_components.data import synthesize

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]

NAME = "kits_iac_3d"
PATCH = "[32, 32, 32]"
#: what every workflow of the test is given: the tiny data's grid, the patch, the CPU
ARGS = ["--spacing", "[10.0, 10.0, 10.0]", "--spatial_size", "[32, 32]", "--patch_size", PATCH, "--samples_per_volume",
        "1", "--num_workers", "0", "--device", "cpu", "--amp", "false"]  # fmt: skip
SEARCH = ["--ops", "['skip_connect', 'max_pool_3x3', 'conv_3x3']", "--cell_channels", "4"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """kits_iac_3d copied, then train, search, retrain and evaluate run in it; returns (bundle, raw, runs)."""
    raw = synthesize("kits23", tmp_path_factory.mktemp("kits_raw"), patients=6, seed=0, size=32, slices=(8, 10),
                     spacing=(9.6, 10.8))  # fmt: skip
    root = copy_bundle(NAME, tmp_path_factory.mktemp("bundle3d"))
    data = ["--dataset_dir", str(raw), *ARGS]
    runs = {
        "train": check_ok(monai_bundle("run", "--config_file", "configs/train.json", *data, "--epochs", "1", cwd=root)),
        "search": check_ok(monai_bundle(
            "run", "search", "--config_file", "['configs/train.json','configs/search.json']", *data, *SEARCH,
            "--epochs", "2", "--warmup_steps", "1", cwd=root)),
        "retrain": check_ok(monai_bundle(
            "run", "--config_file", "['configs/train.json','configs/retrain.json']", *data, "--epochs", "1", cwd=root)),
        "evaluate": check_ok(monai_bundle(
            "run", "--config_file", "['configs/train.json','configs/evaluate.json']", *data, "--save_predictions", "true",
            cwd=root)),
    }  # fmt: skip
    return root, raw, runs


def test_the_search_builds_3d_cells_and_records_3d(pipeline):
    root, _, runs = pipeline
    genotype = json.loads((root / "models" / "genotype.json").read_text())
    assert genotype["search"]["cell_config"]["spatial_dims"] == 3
    history = json.loads((root / "eval" / "search_history.json").read_text())
    assert history["ops_alive_start"] == 14 * 3  # one genotype shared by the skips: 14 edges, 3 ops
    assert history["search_space"]["spatial_dims"] == 3
    log = runs["train"].stdout + runs["train"].stderr
    assert "spacing [10.0, 10.0, 10.0] mm" in log and '--input_shape "[1, 1, 32, 32, 32]"' in log  # the export's input


def test_evaluation_is_per_patient_in_the_original_grid(pipeline):
    root, raw, _ = pipeline
    report = json.loads((root / "eval" / "evaluation" / "evaluation.json").read_text())
    assert set(report) >= {"iac", "baseline", "comparison"}
    splits = json.loads((root / "cache" / "splits.json").read_text())
    test_patients = splits["patients"]["test"]
    assert report["iac"]["num_patients"] == len(test_patients) >= 1
    for case in test_patients:
        predicted = nib.load(root / "eval" / "evaluation" / "iac" / "predictions" / f"{case}.nii.gz")
        label = nib.load(raw / "dataset" / case / "segmentation.nii.gz")
        assert predicted.shape == label.shape  # the original grid, not the 10 mm one
        np.testing.assert_allclose(predicted.affine, label.affine, atol=1e-4)
        assert set(np.unique(np.asarray(predicted.dataobj)).tolist()) <= {0, 1, 2, 3}


@pytest.fixture(scope="module")
def exported(pipeline):
    root, _, _ = pipeline
    check_ok(monai_bundle("ckpt_export", "network_def", "--config_file", "configs/inference.json", "--key_in_ckpt",
                          "model", "--use_trace", "True", "--input_shape", "[1, 1, 32, 32, 32]", "--ckpt_file",
                          "models/model.pt", "--filepath", "models/model.ts", cwd=root))  # fmt: skip
    # at the patch the model was trained on (its manifest's 32^3); the program's sizes are dynamic (multiples of 16)
    proc = subprocess.run([sys.executable, "-m", "iac_components", "bundles", "export_program", str(root)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def _infer(root, image, out, *extra):
    check_ok(monai_bundle("run", "--config_file", "configs/inference.json", "--input", image, "--output_dir", out,
                          "--patch_size", PATCH, *extra, cwd=root))  # fmt: skip
    return nib.load(out / image.name)


def test_inference_writes_the_input_grid_and_every_format_agrees(exported, tmp_path):
    root = exported
    image = sorted(root.parent.parent.glob("kits_raw*/dataset/case_*/imaging.nii.gz"))[0]
    source = nib.load(image)
    eager = _infer(root, image, tmp_path / "eager", "--program", "false")
    script = _infer(root, image, tmp_path / "ts", "--torchscript", "true")
    program = _infer(root, image, tmp_path / "pt2", "--program", "true")
    assert eager.shape == source.shape
    np.testing.assert_allclose(eager.affine, source.affine, atol=1e-4)
    reference = np.asarray(eager.dataobj)
    for other in (script, program):
        assert np.mean(np.asarray(other.dataobj) == reference) > 0.999


def test_the_model_zoo_verify_passes_on_the_3d_bundle(exported, tmp_path):
    zoo = tmp_path / "model-zoo"
    shutil.copytree(REPO / "tests" / "zoo_ci", zoo / "ci", ignore=shutil.ignore_patterns("README.md", "LICENSE"))
    bundle = zoo / "models" / NAME
    for part in ("configs", "docs"):
        shutil.copytree(exported / part, bundle / part)
    shutil.copy2(exported / "LICENSE", bundle / "LICENSE")
    (bundle / "models").mkdir()
    for f in ("model.pt", "model.ts", "genotype.json", "manifest.json"):
        shutil.copy2(exported / "models" / f, bundle / "models" / f)
    (zoo / "models" / "model_info.json").write_text("{}")
    (bundle / "eval").mkdir()
    shutil.copy2(REPO / "iac_components" / "bundles" / "schema" / "meta_schema.json", bundle / "eval" / "schema.json")
    for mode in ("min", "full"):
        proc = subprocess.run([sys.executable, "ci/verify_bundle.py", "-b", NAME, "-m", mode], cwd=zoo,
                              env=subprocess_env(), capture_output=True, text=True, timeout=900)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "data shape is verified correctly." in proc.stdout


@pytest.mark.monailabel
def test_monailabel_serves_the_3d_bundle_in_the_input_grid(exported, monailabel_venv, tmp_path):
    """A real MONAI Label server with the packaged 3-D bundle: ``/info`` lists a 3-D segmentation model with its
    labels, and ``/infer`` returns a label map in the study's grid, equal to ``monai.bundle run`` of inference.json
    on the same file (its default 96^3 window, on the program exported with the bundle)."""
    from test_monailabel_server import Server

    from iac_components.bundles.package import package_bundle
    from iac_components.monailabel import write_app

    root = exported
    release = package_bundle(root, tmp_path / "release", ckpt_dir=root / "models", cache_dir=root / "cache")
    (name, bundle), = write_app(tmp_path / "app", [release["zip"]]).items()  # fmt: skip
    studies = tmp_path / "studies"
    studies.mkdir()
    query = sorted(root.parent.parent.glob("kits_raw*/dataset/case_*/imaging.nii.gz"))[-1]
    shutil.copy2(query, studies / "case.nii.gz")
    server = Server(monailabel_venv, tmp_path / "app", studies, name, tmp_path)
    try:
        model = server.wait_ready()["models"][name]
        assert model["type"] == "segmentation" and model["dimension"] == 3
        assert model["labels"] == {"kidney": 1, "tumor": 2, "cyst": 3}
        label = nib.load(server.infer(name, "case", tmp_path / "label.nii.gz"))
        source = nib.load(query)
        assert label.shape == source.shape
        np.testing.assert_allclose(label.affine, source.affine, atol=1e-4)
        check_ok(monai_bundle("run", "--config_file", "configs/inference.json", "--input", studies / "case.nii.gz",
                              "--output_dir", tmp_path / "bundle_run", cwd=bundle))  # fmt: skip
        expected = np.asarray(nib.load(tmp_path / "bundle_run" / "case.nii.gz").dataobj)
        np.testing.assert_array_equal(np.asarray(label.dataobj), expected)
    except Exception:
        print(server.tail())
        raise
    finally:
        server.stop()


def test_the_multi_gpu_overlays_run_the_3d_bundle_on_two_ranks(pipeline, tmp_path):
    """``torchrun`` with 2 CPU processes (gloo on 127.0.0.1): train with DDP over 3-D patches, and the search with
    sharded patch loaders, writing one history and one genotype."""
    from launch_utils import torchrun

    root = tmp_path / NAME
    shutil.copytree(pipeline[0], root, ignore=shutil.ignore_patterns("eval"))
    # two validation patients: each rank validates one (a sampler that cannot pad refuses fewer items than ranks);
    # two patches per volume: each rank gets one of the one search-val patient's
    folds = "{'search_train': 2, 'search_val': 1, 'validation': 2, 'test': 1}"
    args = ["--dataset_dir", str(pipeline[1]), *ARGS[: ARGS.index("--samples_per_volume")], "--samples_per_volume", "2",
            "--num_workers", "0", "--amp", "false", "--split_fractions", folds]  # fmt: skip
    configs = lambda *names: "[" + ",".join(f"'configs/{n}.json'" for n in names) + "]"  # noqa: E731
    before = (root / "models" / "baseline.pt").stat().st_mtime_ns
    torchrun("-m", "monai.bundle", "run", "--config_file", configs("train", "multi_gpu_train"), *args, "--epochs", "1",
             cwd=root)  # fmt: skip
    assert (root / "models" / "baseline.pt").stat().st_mtime_ns != before
    torchrun("-m", "monai.bundle", "run", "search", "--config_file", configs("train", "search", "multi_gpu_search"),
             *args, *SEARCH, "--epochs", "1", "--warmup_steps", "1", cwd=root)  # fmt: skip
    history = json.loads((root / "eval" / "search_history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1] and history["search_space"]["spatial_dims"] == 3


def test_finetune_on_one_labelled_volume_reexports_the_3d_model(exported, tmp_path):
    """finetune.json as MONAI Label's ``/train`` runs it on a 3-D release: one labelled volume, patches of it, the
    best checkpoint saved and model.ts traced again at the patch."""
    import zipfile

    from bundle_utils import run_workflow

    from iac_components.bundles.package import package_bundle

    release = package_bundle(exported, tmp_path / "release", ckpt_dir=exported / "models", cache_dir=exported / "cache")
    with zipfile.ZipFile(release["zip"]) as z:
        z.extractall(tmp_path / "app")
    bundle = tmp_path / "app" / NAME
    case = sorted(exported.parent.parent.glob("kits_raw*/dataset/case_*"))[0]
    datalist = [{"image": str(case / "imaging.nii.gz"), "label": str(case / "segmentation.nii.gz")}]
    ts_before = (bundle / "models" / "model.ts").read_bytes()
    # no --patch_size, as MONAI Label runs it: the patch the model was trained on, from its release's manifest
    assert json.loads((bundle / "models" / "manifest.json").read_text())["patch_size"] == [32, 32, 32]
    run_workflow(bundle / "configs" / "finetune.json", dataset_dir=str(tmp_path / "none"), num_workers=0, device="cpu",
                 amp=False, samples_per_volume=1,
                 **{"train#dataset#data": datalist, "validate#dataset#data": [], "train#trainer#max_epochs": 1})  # fmt: skip
    assert (bundle / "models" / "model.pt").is_file()
    assert (bundle / "models" / "model.ts").read_bytes() != ts_before
    import torch

    ts = torch.jit.load(str(bundle / "models" / "model.ts"))
    assert ts(torch.zeros(1, 1, 32, 32, 32)).shape == (1, 4, 32, 32, 32)
