"""Helpers of the bundle tests: paths, the overrides that fit tiny synthetic data, and running workflows the way
users do (``python -m monai.bundle ...`` in a subprocess) or in-process (:class:`monai.bundle.ConfigWorkflow`).

Every subprocess gets ``OMP_NUM_THREADS=1``: tiny tensors on a shared 2-core machine are much slower with more
threads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigWorkflow

from iac_components.bundles.overlays import chain_files
from iac_components.genotype import Genotype

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"
SCHEMA = REPO / "iac_components" / "bundles" / "schema" / "meta_schema.json"

#: command-line overrides that fit the tiny synthetic data on a CPU (as strings, the way a user types them)
SMALL_ARGS = [
    "--spacing", "[2.0, 2.0]", "--spatial_size", "[48, 48]", "--num_workers", "0", "--batch_size", "4",
    "--device", "cpu", "--amp", "false",
]  # fmt: skip
#: the same overrides for in-process runs
SMALL = {"spacing": [2.0, 2.0], "spatial_size": [48, 48], "num_workers": 0, "batch_size": 4, "device": "cpu", "amp": False}
#: inference needs only the preprocessing sizes
SMALL_INFER = {"spacing": [2.0, 2.0], "spatial_size": [48, 48], "device": "cpu"}
SEARCH_EPOCHS = {"epochs": 2, "warmup_steps": 2}

#: a genotype that uses every default op once
GENOTYPE = Genotype(
    (
        ((0, "conv_3x3"), (1, "skip_connect")),
        ((0, "sep_conv_3x3"), (2, "avg_pool_3x3")),
        ((1, "dil_conv_3x3"), (3, "max_pool_3x3")),
        ((2, "sep_conv_5x5"), (4, "dil_conv_5x5")),
    )
)


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **extra}


def monai_bundle(*args: str, cwd: Path | str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m monai.bundle <args>`` as a user types it, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *map(str, args)],
        cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def check_ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def run_workflow(config_file: Path | str | list[str], run_id: str = "run", **override: Any) -> ConfigWorkflow:
    """Run a workflow in-process as ``monai.bundle run`` does (initialize, run, finalize); returns the workflow so
    that a test can read its components (``wf.parser.get_parsed_content("train#trainer").state``).

    ``bundle_root`` defaults to the bundle of the (first) config file, as a user passes ``--bundle_root``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # also in session fixtures, which run before the per-test single-thread fixture
    try:
        # one file: with the files it is merged over (configs/search.json -> train.json, search.json)
        files = [str(f) for f in (config_file if isinstance(config_file, list) else chain_files(config_file))]
        files = files if len(files) > 1 else files[0]
        override.setdefault("bundle_root", str(bundle_of(files[0] if isinstance(files, list) else files)))
        wf = ConfigWorkflow(config_file=files, workflow_type=None, logging_file=False, run_id=run_id, **override)
        wf.initialize()
        wf.run()
        wf.finalize()
    finally:
        torch.set_num_threads(threads)
    return wf


def bundle_of(config_file: Path | str) -> Path:
    """The bundle folder of a config file (the folder above ``configs/``)."""
    return Path(config_file).resolve().parent.parent


def copy_bundle(name: str, dst_parent: Path) -> Path:
    """A private copy of ``bundles/<name>`` (its configs, docs and LICENSE) under ``dst_parent``."""
    dst = dst_parent / name
    shutil.copytree(BUNDLES / name, dst, ignore=shutil.ignore_patterns("models", "cache", "eval"))
    return dst


# a meta-path finder ahead of the editable install's: any import of iac_components fails, and is recorded
BLOCK_IAC = textwrap.dedent(
    """
    import atexit, sys
    class BlockIAC:
        attempts = []
        def find_spec(self, name, path=None, target=None):
            if name == "iac_components" or name.startswith("iac_components."):
                self.attempts.append(name)
                raise ImportError(f"iac_components is blocked in this test ({name})")
            return None
    sys.meta_path.insert(0, BlockIAC())
    atexit.register(lambda: print(f"blocked imports: {BlockIAC.attempts}", file=sys.stderr))
    """
)
#: what a run that needs no iac_components reports: no attempt, or only the optional probe with which
#: inference.json's override check looks for the library (monai.utils.optional_import; it runs on when it is absent)
NO_IAC_IMPORTS = ("blocked imports: []", "blocked imports: ['iac_components']")
RUN_MONAI_BUNDLE = BLOCK_IAC + "import runpy\nsys.argv[0] = 'monai.bundle'\nrunpy.run_module('monai.bundle', run_name='__main__')\n"


def run_blocked(code: str, *args: str, cwd) -> subprocess.CompletedProcess:
    """``python -c code args`` in ``cwd`` (with :data:`BLOCK_IAC` in effect when ``code`` starts with it)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )



def representative_bundles() -> list[str]:
    """The bundles whose networks the slow tier builds, exports and checks: a bundle's config is its dataset row
    times its backbone row, and a network differs across datasets only in channels, classes and (nnU-Net's
    DynUNet) the topology the dataset's spacing and shape give. So: every backbone on a 1-channel dataset (ACDC)
    and on a 4-channel one (BraTS), every dataset's base U-Net and nnU-Net DynUNet, and custom_iac; the other
    bundles (a large torchvision encoder on KiTS or AMOS) repeat those networks with other class counts. The fast
    tier's ``iac bundles check`` still compares all of them with the generator."""
    from iac_components.bundles.table import all_bundles

    return [s.name for s in all_bundles()
            if s.dataset.key in ("acdc", "brats", "custom") or s.backbone.key in ("", "nnunet")]  # fmt: skip
