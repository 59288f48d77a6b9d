"""Shared set-up of the benchmark scripts: synthetic ACDC in the official layout and its trained baseline,
through the ``acdc_iac`` bundle's own configs at the demo's sizes (reused when already there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iac_components.bundles.run import find_bundle, run_workflow
from iac_components.demo import DEMO_OVERRIDES


def synthetic_baseline(out: Path, patients: int, seed: int) -> tuple[Path, dict[str, Any], Path]:
    """Write (once) ``out/raw`` and train (once) ``out/baseline/baseline.pt``.

    Returns:
        the bundle's configs folder, the overrides every workflow of the run shares, the baseline folder.
    """
    from iac_components.data import synthesize

    configs = find_bundle("acdc_iac", out) / "configs"
    raw = out / "raw"
    if not (raw / "training").is_dir():
        synthesize("acdc", raw, patients=patients, seed=0)
    common = {**DEMO_OVERRIDES["common"], "dataset_dir": str(raw), "cache_dir": str(out / "cache"), "seed": seed}
    base = out / "baseline"
    if not (base / "baseline.pt").is_file():
        run_workflow(configs / "train.json", "run", out / "train.log",
             {**common, **DEMO_OVERRIDES["train"], "ckpt_dir": str(base), "output_dir": str(base)})
    return configs, common, base
