"""The README's "your own data" recipe runs as written: the commands are read from the README itself (so the two
cannot drift apart) and run in a copy of custom_iac, with toy-size overrides appended to each workflow."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from bundle_utils import REPO, copy_bundle, subprocess_env

pytestmark = pytest.mark.slow

#: appended to the README's commands so that they run in a minute on a CPU (everything else as written)
TOY = {"train.json": "--epochs 1", "search.json": "--epochs 2 --warmup_steps 2", "retrain.json": "--epochs 1",
       "evaluate.json": "", "inference.json": ""}  # fmt: skip
COMMON = "--num_workers 0 --batch_size 4 --device cpu --amp false"


def readme_recipe() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own data", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_recipe_has_the_five_workflows_with_dataset_dir():
    lines = readme_recipe()
    assert lines[0].startswith("iac synth nnunet ")
    runs = [line for line in lines if "monai.bundle run" in line]
    assert [re.findall(r"configs/(\w+\.json)", r)[-1] for r in runs] == list(TOY)  # the overlay, after its base
    assert all("--dataset_dir $D" in r for r in runs[:4])


def test_the_readme_recipe_runs_as_written(tmp_path):
    bundle = copy_bundle("custom_iac", tmp_path)
    raw = tmp_path / "raw"
    env = {**subprocess_env(), "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    script = []
    for line in readme_recipe():
        line = line.replace("/tmp/raw", str(raw)).replace("cd bundles/custom_iac", f"cd {shlex.quote(str(bundle))}")
        names = re.findall(r"configs/(\w+\.json)", line)
        if names and "monai.bundle run" in line:
            name = names[-1]
            extra = TOY[name] + ("" if name in ("evaluate.json", "inference.json") else " " + COMMON)
            line = line.replace("python ", f"{shlex.quote(sys.executable)} ", 1) + " " + extra.replace(
                " --batch_size 4", "" if name == "evaluate.json" else " --batch_size 4")
        elif line.startswith("iac "):
            line += " --size 40 --slices '(4, 5)'"
        script.append(line)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(script)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=1200)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (bundle / "models" / "genotype.json").is_file() and (bundle / "models" / "model.pt").is_file()
    assert (bundle / "eval" / "evaluation" / "evaluation.json").is_file()
    assert sorted(p.name for p in (bundle / "out").iterdir())  # one label map per case
    assert "data: folds (patients): " in proc.stderr + proc.stdout  # the chosen geometry, classes and folds logged
