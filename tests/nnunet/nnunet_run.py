"""nnU-Net's entry points as real processes for the tests: the environment nnU-Net reads (its folders, our
trainers through ``nnUNet_extTrainer``, one worker each) and a run bounded in time, killed with its process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
TEST_TRAINERS = Path(__file__).parent / "trainers"
DATASET = "Dataset001_Synthetic"


def nnunet_env(root: Path) -> dict[str, str]:
    from iac_components.nnunet import trainers_dir

    return {
        **os.environ,
        "nnUNet_raw": str(root / "nnUNet_raw"), "nnUNet_preprocessed": str(root / "nnUNet_preprocessed"),
        "nnUNet_results": str(root / "nnUNet_results"),
        "nnUNet_extTrainer": os.pathsep.join([trainers_dir(), str(TEST_TRAINERS)]),
        # augmentation in the training process, one export worker: nnU-Net's defaults spawn 8+ processes
        "nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "nnUNet_compile": "false",
        "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
    }  # fmt: skip


def run_nnunet(root: Path, *args: str, timeout: float = 240, **env: str) -> str:
    cmd = [str(BIN / args[0]), *args[1:]]
    proc = subprocess.Popen(cmd, env={**nnunet_env(root), **env}, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(args)} did not finish in {timeout} s:\n{out[-3000:]}")
    assert proc.returncode == 0, f"{' '.join(args)}: exit {proc.returncode}\n{out[-5000:]}"
    return out


def synthetic_dataset(root: Path, size: int, slices: tuple[int, int]) -> tuple[Path, Path]:
    """Eight synthetic cases in ``root/nnUNet_raw`` (nnU-Net's layout); case 3's images also in ``root/imagesTs``,
    to predict. Returns the dataset's raw folder and that test folder."""
    from iac_components.data.synth import synthesize

    synthesize("nnunet", root / "nnUNet_raw", patients=8, seed=0, size=size, slices=slices)
    raw = root / "nnUNet_raw" / DATASET
    test_dir = root / "imagesTs"
    test_dir.mkdir()
    for f in sorted((raw / "imagesTr").glob("case_0003_*.nii.gz")):
        (test_dir / f.name).symlink_to(f)
    return raw, test_dir
