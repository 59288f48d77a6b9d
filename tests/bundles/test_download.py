"""A release as a model-zoo user meets it: ``iac bundles package`` writes the zip, ``python -m http.server`` serves it
on 127.0.0.1, ``python -m monai.bundle download --url`` fetches it, and ``inference.json`` runs from the downloaded
folder, with no override, in a process where ``iac_components`` cannot be imported: the same labels as the eager
model of the bundle it was packaged from. ``download_large_files`` fetches model.ts again by its large_files.yml
entry and checks its sha256. custom_iac's release carries its channels, classes and normalisation."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import NO_IAC_IMPORTS, RUN_MONAI_BUNDLE, SMALL_INFER, run_blocked, run_workflow
from launch_utils import free_port

from iac_components.bundles.package import package_bundle
from iac_components.bundles.runtime import export_torchscript

pytestmark = pytest.mark.slow


@contextmanager
def http_server(directory: Path, timeout: float = 30.0):
    """``python -m http.server --bind 127.0.0.1`` on a free port, serving ``directory``; yields its base URL and is
    stopped by its PID (terminate, then kill) however the test ends."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"http.server on {base} did not start: {proc.stderr.read()[-2000:]}") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_download_from_a_local_release_and_infer_without_iac_components(acdc_retrained, acdc_exported, tmp_path):
    release, dl = tmp_path / "release", tmp_path / "downloaded"
    release.mkdir()
    with http_server(release) as base:
        r = package_bundle(
            acdc_retrained.root, release, ckpt_dir=acdc_exported, cache_dir=acdc_retrained.root / "cache", url=base
        )
        index = json.loads(Path(r["model_info"]).read_text())
        (entry,) = index.values()
        assert entry["source"] == f"{base}/{Path(r['zip']).name}"
        proc = run_blocked(
            RUN_MONAI_BUNDLE, "download", "--name", "acdc_iac", "--version", r["version"], "--url", entry["source"],
            "--bundle_dir", str(dl), cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        bundle = dl / "acdc_iac"
        assert sorted(p.name for p in (bundle / "models").iterdir()) == ["genotype.json", "manifest.json", "model.ts"]
        assert hashlib.sha256((bundle / "models" / "model.ts").read_bytes()).hexdigest() == r["model_ts_sha256"]

        # the large-file entry: model.ts fetched again from the server, checked against its sha256
        (bundle / "models" / "model.ts").unlink()
        proc = run_blocked(RUN_MONAI_BUNDLE, "download_large_files", "--bundle_path", str(bundle), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert hashlib.sha256((bundle / "models" / "model.ts").read_bytes()).hexdigest() == r["model_ts_sha256"]

    # inference typed from inside the downloaded folder; its spacing and slice size come from models/manifest.json
    src = acdc_retrained.raw / "testing" / "patient102" / "patient102_frame01.nii.gz"
    infer_without_iac_components(bundle, src, tmp_path / "out")
    out = nib.load(tmp_path / "out" / src.name)
    a = nib.load(src)
    assert out.shape == a.shape
    np.testing.assert_allclose(out.affine, a.affine, atol=1e-4)

    run_workflow(
        acdc_retrained.root / "configs" / "inference.json",
        input=str(src),
        output_dir=str(tmp_path / "eager"),
        **SMALL_INFER,
    )
    eager = np.asarray(nib.load(tmp_path / "eager" / src.name).dataobj)
    np.testing.assert_array_equal(np.asarray(out.dataobj), eager)


def test_custom_release_infers_without_the_cache(custom_pipeline, tmp_path):
    """custom_iac's channels, classes and normalisation travel in the release (models/manifest.json): its inference
    runs from the unpacked zip, with no prepared cache and no iac_components, and matches the trained bundle's."""
    root, raw = custom_pipeline.root, custom_pipeline.raw
    export_torchscript(str(root), str(root / "models"), [1, 2, 48, 48, 16])
    r = package_bundle(root, tmp_path / "release")
    with zipfile.ZipFile(r["zip"]) as z:
        z.extractall(tmp_path / "unpacked")
    bundle = tmp_path / "unpacked" / "custom_iac"
    assert not (bundle / "cache").exists() and not (bundle / "models" / "model.pt").exists()
    inp = tmp_path / "in"
    inp.mkdir()
    for k in (0, 1):
        shutil.copy(raw / "imagesTr" / f"case_0001_{k:04d}.nii.gz", inp)
    infer_without_iac_components(bundle, inp, tmp_path / "out")
    run_workflow(root / "configs" / "inference.json", input=str(inp), output_dir=str(tmp_path / "eager"), device="cpu")
    released = np.asarray(nib.load(tmp_path / "out" / "case_0001.nii.gz").dataobj)
    np.testing.assert_array_equal(released, np.asarray(nib.load(tmp_path / "eager" / "case_0001.nii.gz").dataobj))
    values = set(json.loads((raw / "dataset.json").read_text())["labels"].values())
    assert set(np.unique(released).tolist()) <= values

    # fine-tuning the release as MONAI Label's trainer does: no dataset.json, the conventions of models/manifest.json
    cases = [f"case_{i:04d}" for i in range(4)]
    datalist = [{"image": [str(raw / "imagesTr" / f"{c}_{k:04d}.nii.gz") for k in (0, 1)],
                 "label": str(raw / "labelsTr" / f"{c}.nii.gz")} for c in cases]  # fmt: skip
    ts_before = (bundle / "models" / "model.ts").read_bytes()
    wf = run_workflow(
        bundle / "configs" / "finetune.json",
        dataset_dir=str(tmp_path / "no_dataset_json"), **{"train#dataset#data": datalist[:3],
        "validate#dataset#data": datalist[3:], "train#trainer#max_epochs": 1}, num_workers=0, batch_size=4,
        device="cpu", amp=False,
    )  # fmt: skip
    manifest = wf.parser.get_parsed_content("data").manifest
    assert manifest["channel_names"] == released_manifest(bundle)["channel_names"]
    assert manifest["settings"]["spacing"] == released_manifest(bundle)["settings"]["spacing"]
    assert (bundle / "models" / "model.pt").is_file() and (bundle / "models" / "model.ts").read_bytes() != ts_before


def infer_without_iac_components(bundle, src, out_dir):
    """inference.json typed from inside an unpacked release, with iac_components blocked from import."""
    proc = run_blocked(
        RUN_MONAI_BUNDLE, "run", "--config_file", "configs/inference.json", "--input", str(src),
        "--output_dir", str(out_dir), cwd=bundle,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] in NO_IAC_IMPORTS


def released_manifest(bundle):
    return json.loads((bundle / "models" / "manifest.json").read_text())


def test_finetune_starts_from_the_released_torchscript(acdc_retrained, acdc_exported):
    """finetune.json's starting point in a release without model.pt: the weights of model.ts are the retrained
    model.pt's, key for key (the slice-wise wrapper's ``network.`` prefix removed)."""
    from iac_components.bundles.runtime import fixed_network
    from iac_components.implant import load_network_weights

    spec = {"name": "unet", "in_channels": 1, "out_channels": 4}
    genotype = str(acdc_exported / "genotype.json")
    from_ts = fixed_network(spec, genotype, init_checkpoint=str(acdc_exported / "model.ts")).state_dict()
    from_pt = load_network_weights(
        fixed_network(spec, genotype), acdc_retrained.root / "models" / "model.pt"
    ).state_dict()
    assert from_ts.keys() == from_pt.keys()
    for k in from_pt:
        assert torch.equal(from_ts[k], from_pt[k]), k
