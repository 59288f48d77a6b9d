"""``iac bundles package``: a trained bundle as the release asset the model zoo's tools download.

It writes, under ``out``:

* ``<name>_v<version>.zip``: the bundle folder at the zip's root (``configs/``, ``docs/``, ``LICENSE``,
  ``large_files.yml``, ``models/model.ts``, ``models/genotype.json`` for provenance, ``models/manifest.json``;
  ``models/model.pt`` only when asked). No cache, no evaluation outputs, no data. This is what
  ``python -m monai.bundle download --url <zip url>`` and ``--source github --repo OWNER/REPO/TAG`` fetch.
* ``<name>_v<version>_model.ts``: the TorchScript on its own, the file ``large_files.yml`` points at
  (``python -m monai.bundle download_large_files --bundle_path <bundle>`` fetches it and checks its sha256).
* ``model_info.json``: the index ``monai.bundle download --source github`` reads when no ``--version`` is given
  (``{"<name>_v<version>": {"checksum": <sha256 of the zip>, "source": <zip url>}}``), merged with what is there.

What the model needs at inference travels with it: ``models/manifest.json`` holds the preprocessing the model was
trained with (spacing, slice size, channels, classes, label values, the normalisation chain; no case list and no
local paths), read by ``inference.json`` when there is no prepared cache; the packaged ``metadata.json`` says that
model.ts needs torch, MONAI, pytorch-ignite, nibabel and fire, and that ``iac_components`` (and torchvision) are
needed only for model.pt and training.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from iac_components.utils import write_json_atomic

__all__ = ["RELEASE_MANIFEST_KEYS", "TRAINING_PACKAGES_KEY", "package_bundle"]

#: what inference needs of the prepared cache's manifest (no case list, no raw paths)
RELEASE_MANIFEST_KEYS = ("format_version", "dataset", "modality", "channel_names", "class_names", "label_values",
                         "settings", "settings_hash", "transforms", "postprocessing")  # fmt: skip
#: what ``model.ts`` needs besides torch and MONAI: the bundle command line (fire), the evaluator (ignite), NIfTI
INFERENCE_PACKAGES = ("pytorch-ignite", "nibabel", "fire")
#: where a release's metadata lists what only training and model.pt need (iac_components, torchvision)
TRAINING_PACKAGES_KEY = "training_packages_version"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _bundle_folder(bundle: str | os.PathLike) -> Path:
    path = Path(bundle)
    if (path / "configs" / "metadata.json").is_file():
        return path
    from iac_components.bundles.run import find_bundle

    found = find_bundle(str(bundle)) if "/" not in str(bundle) else path
    if not (found / "configs" / "metadata.json").is_file():
        raise FileNotFoundError(f"{bundle}: not a bundle folder (no configs/metadata.json) nor a bundle of the collection")
    return found


def _release_manifest(bundle: Path, cache_dir: Path, models: Path) -> dict[str, Any]:
    """The preprocessing the model was trained with: the manifest.json that train/retrain write beside the weights,
    else the record inside model.pt, else the prepared cache's. A model whose preprocessing cannot be found is not
    packaged: its release would segment at the dataset's default geometry, silently wrong."""
    from iac_components.bundles.model_record import model_record, release_preprocessing

    found = [models / "manifest.json", cache_dir / "manifest.json", cache_dir / "datalist" / "manifest.json"]
    for f in found[:1]:
        if f.is_file():
            return _read_manifest(f)
    record = model_record(str(models / "model.pt")).get("preprocessing")
    if record:
        return dict(record)
    for f in found[1:]:
        if f.is_file():
            return release_preprocessing(_read_manifest(f))
    raise FileNotFoundError(
        f"{bundle.name}: cannot find the preprocessing the model was trained with (no {models}/manifest.json, no "
        f"record in {models}/model.pt, no prepared cache under {cache_dir}); package the folder the model was "
        "trained in (--ckpt_dir), or pass --cache_dir with its cache"
    )


def _read_manifest(f: Path) -> dict[str, Any]:
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON ({e.msg}); prepare the cache again") from None


def _release_metadata(meta: dict[str, Any], include_pt: bool) -> dict[str, Any]:
    # The packages only training and model.pt need go under a key of their own: MONAI >= 1.5 renames
    # `optional_packages_version` to `required_packages_version` on load, replacing the inference list.
    required = dict(meta.get("required_packages_version", {}))
    training = dict(meta.get(TRAINING_PACKAGES_KEY, {}))
    for name in ("iac_components", "torchvision"):
        if name in required:
            training[name] = required.pop(name)
    missing = [k for k in INFERENCE_PACKAGES if k not in required]
    if missing:
        raise ValueError(f"metadata.json's required_packages_version lacks {missing}: model.ts needs them at inference")
    out = {k: v for k, v in meta.items() if k != "optional_packages_version"}
    out.update({"required_packages_version": required, TRAINING_PACKAGES_KEY: training})
    out["description"] = (
        meta.get("description", "").rstrip()
        + " This release runs models/model.ts with torch, MONAI, pytorch-ignite, nibabel and fire; iac_components"
        " (and torchvision) only for " + ("models/model.pt and " if include_pt else "") + "training."
    )
    return out


def package_bundle(
    bundle: str | os.PathLike,
    out: str | os.PathLike = "release",
    ckpt_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    url: str | None = None,
    include_pt: bool = False,
) -> dict[str, Any]:
    """Write the release asset of ``bundle`` (see the module docstring); returns the paths and checksums.

    Args:
        bundle: a bundle folder, or the name of a bundle of the collection (its repository folder).
        out: where the zip, the standalone model.ts and model_info.json go.
        ckpt_dir: the folder with model.ts (and genotype.json, model.pt), the bundles' ``--ckpt_dir``; default
            ``<bundle>/models``.
        cache_dir: the prepared cache the model was trained on; default ``<bundle>/cache``.
        url: where ``out``'s files will be served from (the zip's and model.ts' URLs are ``<url>/<file>``); default
            a ``file://`` URL of ``out``.
        include_pt: also ship ``models/model.pt`` (then iac_components is needed to use it).
    """
    root = _bundle_folder(bundle)
    meta_file = root / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    name = root.name
    version = str(meta["version"])
    models = Path(ckpt_dir) if ckpt_dir else root / "models"
    ts = _check_models(root, models, include_pt)
    manifest = _release_manifest(root, Path(cache_dir) if cache_dir else root / "cache", models)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = (url or out.as_uri()).rstrip("/")
    stem = f"{name}_v{version}"
    ts_asset, zip_path = out / f"{stem}_model.ts", out / f"{stem}.zip"
    ts_sha = _sha256(ts)
    _write_release(root, models, ts, manifest, meta, include_pt, out, zip_path, ts_asset, f"{base}/{ts_asset.name}", ts_sha)
    zip_sha = _sha256(zip_path)
    index_file = _add_to_index(out / "model_info.json", stem, zip_sha, f"{base}/{zip_path.name}")
    return {"zip": str(zip_path), "zip_sha256": zip_sha, "model_ts": str(ts_asset), "model_ts_sha256": ts_sha,
            "model_info": str(index_file), "version": version, "manifest": manifest is not None}  # fmt: skip


def _check_models(root: Path, models: Path, include_pt: bool) -> Path:
    """model.ts must be there (the release is TorchScript); an exported program older than model.pt, or a missing
    model.pt that --include_pt asks for, is refused in one line. Returns model.ts."""
    ts = models / "model.ts"
    if not ts.is_file():
        raise FileNotFoundError(
            f"{ts}: no TorchScript to release; export it first (python -m monai.bundle ckpt_export network_def "
            f"--config_file {root}/configs/inference.json --bundle_root {root} --key_in_ckpt model --use_trace True ...)"
        )
    pt = models / "model.pt"
    program = models / "model.pt2"
    if program.is_file() and pt.is_file() and program.stat().st_mtime < pt.stat().st_mtime:
        raise ValueError(f"{program} is older than {pt}: export it again (iac bundles export_program) or remove it, "
                         "so that the release does not ship a program of an earlier model")
    if include_pt and not pt.is_file():
        raise FileNotFoundError(f"{pt}: --include_pt asks for model.pt, and there is none")
    return ts


def _write_release(root: Path, models: Path, ts: Path, manifest: dict[str, Any] | None, meta: dict[str, Any],
                   include_pt: bool, out: Path, zip_path: Path, ts_asset: Path, ts_url: str, ts_sha: str) -> None:  # fmt: skip
    """The bundle's zip (configs, docs, licence, models, the model's manifest, large_files.yml pointing at model.ts)
    and model.ts beside it, each written atomically."""
    name = root.name
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        stage = Path(tmp) / name
        shutil.copytree(root / "configs", stage / "configs")
        for extra in ("docs", "LICENSE"):
            src = root / extra
            if src.is_dir():
                shutil.copytree(src, stage / extra)
            elif src.is_file():
                shutil.copy2(src, stage / extra)
        (stage / "models").mkdir()
        shutil.copy2(ts, stage / "models" / "model.ts")
        for f in ("genotype.json", "model.pt2") + (("model.pt",) if include_pt else ()):
            if (models / f).is_file():
                shutil.copy2(models / f, stage / "models" / f)
        if manifest is not None:
            write_json_atomic(stage / "models" / "manifest.json", manifest, indent=1)
        write_json_atomic(stage / "configs" / "metadata.json", _release_metadata(meta, include_pt), indent=4)
        (stage / "large_files.yml").write_text(
            "large_files:\n"
            f"  - path: \"models/model.ts\"\n    url: \"{ts_url}\"\n"
            f"    hash_val: \"{ts_sha}\"\n    hash_type: \"sha256\"\n"
        )
        part = Path(tmp) / zip_path.name
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(stage.rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(stage.parent).as_posix())
        os.replace(part, zip_path)  # atomic: a reader never sees half a zip
        shutil.copy2(ts, Path(tmp) / ts_asset.name)
        os.replace(Path(tmp) / ts_asset.name, ts_asset)


def _add_to_index(index_file: Path, stem: str, zip_sha: str, source: str) -> Path:
    """Add the release to ``model_info.json`` (what ``monai.bundle download`` reads), keeping the others."""
    try:
        index = json.loads(index_file.read_text()) if index_file.is_file() else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"{index_file}: not valid JSON ({e.msg}); remove it or fix it") from None
    index[stem] = {"checksum": zip_sha, "source": source}
    write_json_atomic(index_file, index, indent=4)
    return index_file
