"""``iac benchmark``'s runner: the evidence for (or against) IAC-LTH, one seed at a time, through the bundle's configs.

For each seed (its own patient-level folds, ``split_seed = seed``), on synthetic ACDC with headroom
(:data:`EVIDENCE_DATA`: a fixed, small training set and a large test fold):

1. the baseline U-Net (the demo's training budget);
2. the full search (the pruning handler observe-only, every epoch to the budget) and the IAC-LTH search (the JSD
   rule, stopping when the cell is decided), both from that baseline; optionally more full searches that differ
   only in the search seed (``noise_seeds``: same folds, same baseline), the search-noise floor;
3. the controls at LTH's budget: the truncated search (the full search's own genotype at the arch step where LTH
   stopped, derived from the recorded history: does the rule beat just stopping early?), random cuts on LTH's
   schedule (does choosing by α matter?) and an SGAS-style greedy schedule over LTH's arch steps
   (:mod:`iac_components.search.controls`);
4. retrains with one budget and recipe: the full search's cell, LTH's, the three controls', ``n_random`` random
   cells and no cells at all (the baseline fine-tuned as long: the positive control's reference);
5. every arm evaluated per patient on the test fold in the original grid.

Steps whose outputs exist are not run again, so an interrupted benchmark resumes. Each seed's results go to
``<out>/seed<S>/result.json``; :func:`~iac_components.benchmark.report.pooled_report` pools whatever seeds
have finished.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.benchmark.genotypes import random_genotype
from iac_components.demo import DEMO_OVERRIDES, _run, find_bundle
from iac_components.genotype import derive_from_logits, load_genotypes, save_genotypes
from iac_components.utils import machine_info, write_json_atomic

__all__ = ["EVIDENCE_DATA", "per_patient_metrics", "run_benchmark", "run_seed", "truncated_genotype"]

#: The benchmark's data: synthetic ACDC (every patient in ``training/``), 15 patients to train and search on
#: (6 search-train, 6 search-val, 3 validation) and the rest as the test fold of each seed.
EVIDENCE_DATA: dict[str, Any] = {
    "patients": 60,
    "split_fractions": {"search_train": 6, "search_val": 6, "validation": 3, "test": 45},
}


def per_patient_metrics(csv_path: Path) -> dict[str, dict[str, Any]]:
    """Per patient, from an evaluation's ``metrics_per_case.csv``: ``dice`` (mean over classes and the patient's
    cases), ``dice_per_class`` and ``hd95`` (mean over classes and cases)."""
    per: dict[str, list[dict[str, float]]] = {}
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            per.setdefault(row["patient_id"], []).append({k: float(v) for k, v in row.items() if v not in ("",) and
                                                          (k.startswith("dice_") or k.startswith("hd95_"))})  # fmt: skip
    out = {}
    for p, cases in per.items():
        classes = sorted({k[5:] for c in cases for k in c if k.startswith("dice_")})
        per_class = {c: float(np.mean([case[f"dice_{c}"] for case in cases])) for c in classes}
        hd = [v for case in cases for k, v in case.items() if k.startswith("hd95_")]
        out[p] = {"dice": float(np.mean(list(per_class.values()))), "dice_per_class": per_class,
                  "hd95": float(np.mean(hd)) if hd else None}  # fmt: skip
    return out


def truncated_genotype(full_history: dict[str, Any], arch_step: int):
    """The full search's genotype at ``arch_step``: derived from the last recorded check at or before it."""
    checks = [c for e in full_history["epochs"] for c in e.get("checks", []) if c["arch_step"] <= arch_step]
    if not checks:
        raise ValueError(f"the full search recorded no check at or before arch step {arch_step}")
    last = checks[-1]
    return derive_from_logits(last["alpha"][0], last["beta"][0]), int(last["arch_step"])


def _search_summary(d: Path) -> dict[str, Any]:
    h = json.loads((d / "search_history.json").read_text())
    return {
        "wall_clock_s": h["total_wall_clock_s"],
        "epochs": h["epochs"][-1]["epoch"],
        "arch_steps": h["epochs"][-1]["arch_steps"],
        "decided_at": h["decided_at"],
        "ops_alive": [e["ops_alive"] for e in h["epochs"]],
        "epoch_wall_clock_s": [e["wall_clock_s"] for e in h["epochs"]],
        "genotype": load_genotypes(d / "genotype.json")[0].to_dict(),
    }


def _decisions(history: dict[str, Any], group: int = 0) -> int:
    """How many single decisions make a cell of the history's search space: one per edge, one per node with
    more than two inputs (SGAS's schedule spreads them over LTH's arch steps)."""
    first = history["epochs"][0]["groups"][group]
    return len(first["alpha"]) + sum(len(v) > 2 for v in first["beta"].values())


def _gammas(model_file: Path) -> list[float]:
    """The retrained cells' output scales γ (``skip + γ·cell``, per channel, 0 at the start): the largest |γ| of
    each level, a first look at how much the cells contribute."""
    import torch

    state = torch.load(model_file, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    return [round(float(v.abs().max()), 5) for k, v in state.items() if k.endswith(".gamma")]


def run_seed(
    out: Path,
    seed: int,
    raw: Path,
    configs: Path,
    epochs: int,
    retrain_epochs: int,
    n_random: int = 5,
    noise_seeds: tuple[int, ...] = (),
    search_overrides: dict[str, Any] | None = None,
    lth_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One seed of the benchmark (see the module docstring); returns and writes ``<out>/seed<S>/result.json``."""
    run = out / f"seed{seed}"
    logs = run / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = {**DEMO_OVERRIDES["common"], "dataset_dir": str(raw), "cache_dir": str(run / "cache"), "seed": seed,
            "split_seed": seed, "split_fractions": EVIDENCE_DATA["split_fractions"], "bundle_root": str(run)}  # fmt: skip
    search = {**DEMO_OVERRIDES["search"], **(search_overrides or {}), "epochs": int(epochs)}
    cell = {"cell_channels": search.get("cell_channels", 32)}
    result: dict[str, Any] = {"seed": seed, "stages_s": {}}

    def timed(name: str, config: str, overrides: dict[str, Any], done: Path) -> None:
        stamp = run / f"{name}_s.txt"
        if not done.is_file():
            t = time.perf_counter()
            _run(configs / config, "run", logs / f"{name}.log", overrides)
            stamp.write_text(f"{time.perf_counter() - t}\n")
        result["stages_s"][name] = float(stamp.read_text()) if stamp.is_file() else None

    b = run / "baseline"
    timed("baseline", "train.json", {**base, **DEMO_OVERRIDES["train"], "ckpt_dir": str(b), "output_dir": str(b)},
          b / "baseline.pt")  # fmt: skip
    searches = {"full": {"prune": False}, "lth": {"prune": True, **(lth_overrides or {})}}
    searches.update({f"full_seed{s}": {"prune": False, "seed": s} for s in noise_seeds})
    result["searches"] = {}

    def searched(name: str, extra: dict[str, Any]) -> None:
        d = run / f"search_{name}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(b / "baseline.pt", d / "baseline.pt")
        timed(f"search_{name}", "search.json", {**base, **search, **extra, "ckpt_dir": str(d), "output_dir": str(d)},
              d / "genotype.json")  # fmt: skip
        result["searches"][name] = _search_summary(d)

    for name, extra in searches.items():
        searched(name, extra)
    # the controls at LTH's budget: its schedule with random choices, and SGAS's greedy schedule spread over
    # LTH's arch steps (same search seed as LTH: the same data order and initial α)
    lth_history = run / "search_lth" / "search_history.json"
    searched("random_cuts", {"prune": True, **(lth_overrides or {}),
                             "pruning#control": {"name": "random_cuts", "schedule": str(lth_history), "seed": seed}})  # fmt: skip
    every = max(1, result["searches"]["lth"]["arch_steps"] // _decisions(json.loads(lth_history.read_text())))
    searched("sgas", {"prune": True, "pruning#interval": every, "pruning#control": {"name": "sgas", "every": every}})
    lth_steps = result["searches"]["lth"]["arch_steps"]
    full_history = json.loads((run / "search_full" / "search_history.json").read_text())
    truncated, at = truncated_genotype(full_history, lth_steps)
    result["truncated"] = {"arch_step": at, "lth_arch_steps": lth_steps, "genotype": truncated.to_dict()}
    genotypes: dict[str, Path | None] = {
        "full": run / "search_full" / "genotype.json",
        "lth": run / "search_lth" / "genotype.json",
        "truncated": run / "truncated_genotype.json",
        "random_cuts": run / "search_random_cuts" / "genotype.json",
        "sgas": run / "search_sgas" / "genotype.json",
        "no_cells": None,
    }
    save_genotypes(genotypes["truncated"], [truncated], share_genotype=True, n_nodes=4)
    for k in range(n_random):
        path = run / f"random_{k}_genotype.json"
        save_genotypes(path, [random_genotype(10_000 * seed + k)], share_genotype=True, n_nodes=4)
        genotypes[f"random_{k}"] = path
    result["arms"] = {}
    for arm, genotype in genotypes.items():
        d = run / f"retrain_{arm}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(b / "baseline.pt", d / "baseline.pt")
        gfile = str(genotype) if genotype else "none"
        # the same width for every arm (a random genotype's file records none)
        o = {**base, **DEMO_OVERRIDES["retrain"], **cell, "epochs": retrain_epochs, "ckpt_dir": str(d),
             "output_dir": str(d), "genotype_file": gfile}  # fmt: skip
        timed(f"retrain_{arm}", "retrain.json", o, d / "model.pt")
        csv_path = d / "evaluation" / "iac" / "metrics_per_case.csv"
        if not csv_path.is_file():
            ev = {**base, **cell, "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": gfile,
                  "models": "${'iac': (@network_def, @ckpt_dir + '/model.pt')}"}  # fmt: skip
            _run(configs / "evaluate.json", "run", logs / f"evaluate_{arm}.log", ev)
        summary = json.loads((d / "evaluation" / "iac" / "metrics_summary.json").read_text())
        result["arms"][arm] = {
            "retrain_s": result["stages_s"][f"retrain_{arm}"],
            "cell_gamma": _gammas(d / "model.pt"),
            "mean_dice": summary["mean_dice"],
            "per_class": {k: v["dice"]["mean"] for k, v in summary["classes"].items()},
            "per_patient": per_patient_metrics(csv_path),
        }
    write_json_atomic(run / "result.json", result, indent=1)
    return result


def run_benchmark(
    out: str | Path = "benchmarks/runs/lth_vs_full",
    seeds: tuple[int, ...] | str = (1, 2, 3),
    epochs: int = 100,
    retrain_epochs: int = 6,
    n_random: int = 5,
    noise_seeds: tuple[int, ...] | str = (),
    patients: int = EVIDENCE_DATA["patients"],
    dataset_dir: str | None = None,
    bundle: str = "acdc_iac",
    results: str | Path = "benchmarks/results/lth_vs_full",
    margin: float = 0.005,
    report_only: bool = False,
    search_overrides: dict[str, Any] | None = None,
    lth_overrides: dict[str, Any] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run the benchmark's ``seeds`` (each resumable), then pool every finished seed under ``out`` into
    ``<results>.json`` / ``.md`` (:func:`~iac_components.benchmark.report.pooled_report`).

    Args:
        out: working folder (data, caches, models, histories, per-seed results).
        seeds: the reported seeds (the demo's rule values were calibrated on seed 0, which is not one of them).
        epochs: the full search's budget (and LTH's maximum).
        retrain_epochs: epochs of every retrain arm.
        n_random: random cells retrained per seed (the search's control).
        noise_seeds: search seeds of extra full searches on the first seed (same folds and baseline).
        patients: synthetic ACDC patients when ``dataset_dir`` is not given.
        dataset_dir: a dataset in the bundle's layout (default: synthetic ACDC written under ``out``).
        bundle: which bundle's configs to run.
        results: path prefix of the JSON and markdown results.
        margin: the equivalence margin of LTH vs full (mean Dice, 0.005 = half a Dice point).
        report_only: pool what has finished, run nothing.
        search_overrides: config overrides of every search (default: the demo's search settings).
        lth_overrides: extra overrides of the LTH search only (e.g. rule values).
        threads: torch threads of this process.
    """
    import sys

    import torch

    from iac_components.benchmark.report import pooled_report, render_markdown
    from iac_components.data import synthesize

    if threads:
        torch.set_num_threads(int(threads))
    as_ints = lambda v: tuple(int(s) for s in (str(v).split(",") if isinstance(v, (str, int)) else v) if str(s) != "")  # noqa: E731
    seeds, noise_seeds = as_ints(seeds), as_ints(noise_seeds)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    configs = find_bundle(bundle, out) / "configs"
    if not report_only:
        raw = Path(dataset_dir) if dataset_dir else out / "raw"
        if not dataset_dir and not (raw / "training").is_dir():
            synthesize("acdc", raw, patients=int(patients), seed=0, test_fraction=0.0)
        for i, seed in enumerate(seeds):
            run_seed(out, seed, raw, configs, epochs, retrain_epochs, n_random, noise_seeds if i == 0 else (),
                     search_overrides, lth_overrides)  # fmt: skip
    finished = [json.loads(p.read_text()) for p in sorted(out.glob("seed*/result.json"))]
    report = pooled_report(finished, margin=margin)
    command = "iac benchmark " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["benchmark"] else " ".join(sys.argv)
    report.update(command=command, machine=machine_info(),
                  config={"bundle": bundle, "epochs": epochs, "retrain_epochs": retrain_epochs, "n_random": n_random,
                          "data": {**EVIDENCE_DATA, "patients": patients, "dataset_dir": dataset_dir or "synthetic ACDC"},
                          "train": DEMO_OVERRIDES["train"], "search": {**DEMO_OVERRIDES["search"], **(search_overrides or {})},
                          "lth": lth_overrides or {}, "retrain": {**DEMO_OVERRIDES["retrain"], "epochs": retrain_epochs},
                          "margin": margin})  # fmt: skip
    write_json_atomic(Path(f"{results}.json"), report, indent=1)
    Path(f"{results}.md").write_text(render_markdown(report))
    print(render_markdown(report))
    return report
