"""Shared fixtures: tiny synthetic datasets (written once per session) and single-threaded torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from iac_components.data.synth import synthesize

# small enough for a fast suite, large enough to hold every class
TINY = {
    "acdc": dict(size=40, slices=(4, 5), frames=4),
    "brats2021": dict(size=24, slices=(14, 16), spacing=8.0, slice_spacing=8.0),
    "brats2023": dict(size=24, slices=(14, 16), spacing=8.0, slice_spacing=8.0),
    "kits19": dict(size=32, slices=(8, 10), spacing=(9.6, 10.8)),
    "kits21": dict(size=32, slices=(8, 10), spacing=(9.6, 10.8)),
    "kits23": dict(size=32, slices=(8, 10), spacing=(9.6, 10.8)),
    "amos": dict(size=32, slices=(10, 12), spacing=(10.4, 11.6), slice_spacing=20.0),
    "msd": dict(size=32, slices=(5, 6), spacing=(3.6, 4.4), slice_spacing=8.0),
    "nnunet": dict(size=32, slices=(5, 6), spacing=(3.6, 4.4), slice_spacing=8.0),
}
# prepare settings whose spacing is not coarser than any TINY file's (exact round trip) and whose slice
# size holds the whole field of view
TINY_PREP = {
    "acdc": dict(spacing=(1.75, 1.75), spatial_size=(64, 64)),
    "brats2021": dict(spacing=(8.0, 8.0), spatial_size=(32, 32)),
    "brats2023": dict(spacing=(8.0, 8.0), spatial_size=(32, 32)),
    "kits19": dict(spacing=(9.6, 9.6), spatial_size=(48, 48)),
    "kits21": dict(spacing=(9.6, 9.6), spatial_size=(48, 48)),
    "kits23": dict(spacing=(9.6, 9.6), spatial_size=(48, 48)),
    "amos": dict(spacing=(10.4, 10.4), spatial_size=(48, 48)),
    "msd": dict(spacing=(3.6, 3.6), spatial_size=(48, 48)),
    "nnunet": dict(spacing=(3.6, 3.6), spatial_size=(48, 48)),
}



@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """``synth_root(name, patients=4, seed=0, **kw)`` -> a read-only synthetic raw dataset (cached per session)."""
    made: dict[str, Path] = {}

    def make(name: str, patients: int = 4, seed: int = 0, **kw) -> Path:
        key = json.dumps([name, patients, seed, kw], sort_keys=True)
        if key not in made:
            out = tmp_path_factory.mktemp(f"raw_{name}")
            made[key] = Path(synthesize(name, out, patients=patients, seed=seed, **{**TINY[name], **kw}))
        return made[key]

    return make


@pytest.fixture
def raw_copy(synth_root, tmp_path):
    """``raw_copy(name, ...)`` -> a private, writable copy of a synthetic dataset (for corrupting files)."""

    def make(name: str, patients: int = 4, **kw) -> Path:
        src = synth_root(name, patients=patients, **kw)
        dst = tmp_path / f"raw_{name}"
        shutil.copytree(src, dst)
        return dst

    return make


@pytest.fixture(scope="session")
def prepared(synth_root, tmp_path_factory):
    """``prepared(name, patients=4)`` -> manifest path of a prepared tiny dataset (cached per session)."""
    from iac_components.data.prepare import prepare_dataset

    made: dict[str, Path] = {}

    def make(name: str, patients: int = 4) -> Path:
        key = f"{name}-{patients}"
        if key not in made:
            cache = tmp_path_factory.mktemp(f"cache_{name}")
            made[key] = prepare_dataset(name, synth_root(name, patients), cache, progress=False, **TINY_PREP[name])
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_prep():
    """Prepare settings per dataset for the TINY synthetic data (exact round trip)."""
    return TINY_PREP
