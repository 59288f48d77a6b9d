"""``iac monailabel app``: a MONAI Label app folder that serves the collection's bundles.

It writes ``<out>/main.py`` (the app: TorchScript inference and fine-tuning for every bundle under ``model/``; see
``app_template/main.py``) and, for each ``--bundle``, ``<out>/model/<name>/``: the bundle as its release asset holds
it (configs, docs, LICENSE, models/model.ts, genotype.json, manifest.json). A bundle is given as a release zip
(``<name>_v<version>.zip``, as ``iac bundles package`` writes and ``monai.bundle download`` fetches) or as a trained
bundle folder, which is packaged first, so the server sees exactly what a user who downloads the release sees.

MONAI Label 0.8.5 runs in its own virtualenv (it pins numpy 1.26); the app needs nothing from this package for
inference, and ``iac_components`` importable there for training (``pip install --no-deps`` of this package).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

__all__ = ["write_app"]


def _extract_release(zip_path: Path, model_dir: Path) -> str:
    try:
        z = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{zip_path}: not a readable release zip ({e}); package it again (iac bundles package)"
        ) from None
    with z:
        roots = {n.split("/", 1)[0] for n in z.namelist() if n.strip("/")}
        if len(roots) != 1 or f"{next(iter(roots))}/configs/metadata.json" not in z.namelist():
            raise ValueError(
                f"{zip_path}: a release zip holds one bundle folder with configs/metadata.json at its root"
            )
        (name,) = roots
        if f"{name}/models/model.ts" not in z.namelist():
            raise ValueError(f"{zip_path}: no {name}/models/model.ts; the app serves TorchScript (iac bundles package)")
        target = model_dir / name
        with tempfile.TemporaryDirectory(dir=model_dir) as tmp:
            z.extractall(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(Path(tmp) / name, target)
    return name


def write_app(out: str | os.PathLike, bundles: list[str] | str, cache_dir: str | None = None) -> dict[str, str]:
    """Write the app under ``out`` with ``bundles`` (release zips or trained bundle folders); returns
    ``{bundle name: its folder in the app}``. An existing app keeps its other bundles; a bundle of the same name
    is replaced."""
    from iac_components.bundles.package import package_bundle

    items = [b for b in (bundles.split(",") if isinstance(bundles, str) else bundles) if str(b).strip()]
    if not items:
        raise ValueError("no bundle given: --bundle <bundle folder or release zip>[,<another>]")
    out = Path(out)
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    template = resources.files("iac_components.monailabel").joinpath("app_template", "main.py").read_text()
    part = out / "main.py.part"
    part.write_text(template)
    os.replace(part, out / "main.py")
    written = {}
    for item in map(Path, items):
        if item.is_file() and item.suffix == ".zip":
            name = _extract_release(item, model_dir)
        elif item.is_dir():
            with tempfile.TemporaryDirectory() as tmp:
                name = _extract_release(Path(package_bundle(item, tmp, cache_dir=cache_dir)["zip"]), model_dir)
        else:
            raise FileNotFoundError(f"{item}: neither a release zip nor a bundle folder")
        written[name] = str(model_dir / name)
    return written
