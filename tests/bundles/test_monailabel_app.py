"""``iac monailabel app``: the app folder it writes and its one-line errors (the real server is in
test_monailabel_server.py)."""

from __future__ import annotations

import ast
import json
import zipfile

import pytest
from test_package import _trained_copy

from iac_components.bundles.runtime import deployed_geometry, deployed_model
from iac_components.monailabel import write_app


def test_app_from_a_bundle_folder_and_from_a_release_zip(tmp_path):
    written = write_app(tmp_path / "app", [str(_trained_copy(tmp_path))])
    bundle = tmp_path / "app" / "model" / "acdc_iac"
    assert written == {"acdc_iac": str(bundle)}
    # what a downloaded release holds: TorchScript, provenance, the preprocessing; no checkpoint, cache or outputs
    assert sorted(p.name for p in (bundle / "models").iterdir()) == ["genotype.json", "manifest.json", "model.ts"]
    assert (bundle / "configs" / "finetune.json").is_file() and not (bundle / "cache").exists()
    main = (tmp_path / "app" / "main.py").read_text()
    classes = {n.name for n in ast.parse(main).body if isinstance(n, ast.ClassDef)}
    assert {"IACApp", "IACInferTask", "IACFinetuneTask"} <= classes
    assert "iac_components" not in main.split('"""', 2)[2]  # the app itself never imports this package

    # a release zip of another version replaces the bundle of the same name
    zpath = tmp_path / "acdc_iac_v9.9.9.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in bundle.rglob("*"):
            if f.is_file():
                z.write(f, f.relative_to(bundle.parent).as_posix())
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    (bundle / "configs" / "metadata.json").write_text(json.dumps({**meta, "version": "stale"}))
    write_app(tmp_path / "app", str(zpath))
    assert json.loads((bundle / "configs" / "metadata.json").read_text())["version"] == meta["version"]


def test_app_errors_name_the_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope: neither a release zip nor a bundle folder"):
        write_app(tmp_path / "app", [str(tmp_path / "nope")])
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad.zip: not a readable release zip"):
        write_app(tmp_path / "app", [str(bad)])
    no_ts = tmp_path / "no_ts.zip"
    with zipfile.ZipFile(no_ts, "w") as z:
        z.writestr("acdc_iac/configs/metadata.json", "{}")
    with pytest.raises(ValueError, match=r"no acdc_iac/models/model.ts; the app serves TorchScript"):
        write_app(tmp_path / "app", [str(no_ts)])
    with pytest.raises(ValueError, match=r"no bundle given"):
        write_app(tmp_path / "app", "")


def test_finetune_starting_point_and_geometry(tmp_path):
    with pytest.raises(SystemExit, match=r"no model to fine-tune in .* \(model.pt or model.ts\)"):
        deployed_model(str(tmp_path))
    (tmp_path / "model.ts").write_bytes(b"ts")
    assert deployed_model(str(tmp_path)).endswith("model.ts")
    (tmp_path / "model.pt").write_bytes(b"pt")
    assert deployed_model(str(tmp_path)).endswith("model.pt")  # the checkpoint when there is one
    # the release's manifest (what the model was trained at) before the cache, the dataset's defaults when neither
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "manifest.json").write_text(json.dumps({"settings": {"spacing": [1.0, 1.0], "spatial_size": [64, 64]}}))
    assert deployed_geometry(str(tmp_path), str(cache)) == {"spacing": [1.0, 1.0], "spatial_size": [64, 64]}
    (tmp_path / "manifest.json").write_text(json.dumps({"settings": {"spacing": [2.0, 2.0], "spatial_size": [48, 48]}}))
    assert deployed_geometry(str(tmp_path), str(cache)) == {"spacing": [2.0, 2.0], "spatial_size": [48, 48]}
    assert deployed_geometry(str(tmp_path / "x"), str(tmp_path / "y")) == {}
