"""``iac bundles package``: the release asset's layout, index and large-file entry, on a bundle whose models/ holds a
stand-in model.ts (the download-and-infer test with a real export is in the slow tier's inference-only tests)."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import pytest
from bundle_utils import BUNDLES
from monai.bundle import ConfigParser

from iac_components.bundles.package import package_bundle


def _trained_copy(tmp_path, name="acdc_iac"):
    root = tmp_path / name
    shutil.copytree(BUNDLES / name, root)
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "model.ts").write_bytes(b"torchscript stand-in")
    (root / "models" / "model.pt").write_bytes(b"checkpoint")
    (root / "models" / "genotype.json").write_text("{}")
    (root / "cache").mkdir()
    manifest = {"format_version": 1, "modality": "MRI", "raw_dir": "/private/data", "cases": [{"case_id": "p1"}],
                "settings": {"spacing": [2.0, 2.0], "spatial_size": [64, 64]},
                "transforms": {"MRI": {"image": [{"_target_": "LoadImaged"}], "image_label": []}}}  # fmt: skip
    (root / "cache" / "manifest.json").write_text(json.dumps(manifest))
    (root / "eval").mkdir()
    return root


def test_package_writes_the_zip_the_index_and_the_large_file_entry(tmp_path):
    root = _trained_copy(tmp_path)
    r = package_bundle(root, tmp_path / "release", url="http://127.0.0.1:8765")
    version = json.loads((root / "configs" / "metadata.json").read_text())["version"]
    z = zipfile.ZipFile(r["zip"])
    names = set(z.namelist())
    assert r["zip"].endswith(f"acdc_iac_v{version}.zip")
    assert {"acdc_iac/configs/inference.json", "acdc_iac/models/model.ts", "acdc_iac/models/genotype.json",
            "acdc_iac/models/manifest.json", "acdc_iac/large_files.yml", "acdc_iac/LICENSE"} <= names  # fmt: skip
    assert not any(n.startswith(("acdc_iac/cache", "acdc_iac/eval")) or n.endswith("model.pt") for n in names)
    # the model's preprocessing travels with it, without the case list or local paths
    m = json.loads(z.read("acdc_iac/models/manifest.json"))
    assert m["settings"]["spacing"] == [2.0, 2.0] and "cases" not in m and "raw_dir" not in m
    assert set(m["transforms"]["MRI"]) == {"image"}
    meta = json.loads(z.read("acdc_iac/configs/metadata.json"))
    assert "iac_components" not in meta["required_packages_version"]
    assert {"pytorch-ignite", "nibabel", "fire"} <= set(meta["required_packages_version"])
    assert "iac_components" in meta["training_packages_version"] and "optional_packages_version" not in meta
    # what MONAI reads back is the inference list (it would rename an `optional_packages_version` onto it)
    (tmp_path / "meta.json").write_bytes(z.read("acdc_iac/configs/metadata.json"))
    parser = ConfigParser()
    parser.read_meta(str(tmp_path / "meta.json"))
    assert parser.get("_meta_#required_packages_version") == meta["required_packages_version"]
    ts_sha = hashlib.sha256(b"torchscript stand-in").hexdigest()
    large = z.read("acdc_iac/large_files.yml").decode()
    assert f"http://127.0.0.1:8765/acdc_iac_v{version}_model.ts" in large and ts_sha in large
    index = json.loads((tmp_path / "release" / "model_info.json").read_text())
    assert index[f"acdc_iac_v{version}"] == {"checksum": r["zip_sha256"],
                                              "source": f"http://127.0.0.1:8765/acdc_iac_v{version}.zip"}  # fmt: skip
    assert hashlib.sha256((tmp_path / "release" / f"acdc_iac_v{version}_model.ts").read_bytes()).hexdigest() == ts_sha


def test_package_ships_model_pt_only_when_asked(tmp_path):
    r = package_bundle(_trained_copy(tmp_path), tmp_path / "release", include_pt=True)
    assert "acdc_iac/models/model.pt" in zipfile.ZipFile(r["zip"]).namelist()


def test_package_errors_name_what_is_missing(tmp_path):
    root = _trained_copy(tmp_path)
    (root / "models" / "model.ts").unlink()
    with pytest.raises(FileNotFoundError, match=r"model.ts: no TorchScript to release; export it first"):
        package_bundle(root, tmp_path / "release")
    # a model whose preprocessing is nowhere (no manifest beside it, no record in model.pt, no cache) is refused:
    # its release would run at the dataset's default geometry, silently wrong (custom_iac and the others alike)
    for name in ("custom_iac", "acdc_iac"):
        folder = tmp_path / name / "x"
        folder.mkdir(parents=True)
        c = _trained_copy(folder, name)
        shutil.rmtree(c / "cache")
        with pytest.raises(FileNotFoundError, match=rf"{name}: cannot find the preprocessing the model was trained"):
            package_bundle(c, tmp_path / "release")
        assert not (tmp_path / "release").exists()


def test_package_takes_the_preprocessing_from_beside_the_model_or_from_its_checkpoint(tmp_path):
    """Models trained elsewhere (no cache beside the bundle): the manifest.json that train/retrain write into
    --ckpt_dir, else the record inside model.pt, is what the release carries."""
    import torch

    root = _trained_copy(tmp_path)
    shutil.rmtree(root / "cache")
    record = {"format": "iac-model/1", "preprocessing": {"settings": {"spacing": [3.0, 3.0], "spatial_size": [48, 48]}}}
    torch.save({"model": {}, "iac": record}, root / "models" / "model.pt")
    r = package_bundle(root, tmp_path / "release", ckpt_dir=root / "models")
    m = json.loads(zipfile.ZipFile(r["zip"]).read("acdc_iac/models/manifest.json"))
    assert m["settings"] == {"spacing": [3.0, 3.0], "spatial_size": [48, 48]}
    (root / "models" / "manifest.json").write_text(json.dumps({"settings": {"spacing": [2.5, 2.5], "spatial_size": [32, 32]}}))
    r = package_bundle(root, tmp_path / "release2")
    assert json.loads(zipfile.ZipFile(r["zip"]).read("acdc_iac/models/manifest.json"))["settings"]["spacing"] == [2.5, 2.5]


def test_a_program_older_than_the_checkpoint_is_not_shipped(tmp_path):
    import os

    root = _trained_copy(tmp_path)
    program = root / "models" / "model.pt2"
    program.write_bytes(b"program stand-in")
    old = (root / "models" / "model.pt").stat().st_mtime - 60
    os.utime(program, (old, old))
    with pytest.raises(ValueError, match="model.pt2 is older than .*model.pt: export it again"):
        package_bundle(root, tmp_path / "release")
    os.utime(program, None)
    assert "acdc_iac/models/model.pt2" in zipfile.ZipFile(package_bundle(root, tmp_path / "r2")["zip"]).namelist()
