"""Every workflow of ``acdc_iac`` and ``custom_iac`` runs on tiny synthetic data and writes what its docs promise;
the documented commands really advance epochs; ``bundle_root`` comes from the config file's location."""

from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import SEARCH_EPOCHS, SMALL, SMALL_INFER, copy_bundle, run_workflow
from monai.bundle import ConfigParser

from iac_components.data import synthesize
from iac_components.genotype import load_genotypes

# subprocess and whole-pipeline runs: the slow tier (`pytest -m slow`)
pytestmark = pytest.mark.slow

ACDC_VALUES = {0, 1, 2, 3}


def _state_dict(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return sd.get("model", sd)


# ------------------------------------------------------------------------------------------------ ACDC
def test_train_typed_from_parent_folder_writes_baseline_in_the_bundle(acdc_trained):
    root, proc = acdc_trained.root, acdc_trained.runs["train"]
    assert (root / "models" / "baseline.pt").is_file()
    assert (root / "cache" / "manifest.json").is_file() and (root / "cache" / "splits.json").is_file()
    # the engine ran its epoch (an id naming a section would only build it)
    assert "IACTrainer - INFO - Epoch[1] Complete" in proc.stdout
    assert "Engine run finished" in proc.stdout
    sd = _state_dict(root / "models" / "baseline.pt")
    assert any(k.endswith("weight") for k in sd) and all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())


def test_search_id_typed_from_bundle_folder_writes_genotype_and_history(acdc_searched):
    root, proc = acdc_searched.root, acdc_searched.runs["search"]
    (genotype,) = load_genotypes(root / "models" / "genotype.json", num_levels=1)
    assert genotype.n_nodes == 4
    history = json.loads((root / "eval" / "search_history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    last = history["epochs"][-1]
    assert last["arch_steps"] == last["iteration"] - 2 > 0  # two weight steps of warm-up, then one arch step each
    assert "IACSearchTrainer - INFO - Epoch[2] Complete" in proc.stdout
    assert sorted(p.name for p in (root / "eval" / "search_checkpoints").glob("*.pt"))  # resumable


def test_search_default_run_id_writes_genotype_and_history(acdc_trained, tmp_path):
    """``run`` (what ``monai.bundle run`` runs without an id) is the same search as ``search``."""
    root = copy_bundle("acdc_iac", tmp_path)
    (root / "models").mkdir()
    shutil.copy(acdc_trained.root / "models" / "baseline.pt", root / "models")
    wf = run_workflow(
        root / "configs" / "search.json", dataset_dir=str(acdc_trained.raw), cache_dir=str(acdc_trained.root / "cache"),
        **SMALL, **SEARCH_EPOCHS,
    )  # fmt: skip
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 2
    (genotype,) = load_genotypes(root / "models" / "genotype.json", num_levels=1)
    assert genotype.n_nodes == 4
    history = json.loads((root / "eval" / "search_history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]


def test_retrain_writes_model_with_cells(acdc_retrained):
    root, wf = acdc_retrained.root, acdc_retrained.runs["retrain"]
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 1
    model = _state_dict(root / "models" / "model.pt")
    baseline = _state_dict(root / "models" / "baseline.pt")
    assert any("cell" in k for k in model) and not any("cell" in k for k in baseline)
    assert {"backbone." + k for k in baseline} < set(model)  # the baseline U-Net with cells added


def test_evaluate_writes_per_case_metrics_for_iac_and_baseline(acdc_retrained, tmp_path):
    root = acdc_retrained.root
    out = tmp_path / "eval"
    run_workflow(root / "configs" / "evaluate.json", dataset_dir=str(acdc_retrained.raw), output_dir=str(out), **SMALL)
    splits = json.loads((root / "cache" / "splits.json").read_text())
    report = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert set(report) == {"iac", "baseline", "comparison"}
    for name in ("iac", "baseline"):
        with open(out / "evaluation" / name / "metrics_per_case.csv") as f:
            rows = list(csv.DictReader(f))
        assert sorted(r["case_id"] for r in rows) == sorted(splits["cases"]["test"])
        assert all(0.0 <= float(r[f"dice_{c}"]) <= 1.0 for r in rows for c in ("RV", "MYO", "LV"))
        summary = json.loads((out / "evaluation" / name / "metrics_summary.json").read_text())
        assert summary["num_cases"] == len(rows) and summary["fold"] == "test"
        assert summary["mean_dice"] == pytest.approx(report[name]["mean_dice"])


def _check_in_input_grid(src, pred, values):
    a, b = nib.load(src), nib.load(pred)
    assert b.shape == a.shape
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-4)
    labels = set(np.unique(np.asarray(b.dataobj)).tolist())
    assert labels <= values and len(labels) >= 1
    return np.asarray(b.dataobj)


def test_inference_one_non_ras_file(acdc_retrained, tmp_path):
    raw = acdc_retrained.raw
    src = raw / "training" / "patient004" / "patient004_frame01.nii.gz"  # patient 4 of 4 orientations: LAI
    assert nib.aff2axcodes(nib.load(src).affine) == ("L", "A", "I")
    run_workflow(
        acdc_retrained.root / "configs" / "inference.json", input=str(src), output_dir=str(tmp_path / "out"), **SMALL_INFER
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == [src.name]
    _check_in_input_grid(src, tmp_path / "out" / src.name, ACDC_VALUES)


def test_inference_folder_in_folder_out(acdc_retrained, tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    files = [acdc_retrained.raw / "training" / f"patient00{i}" / f"patient00{i}_frame01.nii.gz" for i in (1, 2, 3)]
    for f in files:  # RAS, LPS, RPS
        shutil.copy(f, inp)
    wf = run_workflow(
        acdc_retrained.root / "configs" / "inference.json", input=str(inp), output_dir=str(tmp_path / "out"), **SMALL_INFER
    )
    assert wf.parser.get_parsed_content("use_torchscript") is False  # model.pt is there: the eager model
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f.name for f in files)
    for f in files:
        _check_in_input_grid(f, tmp_path / "out" / f.name, ACDC_VALUES)


def test_compiled_inference_writes_the_eager_label_map(acdc_retrained, tmp_path):
    """``--compile true``: MONAI's evaluator runs the eager network under torch.compile (model.ts is TorchScript and
    is not compiled, even when ``--torchscript true`` asks for it) and writes the eager model's label map."""
    src = acdc_retrained.raw / "testing" / "patient102" / "patient102_frame01.nii.gz"
    config = acdc_retrained.root / "configs" / "inference.json"
    eager = run_workflow(config, input=str(src), output_dir=str(tmp_path / "eager"), **SMALL_INFER)
    assert eager.parser.get_parsed_content("evaluator").compile is False
    compiled = run_workflow(
        config, input=str(src), output_dir=str(tmp_path / "compiled"), compile="true", torchscript="true", **SMALL_INFER
    )
    assert compiled.parser.get_parsed_content("use_torchscript") is False
    evaluator = compiled.parser.get_parsed_content("evaluator")
    assert evaluator.compile is True and isinstance(evaluator.network, torch._dynamo.eval_frame.OptimizedModule)
    a = np.asarray(nib.load(tmp_path / "eager" / src.name).dataobj)
    b = np.asarray(nib.load(tmp_path / "compiled" / src.name).dataobj)
    assert a.shape == b.shape and set(np.unique(a).tolist()) <= ACDC_VALUES
    # the compiled kernels round differently: labels may differ only where two classes' scores (nearly) tie
    assert (a == b).mean() > 0.999, f"compiled and eager label maps agree on {(a == b).mean():.4%} of voxels"


def test_section_id_builds_without_training(acdc_trained, tmp_path):
    """The hazard the bundles avoid: ``run train`` on a zoo-style ``train`` section resolves the section (builds
    the trainer) and exits 0, having trained nothing. Our documented ids are expression lists (see
    ``test_collection.py``)."""
    wf = run_workflow(
        acdc_trained.root / "configs" / "train.json", run_id="train", dataset_dir=str(acdc_trained.raw),
        ckpt_dir=str(tmp_path / "models"), output_dir=str(tmp_path / "eval"), epochs=1, **SMALL,
    )  # fmt: skip
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 0 and trainer.state.iteration == 0
    assert not (tmp_path / "models" / "baseline.pt").exists()  # the saver was built (its folder made), never run


def test_brats_inference_multichannel_case_gets_brats_label_values(genotype_file, tmp_path):
    """A 4-channel case in nnU-Net naming in, BraTS label values (0, 1, 2, 4) out, in the input's grid (random
    weights: this checks the plumbing, not the segmentation)."""
    raw = synthesize("brats2021", tmp_path / "raw", patients=1, seed=0, size=24, slices=(6, 6), spacing=8.0, slice_spacing=8.0)
    case = raw / "BraTS2021_00000"
    inp = tmp_path / "in"
    inp.mkdir()
    for k, seq in enumerate(("t1", "t1ce", "t2", "flair")):
        shutil.copy(case / f"BraTS2021_00000_{seq}.nii.gz", inp / f"BraTS2021_00000_{k:04d}.nii.gz")
    root = copy_bundle("brats_iac", tmp_path)
    (root / "models").mkdir()
    shutil.copy(genotype_file, root / "models" / "genotype.json")
    sizes = {"spacing": [8.0, 8.0], "spatial_size": [32, 32]}
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.update({"bundle_root": str(root), "torchscript": False})
    torch.manual_seed(0)
    torch.save({"model": parser.get_parsed_content("network_def").state_dict()}, root / "models" / "model.pt")

    run_workflow(root / "configs" / "inference.json", input=str(inp), output_dir=str(tmp_path / "out"), device="cpu", **sizes)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["BraTS2021_00000.nii.gz"]
    pred = _check_in_input_grid(inp / "BraTS2021_00000_0000.nii.gz", tmp_path / "out" / "BraTS2021_00000.nii.gz", {0, 1, 2, 4})
    assert 4 in pred  # class 3 (ET) is written as BraTS's label 4


# ---------------------------------------------------------------------------------------------- custom
def test_custom_nnunet_layout_workflows(custom_pipeline, tmp_path):
    root, runs = custom_pipeline.root, custom_pipeline.runs
    manifest = json.loads((root / "cache" / "manifest.json").read_text())
    assert manifest["dataset"] == "nnunet" and manifest["channel_names"] == ["T2", "ADC"]
    assert runs["train"].parser.get_parsed_content("train#trainer").state.epoch == 1
    assert runs["search"].parser.get_parsed_content("train#trainer").state.epoch == 2
    assert runs["retrain"].parser.get_parsed_content("train#trainer").state.epoch == 1
    for f in ("baseline.pt", "genotype.json", "model.pt"):
        assert (root / "models" / f).is_file()
    assert len(json.loads((root / "eval" / "search_history.json").read_text())["epochs"]) == 2

    run_workflow(root / "configs" / "evaluate.json", dataset_dir=str(custom_pipeline.raw), **SMALL)
    report = json.loads((root / "eval" / "evaluation" / "evaluation.json").read_text())
    assert set(report) == {"iac", "baseline", "comparison"}
    for name in ("iac", "baseline"):
        assert (root / "eval" / "evaluation" / name / "metrics_per_case.csv").is_file()
        assert (root / "eval" / "evaluation" / name / "metrics_summary.json").is_file()


def test_custom_inference_multichannel_folder(custom_pipeline, tmp_path):
    """nnU-Net naming in, one label map per case out (2 channels, labels of dataset.json), in each input's grid."""
    root, raw = custom_pipeline.root, custom_pipeline.raw
    inp = tmp_path / "in"
    inp.mkdir()
    cases = ["case_0000", "case_0001"]  # RAS, LPS
    for c in cases:
        for k in (0, 1):
            shutil.copy(raw / "imagesTr" / f"{c}_{k:04d}.nii.gz", inp)
    wf = run_workflow(root / "configs" / "inference.json", input=str(inp), output_dir=str(tmp_path / "out"), device="cpu")
    assert wf.parser.get_parsed_content("in_channels") == 2 and wf.parser.get_parsed_content("out_channels") == 3
    values = set(json.loads((raw / "dataset.json").read_text())["labels"].values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{c}.nii.gz" for c in cases]
    for c in cases:
        _check_in_input_grid(inp / f"{c}_0000.nii.gz", tmp_path / "out" / f"{c}.nii.gz", values)


def test_custom_msd_layout_trains(msd_raw, tmp_path):
    root = copy_bundle("custom_iac", tmp_path)
    wf = run_workflow(root / "configs" / "train.json", dataset="msd", dataset_dir=str(msd_raw), epochs=1, **SMALL)
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 1
    assert (root / "models" / "baseline.pt").is_file()
    assert json.loads((root / "cache" / "manifest.json").read_text())["dataset"] == "msd"


@pytest.mark.parametrize("baseline", ["attention_unet", "unetplusplus"])
def test_comparison_baselines_merge_over_train_and_run_one_epoch(tmp_path, acdc_raw, baseline):
    """The paper's comparison U-Nets, merged over train.json as the README shows; one epoch, own checkpoint."""
    root = copy_bundle("acdc_iac", tmp_path)
    files = [str(root / "configs/train.json"), str(root / f"configs/baseline_{baseline}.json")]
    wf = run_workflow(files, dataset_dir=str(acdc_raw), epochs=1, **SMALL)
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 1 and trainer.state.iteration > 0
    net = wf.parser.get_parsed_content("network_def")
    assert type(net.network).__name__ in {"AttentionUnet", "DeepSupervisionStack"}
    assert (root / "models" / f"baseline_{baseline}.pt").is_file()
    assert not (root / "models" / "baseline.pt").exists()  # the IAC baseline is not overwritten


def test_export_after_a_training_with_another_ckpt_dir(acdc_retrained, tmp_path):
    """The export trap: ckpt_export used to get a None network whenever the bundle's own models/ had no model.pt."""
    from bundle_utils import monai_bundle

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for f in ("model.pt", "genotype.json"):
        shutil.copy(acdc_retrained.root / "models" / f, elsewhere / f)
    root = copy_bundle("acdc_iac", tmp_path)  # a clean bundle: models/ holds nothing
    # --meta_file follows from --bundle_root; the model goes beside its checkpoint, where inference with the same
    # --ckpt_dir reads it (--filepath and --ckpt_file would name the bundle's own models/)
    common = ["--bundle_root", root, "--config_file", root / "configs" / "inference.json", "--key_in_ckpt", "model",
              "--use_trace", "True", "--input_shape", "[1, 1, 48, 48, 4]", "--spacing", "[2.0, 2.0]",
              "--spatial_size", "[48, 48]", "--ckpt_file", elsewhere / "model.pt", "--filepath", elsewhere / "model.ts"]
    ok = monai_bundle("ckpt_export", "network_def", "--ckpt_dir", elsewhere, *common, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (elsewhere / "model.ts").stat().st_size > 0
    # without --ckpt_dir the genotype is looked for in the bundle's models/: one line that says so, no TypeError
    (elsewhere / "model.ts").unlink()
    bad = monai_bundle("ckpt_export", "network_def", *common, cwd=tmp_path)
    assert bad.returncode != 0 and "NoneType" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no genotype at") and "--ckpt_dir" in last


def test_verify_net_in_out_on_an_unsearched_bundle_says_what_to_run(tmp_path):
    from bundle_utils import monai_bundle

    root = copy_bundle("acdc_iac", tmp_path)
    proc = monai_bundle("verify_net_in_out", "network_def", "--bundle_root", root, "--meta_file",
                        root / "configs" / "metadata.json", "--config_file", root / "configs" / "inference.json",
                        cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"error: no genotype at {root / 'models' / 'genotype.json'}; run the search first "
                    "(configs/search.json), or pass --ckpt_dir where the search wrote genotype.json")


def test_one_source_for_the_cell_and_the_geometry(acdc_raw, tmp_path):
    """The baseline at a non-default geometry, a search at a non-default cell width; then retrain, evaluate, export
    and inference with neither given: the width comes from genotype.json, the geometry from the cache."""
    from monai.bundle import ckpt_export

    root = copy_bundle("acdc_iac", tmp_path)
    small = {k: v for k, v in SMALL.items() if k not in ("spacing", "spatial_size")}
    run_workflow(root / "configs" / "train.json", dataset_dir=str(acdc_raw), epochs=1, **SMALL)
    run_workflow(root / "configs" / "search.json", dataset_dir=str(acdc_raw), cell_channels=16, **small, **SEARCH_EPOCHS)
    from iac_components.genotype import genotype_cell_config

    assert genotype_cell_config(root / "models" / "genotype.json")["cell_channels"] == 16
    wf = run_workflow(root / "configs" / "retrain.json", dataset_dir=str(acdc_raw), epochs=1, **small)
    assert wf.parser.get_parsed_content("data").spacing == [2.0, 2.0]  # the baseline's, not the default 1.5 mm
    run_workflow(root / "configs" / "evaluate.json", dataset_dir=str(acdc_raw), **small)
    assert (root / "eval" / "evaluation" / "evaluation.json").is_file()
    ckpt_export("network_def", bundle_root=str(root), config_file=str(root / "configs" / "inference.json"),
                key_in_ckpt="model", use_trace=True, input_shape=[1, 1, 48, 48, 4],
                converter_kwargs={"check_trace": False})  # fmt: skip
    src = acdc_raw / "testing" / "patient102" / "patient102_frame01.nii.gz"
    wf = run_workflow(root / "configs" / "inference.json", input=str(src), output_dir=str(tmp_path / "out"),
                      device="cpu", torchscript="true")  # fmt: skip
    assert wf.parser.get_parsed_content("spacing") == [2.0, 2.0]
    assert nib.load(tmp_path / "out" / src.name).shape == nib.load(src).shape
