"""What rebuilds a model travels with its weights (issue: a model carries what it needs to be rebuilt).

A retrain at another cell width than the search's, then the default evaluate, export and inference; a model
packaged without its cache; a geometry given to inference that is not the model's."""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import SMALL, SMALL_INFER, run_workflow
from monai.bundle import ckpt_export

from iac_components.bundles.package import package_bundle
from iac_components.bundles.runtime import model_record

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def retrained_narrower(acdc_searched, tmp_path_factory):
    """The searched bundle retrained with ``--cell_channels 8`` (the search ran at the bundle's 32) into its own
    --ckpt_dir, next to the search's genotype.json."""
    p = acdc_searched
    ckpt = tmp_path_factory.mktemp("narrow") / "models"
    ckpt.mkdir()
    for f in ("baseline.pt", "genotype.json"):
        shutil.copy2(p.root / "models" / f, ckpt / f)
    run_workflow(p.root / "configs/retrain.json", dataset_dir=str(p.raw), ckpt_dir=str(ckpt), epochs=1,
                 cell_channels=8, **SMALL)  # fmt: skip
    return p, ckpt


def test_the_checkpoint_records_the_cells_and_the_preprocessing(retrained_narrower):
    p, ckpt = retrained_narrower
    record = model_record(str(ckpt / "model.pt"))
    assert record["cells"]["cell_channels"] == 8
    assert record["cells"]["genotypes"] == json.loads((ckpt / "genotype.json").read_text())["genotypes"]
    assert record["preprocessing"]["settings"]["spacing"] == SMALL["spacing"]
    assert "cases" not in record["preprocessing"]
    # and beside the weights, for model.ts users
    assert json.loads((ckpt / "manifest.json").read_text())["settings"]["spatial_size"] == SMALL["spatial_size"]


def test_default_evaluate_export_and_inference_rebuild_the_retrained_width(retrained_narrower, tmp_path):
    p, ckpt = retrained_narrower
    out = tmp_path / "eval"
    run_workflow(p.root / "configs/evaluate.json", dataset_dir=str(p.raw), ckpt_dir=str(ckpt), output_dir=str(out),
                 device="cpu", num_workers=0)  # fmt: skip
    summary = json.loads((out / "evaluation" / "iac" / "metrics_summary.json").read_text())
    assert summary["num_cases"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        ckpt_export("network_def", filepath=str(ckpt / "model.ts"), ckpt_file=str(ckpt / "model.pt"),
                    config_file=str(p.root / "configs" / "inference.json"), bundle_root=str(p.root), ckpt_dir=str(ckpt),
                    key_in_ckpt="model", use_trace=True, input_shape=[1, 1, 48, 48, 4],
                    converter_kwargs={"check_trace": False})  # fmt: skip
    volume = sorted((p.raw / "training").glob("patient*/patient*_frame01.nii.gz"))[0]
    labels = {}
    for mode in ("true", "false"):  # model.ts, then the eager network rebuilt from model.pt's record
        run_workflow(p.root / "configs/inference.json", input=str(volume), output_dir=str(tmp_path / mode),
                     ckpt_dir=str(ckpt), torchscript=mode, device="cpu")  # fmt: skip
        labels[mode] = np.asarray(nib.load(next((tmp_path / mode).glob("*.nii.gz"))).dataobj)
    assert np.array_equal(labels["true"], labels["false"])
    # a width that does not fit the checkpoint is one line, not a 300-line size mismatch
    with pytest.raises(SystemExit, match=r"--cell_channels 16 does not fit .*trained at width 8"):
        run_workflow(p.root / "configs/evaluate.json", dataset_dir=str(p.raw), ckpt_dir=str(ckpt),
                     output_dir=str(tmp_path / "bad"), cell_channels=16, device="cpu", num_workers=0)  # fmt: skip


def test_a_release_without_its_cache_segments_as_the_trained_bundle(retrained_narrower, tmp_path):
    p, ckpt = retrained_narrower
    release = package_bundle(p.root, tmp_path / "release", ckpt_dir=ckpt, cache_dir=tmp_path / "no_cache")
    dl = tmp_path / "dl"
    with zipfile.ZipFile(release["zip"]) as z:
        z.extractall(dl)
    bundle = dl / "acdc_iac"
    assert json.loads((bundle / "models" / "manifest.json").read_text())["settings"]["spacing"] == SMALL["spacing"]
    volume = sorted((p.raw / "training").glob("patient*/patient*_frame01.nii.gz"))[0]
    # no geometry given: the release's own; the trained folder with its cache as the reference
    run_workflow(bundle / "configs/inference.json", input=str(volume), output_dir=str(tmp_path / "rel"), device="cpu")
    run_workflow(p.root / "configs/inference.json", input=str(volume), output_dir=str(tmp_path / "ref"),
                 ckpt_dir=str(ckpt), torchscript="true", device="cpu")  # fmt: skip
    a = np.asarray(nib.load(next((tmp_path / "rel").glob("*.nii.gz"))).dataobj)
    b = np.asarray(nib.load(next((tmp_path / "ref").glob("*.nii.gz"))).dataobj)
    assert np.array_equal(a, b)
    # a geometry that is not the model's is refused, unless forced
    other = {**SMALL_INFER, "spacing": [1.5, 1.5]}
    with pytest.raises(SystemExit, match=r"is not the geometry the model was trained at"):
        run_workflow(bundle / "configs/inference.json", input=str(volume), output_dir=str(tmp_path / "x"), **other)
    run_workflow(bundle / "configs/inference.json", input=str(volume), output_dir=str(tmp_path / "forced"),
                 force_geometry=True, **other)  # fmt: skip
    assert any((tmp_path / "forced").glob("*.nii.gz"))


@pytest.mark.parametrize("labelled", [1, 2])
def test_finetune_from_one_or_two_labelled_volumes(acdc_retrained, acdc_exported, tmp_path, labelled):
    """finetune.json as MONAI Label's trainer runs it on a release, at the bundle's batch of 16 slices, with one
    labelled volume (no validation volume: it validates on what it has) and with two (one to validate): the loader
    is never empty, the run validates, saves model.pt and exports model.ts again."""
    release = package_bundle(acdc_retrained.root, tmp_path / "release", ckpt_dir=acdc_exported,
                             cache_dir=acdc_retrained.root / "cache")  # fmt: skip
    with zipfile.ZipFile(release["zip"]) as z:
        z.extractall(tmp_path / "app")
    bundle = tmp_path / "app" / "acdc_iac"
    frames = sorted(acdc_retrained.raw.glob("training/*/*_frame01.nii.gz"))[:labelled]
    datalist = [{"image": str(f), "label": str(f).replace(".nii.gz", "_gt.nii.gz")} for f in frames]
    ts_before = (bundle / "models" / "model.ts").read_bytes()
    run_workflow(bundle / "configs" / "finetune.json",
                 dataset_dir=str(tmp_path / "none"), num_workers=0, device="cpu", amp=False,
                 **{"train#dataset#data": datalist[:1], "validate#dataset#data": datalist[1:],
                    "train#trainer#max_epochs": 1})  # fmt: skip
    assert (bundle / "models" / "model.pt").is_file()
    assert (bundle / "models" / "model.ts").read_bytes() != ts_before
    splits = json.loads((bundle / "cache" / "datalist" / "splits.json").read_text())
    assert splits["overlapping"] and splits["patients"]["validation"]


def test_evaluation_at_another_geometry_than_the_models_is_refused_unless_forced(retrained_narrower, tmp_path):
    p, ckpt = retrained_narrower
    other = {"dataset_dir": str(p.raw), "ckpt_dir": str(ckpt), "cache_dir": str(tmp_path / "cache"), "device": "cpu",
             "num_workers": 0, "spacing": [2.5, 2.5], "spatial_size": [48, 48]}  # fmt: skip
    with pytest.raises(SystemExit, match=r"was trained at spacing \[2.0, 2.0\]; the data here are prepared at spacing "
                                         r"\[2.5, 2.5\].*--force_geometry true"):
        run_workflow(p.root / "configs/evaluate.json", output_dir=str(tmp_path / "refused"), **other)
    run_workflow(p.root / "configs/evaluate.json", output_dir=str(tmp_path / "forced"), force_geometry=True, **other)
    assert (tmp_path / "forced" / "evaluation" / "evaluation.json").is_file()
