"""``iac benchmark``'s runner: every arm of every seed through the bundle's own configs.

For each seed, on the same data and folds: train the baseline U-Net; run the full search (the pruning handler
in observe-only mode, every epoch) and the IAC-LTH search; retrain, with the same budget and recipe, the full
search's genotype, the LTH genotype, a random genotype (does the search matter?) and no cells at all (the
baseline fine-tuned as long: do cells matter?); evaluate every arm per patient on the test patients in the
original grid. Everything runs through the bundle's own configs (``acdc_iac`` by default), like the demo. Steps
whose outputs exist are not run again.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.benchmark.calibration import sweep_rules
from iac_components.benchmark.genotypes import genotype_agreement, random_genotype
from iac_components.benchmark.report import render_markdown, summarize_seeds
from iac_components.demo import DEMO_OVERRIDES, _run, find_bundle
from iac_components.genotype import Genotype, load_genotypes, save_genotypes
from iac_components.utils import machine_info, write_json_atomic

__all__ = ["per_patient_dice", "run_benchmark"]


def per_patient_dice(csv_path: Path) -> dict[str, float]:
    """Mean Dice per patient from an evaluation's ``metrics_per_case.csv``: the mean over classes of each case,
    averaged over the patient's cases."""
    per: dict[str, list[float]] = {}
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            dice = [float(v) for k, v in row.items() if k.startswith("dice_") and v != ""]
            per.setdefault(row["patient_id"], []).append(float(np.mean(dice)))
    return {p: float(np.mean(v)) for p, v in per.items()}


def run_benchmark(
    out: str | Path = "benchmarks/runs/lth_vs_full",
    seeds: tuple[int, ...] | str = (0, 1, 2),
    epochs: int = 200,
    retrain_epochs: int = 6,
    patients: int = 20,
    dataset_dir: str | None = None,
    bundle: str = "acdc_iac",
    results: str | Path = "benchmarks/results/lth_vs_full",
    search_overrides: dict[str, Any] | None = None,
    lth_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the benchmark; see the package docstring. Returns the report (also ``<results>.json`` / ``.md``).

    Args:
        out: working folder (data, cache, models, histories).
        seeds: seeds of the searches and retrains (the data and folds stay the same).
        epochs: epochs of the full search (and the LTH search's maximum).
        retrain_epochs: epochs of every retrain arm.
        patients: synthetic ACDC patients when ``dataset_dir`` is not given.
        dataset_dir: a dataset in the bundle's layout (default: synthetic ACDC written under ``out``).
        bundle: which bundle's configs to run.
        results: path prefix of the JSON and markdown results.
        search_overrides: config overrides of both searches (default: the demo's search settings).
        lth_overrides: extra overrides of the LTH search only (e.g. rule values).
    """
    import sys

    from iac_components.data import synthesize

    seeds = tuple(int(s) for s in (seeds.split(",") if isinstance(seeds, str) else seeds))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    configs = find_bundle(bundle, out) / "configs"
    raw = Path(dataset_dir) if dataset_dir else synthesize("acdc", out / "raw", patients=patients, seed=0)
    common = {**DEMO_OVERRIDES["common"], "dataset_dir": str(raw), "cache_dir": str(out / "cache")}
    search = {k: v for k, v in DEMO_OVERRIDES["search"].items()} | (search_overrides or {})
    search["epochs"] = int(epochs)
    cell = {"cell_channels": search.get("cell_channels", 32)}
    report: dict[str, Any] = {
        "command": "iac benchmark " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["benchmark"] else " ".join(sys.argv),
        "machine": machine_info(),
        "config": {"bundle": bundle, "seeds": list(seeds), "epochs": epochs, "retrain_epochs": retrain_epochs,
                   "dataset_dir": str(raw), "common": common, "search": search, "lth": lth_overrides or {},
                   "retrain": DEMO_OVERRIDES["retrain"] | {"epochs": retrain_epochs}},
        "seeds": {},
    }
    for seed in seeds:
        run = out / f"seed{seed}"
        # each seed draws its own patient-level folds (repeated random sub-sampling): all arms of a seed share data,
        # folds and seed; the pooled tests pair the arms per (seed, test patient)
        base = {**common, "seed": seed, "split_seed": seed}
        logs = run / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        r: dict[str, Any] = {}
        if not (run / "baseline" / "baseline.pt").is_file():
            _run(configs / "train.json", "run", logs / "train.log",
                 {**base, **DEMO_OVERRIDES["train"], "ckpt_dir": str(run / "baseline"), "output_dir": str(run / "baseline")})
        searches = {"full": {"prune": False}, "lth": {"prune": True, **(lth_overrides or {})}}
        for name, extra in searches.items():
            d = run / f"search_{name}"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(run / "baseline" / "baseline.pt", d / "baseline.pt")
            if not (d / "genotype.json").is_file():
                r[f"{name}_process_s"] = _run(configs / "search.json", "search", logs / f"search_{name}.log",
                                              {**base, **search, **extra, "ckpt_dir": str(d), "output_dir": str(d)})
            h = json.loads((d / "search_history.json").read_text())
            r[name] = {
                "wall_clock_s": h["total_wall_clock_s"],
                "epochs": h["epochs"][-1]["epoch"],
                "arch_steps": h["epochs"][-1]["arch_steps"],
                "decided_at": h["decided_at"],
                "ops_alive": [e["ops_alive"] for e in h["epochs"]],
                "epoch_wall_clock_s": [e["wall_clock_s"] for e in h["epochs"]],
                "genotype": load_genotypes(d / "genotype.json")[0].to_dict(),
            }
        r["speedup"] = r["full"]["wall_clock_s"] / r["lth"]["wall_clock_s"]
        # the paper's full search runs 200 epochs; every full epoch costs the same (nothing is pruned), so its
        # wall-clock scales with the epoch count: an extrapolation from the measured epochs, labelled as such
        r["speedup_vs_200_epochs_extrapolated"] = (
            float(np.mean(r["full"]["epoch_wall_clock_s"][1:] or r["full"]["epoch_wall_clock_s"])) * 200
            / r["lth"]["wall_clock_s"]
        )
        g_full = Genotype.from_dict(r["full"]["genotype"])
        g_lth = Genotype.from_dict(r["lth"]["genotype"])
        r["agreement_lth_vs_full"] = genotype_agreement(g_lth, g_full)
        arms = {"full": run / "search_full" / "genotype.json", "lth": run / "search_lth" / "genotype.json"}
        rand = run / "random_genotype.json"
        save_genotypes(rand, [random_genotype(1000 + seed)], share_genotype=True, n_nodes=4)
        arms["random"] = rand
        arms["no_cells"] = None
        r["arms"] = {}
        for arm, genotype in arms.items():
            d = run / f"retrain_{arm}"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(run / "baseline" / "baseline.pt", d / "baseline.pt")
            if not (d / "evaluation" / "iac" / "metrics_per_case.csv").is_file():
                # the same width for every arm (a random genotype's file records none)
                o = {**base, **DEMO_OVERRIDES["retrain"], **cell, "epochs": retrain_epochs, "ckpt_dir": str(d), "output_dir": str(d),
                     "genotype_file": str(genotype) if genotype else "none"}
                t = _run(configs / "retrain.json", "run", logs / f"retrain_{arm}.log", o)
                ev = {**base, **cell, "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": str(genotype) if genotype else "none",
                      "models": "${'iac': (@network_def, @ckpt_dir + '/model.pt')}"}
                _run(configs / "evaluate.json", "run", logs / f"evaluate_{arm}.log", ev)
                (d / "retrain_s.txt").write_text(f"{t}\n")
            summary = json.loads((d / "evaluation" / "iac" / "metrics_summary.json").read_text())
            r["arms"][arm] = {
                "retrain_s": float((d / "retrain_s.txt").read_text()),
                "cell_gamma": _gammas(d / "model.pt"),
                "mean_dice": summary["mean_dice"],
                "per_class": {k: v["dice"]["mean"] for k, v in summary["classes"].items()},
                "per_patient": per_patient_dice(d / "evaluation" / "iac" / "metrics_per_case.csv"),
            }
        report["seeds"][str(seed)] = r
        write_json_atomic(Path(f"{results}.json"), summarize_seeds(report), indent=1)
    report = summarize_seeds(report)
    first = out / f"seed{seeds[0]}" / "search_full" / "search_history.json"
    report["calibration_sweep"] = sweep_rules(json.loads(first.read_text()))
    report["calibration_sweep"]["history"] = str(first)
    write_json_atomic(Path(f"{results}.json"), report, indent=1)
    Path(f"{results}.md").write_text(render_markdown(report))
    print(render_markdown(report))
    return report


def _gammas(model_file: Path) -> list[float]:
    """The retrained cells' output scales γ (``skip + γ·cell``, per channel, 0 at the start): the largest |γ| of
    each level, a first look at how much the cells contribute."""
    import torch

    state = torch.load(model_file, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    return [round(float(v.abs().max()), 5) for k, v in state.items() if k.endswith(".gamma")]
