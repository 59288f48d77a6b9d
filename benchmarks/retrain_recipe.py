"""Which retrain recipe lets the cells matter? The same genotype retrained under several recipes, each against
the no-cell control trained with the same recipe, on synthetic ACDC at the demo's sizes (issue 9, item 5).

Recipes (all AdamW at the demo's retrain learning rate for the cells, γ in its own group at
``gamma_learning_rate`` with no weight decay, validation every epoch, best checkpoint by validation Dice):
``trainable`` (backbone at the same rate), ``lr_x0.1`` (backbone at a tenth), ``frozen`` (backbone weights and
norm statistics frozen: only the cells train). For each: per-patient test Dice of the IAC model, the no-cell
control (the baseline fine-tuned with the same recipe; for ``frozen`` that is the baseline itself), their paired
difference (Wilcoxon, bootstrap 95 % CI), and the cells' γ and ‖γ·cell‖/‖skip‖ at the end.

One seed and the demo's small test fold: a first look for choosing the bundle default, not evidence that cells
help (``iac benchmark`` is built for that).

    python benchmarks/retrain_recipe.py --run benchmarks/runs/calibrate --genotype benchmarks/runs/calibrate/full_demo/genotype.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from iac_components.bundles.run import find_bundle, run_workflow
from iac_components.demo import DEMO_OVERRIDES
from iac_components.evidence.runner import per_patient_metrics
from iac_components.stats import paired_comparison
from iac_components.utils import machine_info, write_json_atomic

RECIPES = {
    "trainable": {"freeze_backbone": False, "backbone_lr_multiplier": 1.0},
    "lr_x0.1": {"freeze_backbone": False, "backbone_lr_multiplier": 0.1},
    "frozen": {"freeze_backbone": True, "backbone_lr_multiplier": 0.0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="benchmarks/runs/calibrate", help="folder with raw/, cache/ and baseline/ (calibrate_rule.py)")
    ap.add_argument("--genotype", default="benchmarks/runs/calibrate/full_demo/genotype.json")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--results", default="benchmarks/results/retrain_recipe")
    args = ap.parse_args()
    run = Path(args.run).resolve()
    configs = find_bundle("acdc_iac", run) / "configs"
    common = {**DEMO_OVERRIDES["common"], "dataset_dir": str(run / "raw"), "cache_dir": str(run / "cache"), "seed": args.seed}
    cell = {"cell_channels": DEMO_OVERRIDES["search"]["cell_channels"]}
    rows = {}
    for name, recipe in RECIPES.items():
        for arm, genotype in (("iac", str(Path(args.genotype).resolve())), ("no_cells", "none")):
            d = run / "recipes" / f"{name}_{arm}"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(run / "baseline" / "baseline.pt", d / "baseline.pt")
            if arm == "no_cells" and recipe["freeze_backbone"]:
                shutil.copy(d / "baseline.pt", d / "model.pt")  # nothing trains: the control is the baseline
                seconds = 0.0
            elif not (d / "model.pt").is_file():
                seconds = run_workflow(configs / "retrain.json", "run", d / "retrain.log",
                               {**common, **DEMO_OVERRIDES["retrain"], **recipe, "epochs": args.epochs,
                                "genotype_file": genotype, "ckpt_dir": str(d), "output_dir": str(d)})
            else:
                seconds = None
            ev = {**common, **cell, "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": genotype,
                  "models": "${'iac': (@network_def, @ckpt_dir + '/model.pt')}"}
            if not (d / "evaluation" / "iac" / "metrics_per_case.csv").is_file():
                run_workflow(configs / "evaluate.json", "run", d / "evaluate.log", ev)
            summary = json.loads((d / "evaluation" / "iac" / "metrics_summary.json").read_text())
            cells = d / "cell_contribution.json"
            rows.setdefault(name, {})[arm] = {
                "retrain_s": seconds, "mean_dice": summary["mean_dice"],
                "per_patient": {p: m["dice"] for p, m in per_patient_metrics(d / "evaluation" / "iac" / "metrics_per_case.csv").items()},
                "cells": json.loads(cells.read_text()) if cells.is_file() else None,
            }
        rows[name]["iac_vs_no_cells"] = paired_comparison(rows[name]["iac"]["per_patient"], rows[name]["no_cells"]["per_patient"])
    report = {"command": "python " + " ".join(sys.argv), "machine": machine_info(), "genotype": args.genotype,
              "epochs": args.epochs, "retrain": DEMO_OVERRIDES["retrain"], "recipes": RECIPES, "rows": rows}
    write_json_atomic(Path(f"{args.results}.json"), report, indent=1)
    lines = ["# Retrain recipes: do the cells get to matter?", "", f"Command: `{report['command']}`  ",
             f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, torch {report['machine']['torch']}.  ",
             f"{args.epochs} epochs, demo sizes, one seed; genotype `{args.genotype}`.", "",
             "| recipe | test Dice IAC | no cells, same recipe | IAC - no cells (95% CI; Wilcoxon p; patients) "
             "| max abs γ per level | ‖γ·cell‖/‖skip‖ per level |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        t, c = r["iac_vs_no_cells"], r["iac"]["cells"] or {}
        lines.append(f"| {name} | {r['iac']['mean_dice']:.4f} | {r['no_cells']['mean_dice']:.4f} | {t['mean_diff']:+.4f} "
                     f"({t['ci95'][0]:+.4f}..{t['ci95'][1]:+.4f}; {t['wilcoxon_p']:.2g}; {t['n_patients']}) | "
                     f"{' / '.join(f'{g:.3f}' for g in c.get('gamma_max_abs', []))} | "
                     f"{' / '.join(f'{x:.3f}' for x in c.get('ratio', []))} |")
    Path(f"{args.results}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
