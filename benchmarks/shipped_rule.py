"""Does the search the bundles ship end early by its own rule? ``search.json`` as shipped, measured to its decision.

Synthetic ACDC at a small in-plane size (32 x 32 at 4 mm) with as many patients as real ACDC needs to give an
epoch of the search as many architecture steps as real ACDC at the bundle's batch size: real ACDC's search-train
fold is 35 % of 100 patients x 2 frames x about 10 slices = about 700 slices, 44 arch steps per epoch at batch 16;
here 140 synthetic patients (35 % = 49, 2 frames x 6-9 slices) give about 46. The rule counts arch steps (its
window, its scale), and the warm-up counts weight steps, so what matters for *when* it decides is that count, not
the image size (docs/method.md, "the scale argument").

Stages (each resumes; a stage whose output exists is skipped):

* ``data``, ``baseline``: the dataset and the baseline U-Net (``train.json``);
* ``full``: ``search.json`` with every shipped value, observe-only (``--prune false``) to its 200-epoch budget:
  the history records each check's logits and the rule's verdicts (what the shipped rule would have done);
* ``lth``: ``search.json`` as shipped (the rule cutting), to its decision or the budget;
* ``retrain``: both cells retrained and evaluated per patient with ``retrain.json`` / ``evaluate.json``;
* ``report``: ``benchmarks/results/shipped_rule.{json,md}`` (replays of the rule values on the recorded full
  search, the live search's decision, the retrained cells side by side).

Run: ``python benchmarks/shipped_rule.py --out benchmarks/runs/shipped_rule --stages data,baseline,full``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from iac_components.bundles.run import find_bundle, run_workflow
from iac_components.data import synthesize

#: The data: 140 synthetic ACDC patients (all in ``training/``), the bundle's own split fractions.
PATIENTS = 140
GEOMETRY = {"spacing": [4.0, 4.0], "spatial_size": [32, 32]}
#: What this run changes from the bundle: the device and the loaders (no workers, no AMP on the CPU, where the
#: bundle's AMP would mean bf16 autocast), and the geometry above. Every value of the search recipe is shipped.
RUN = {"device": "cpu", "amp": False, "num_workers": 0, **GEOMETRY}
BASELINE = {"epochs": 50}


def _common(out: Path, seed: int) -> dict[str, Any]:
    return {**RUN, "dataset_dir": str(out / "raw"), "cache_dir": str(out / "cache"), "bundle_root": str(out),
            "seed": seed, "split_seed": 0}  # fmt: skip


def stage_data(out: Path) -> None:
    if not (out / "raw" / "training").is_dir():
        synthesize("acdc", out / "raw", patients=PATIENTS, seed=0, test_fraction=0.0)


def stage_baseline(out: Path, configs: Path, seed: int) -> None:
    b = out / "baseline"
    if (b / "baseline.pt").is_file() and (out / "baseline_s.txt").is_file():
        return
    t = run_workflow(configs / "train.json", "run", out / "logs" / "baseline.log",
                     {**_common(out, seed), **BASELINE, "ckpt_dir": str(b), "output_dir": str(b)})  # fmt: skip
    (out / "baseline_s.txt").write_text(f"{t}\n")


def stage_search(out: Path, configs: Path, seed: int, arm: str, extra: dict[str, Any] | None = None) -> None:
    """``arm`` ``full`` (observe-only) or ``lth`` (the shipped rule cutting); resumes from its last epoch."""
    d = out / f"search_{arm}"
    if (d / "genotype.json").is_file():
        return
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "baseline" / "baseline.pt", d / "baseline.pt")
    resume = any((d / "search_checkpoints").glob("*.pt"))
    run_workflow(configs / "search.json", "search", out / "logs" / f"search_{arm}{'_resumed' if resume else ''}.log",
                 {**_common(out, seed), "prune": arm != "full", "resume": resume, "ckpt_dir": str(d),
                  "output_dir": str(d), **(extra or {})})  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/runs/shipped_rule")
    ap.add_argument("--stages", default="data,baseline,full")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out).resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    configs = find_bundle("acdc_iac") / "configs"
    for stage in args.stages.split(","):
        print(f"[shipped_rule] {stage}", flush=True)
        if stage == "data":
            stage_data(out)
        elif stage == "baseline":
            stage_baseline(out, configs, args.seed)
        elif stage in ("full", "lth"):
            stage_search(out, configs, args.seed, stage)
        else:
            sys.exit(f"error: unknown stage {stage!r} (data, baseline, full, lth)")


if __name__ == "__main__":
    main()
