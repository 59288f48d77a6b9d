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
``<out>/seed<S>/result.json``; :func:`~iac_components.evidence.report.pooled_report` pools whatever seeds
have finished.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.bundles.run import find_bundle, run_workflow
from iac_components.demo import DEMO_OVERRIDES
from iac_components.evidence.genotypes import random_genotype
from iac_components.evidence.schedule import ScheduleError, Slot, device_slots, run_graph, topological
from iac_components.genotype import derive_from_logits, load_genotypes, save_genotypes
from iac_components.utils import atomic_write, machine_info, write_json_atomic

__all__ = ["EVIDENCE_DATA", "SeedRun", "cell_gammas", "cell_macs_per_epoch", "decisions_needed", "per_patient_metrics",
           "run_benchmark", "run_seed", "search_summary",
           "seed_tasks", "truncated_genotype"]

#: The benchmark's data: synthetic ACDC (every patient in ``training/``), 15 patients to train and search on
#: (6 search-train, 6 search-val, 3 validation) and the rest as the test fold of each seed.
EVIDENCE_DATA: dict[str, Any] = {
    "patients": 60,
    "split_fractions": {"search_train": 6, "search_val": 6, "validation": 3, "test": 45},
}
#: Patients every seed trains and searches on; the test fold holds the rest (``patients`` minus these).
EVIDENCE_TRAINING_PATIENTS = 15


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


def search_summary(d: Path, batch_size: int) -> dict[str, Any]:
    h = json.loads((d / "search_history.json").read_text())
    return {
        "wall_clock_s": h["total_wall_clock_s"],
        "epochs": h["epochs"][-1]["epoch"],
        "arch_steps": h["epochs"][-1]["arch_steps"],
        "decided_at": h["decided_at"],
        "ops_alive": [e["ops_alive"] for e in h["epochs"]],
        "cell_macs_per_epoch": cell_macs_per_epoch(h, batch_size),
        "epoch_wall_clock_s": [e["wall_clock_s"] for e in h["epochs"]],
        "genotype": load_genotypes(d / "genotype.json")[0].to_dict(),
    }


def cell_macs_per_epoch(history: dict[str, Any], batch_size: int) -> list[int] | None:
    """A machine-independent cost per epoch: the cells' forward multiply-accumulates per image (counted on the
    structure the epoch started with: the previous epoch's end, the first epoch's own in its warm-up) times the
    images the epoch fed through them (weight and arch batches). ``None`` for a history without the count."""
    epochs = history["epochs"]
    macs = [(e.get("cells") or {}).get("forward_macs") for e in epochs]
    if any(m is None for m in macs):
        return None
    out, iteration, arch_steps = [], 0, 0
    for n, e in enumerate(epochs):
        images = (e["iteration"] - iteration + e["arch_steps"] - arch_steps) * int(batch_size)
        out.append(int(macs[max(0, n - 1)]) * images)
        iteration, arch_steps = e["iteration"], e["arch_steps"]
    return out


def decisions_needed(history: dict[str, Any], group: int = 0) -> int:
    """How many single decisions make a cell of the history's search space: one per edge, one per node with
    more than two inputs (SGAS's schedule spreads them over LTH's arch steps)."""
    first = history["epochs"][0]["groups"][group]
    return len(first["alpha"]) + sum(len(v) > 2 for v in first["beta"].values())


def cell_gammas(model_file: Path) -> list[float]:
    """The retrained cells' output scales γ (``skip + γ·cell``, per channel, 0 at the start): the largest |γ| of
    each level, a first look at how much the cells contribute."""
    import torch

    state = torch.load(model_file, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    return [round(float(v.abs().max()), 5) for k, v in state.items() if k.endswith(".gamma")]


def seed_tasks(noise_seeds: tuple[int, ...] = (), n_random: int = 5) -> dict[str, tuple[str, ...]]:
    """One seed's steps and what each needs, longest first where the order is free (the full searches)."""
    tasks: dict[str, tuple[str, ...]] = {"baseline": ()}
    for name in ("full", *(f"full_seed{s}" for s in noise_seeds), "lth"):
        tasks[f"search_{name}"] = ("baseline",)
    # the controls at LTH's budget need LTH's schedule (random cuts) and its arch steps (SGAS)
    tasks["search_random_cuts"] = tasks["search_sgas"] = ("search_lth",)
    arms = {"full": ("search_full",), "lth": ("search_lth",), "truncated": ("search_full", "search_lth"),
            "random_cuts": ("search_random_cuts",), "sgas": ("search_sgas",), "no_cells": ("baseline",),
            **{f"random_{k}": ("baseline",) for k in range(n_random)}}  # fmt: skip
    tasks.update({f"retrain_{arm}": needs for arm, needs in arms.items()})
    return tasks


@dataclass
class SeedRun:
    """One seed of the benchmark (see the module docstring): :meth:`run_task` runs one of :func:`seed_tasks`
    (nothing when its output exists), :meth:`collect` reads every finished output into ``result.json``."""

    out: Path
    seed: int
    raw: Path
    configs: Path
    epochs: int
    retrain_epochs: int
    n_random: int = 5
    noise_seeds: tuple[int, ...] = ()
    search_overrides: dict[str, Any] | None = None
    lth_overrides: dict[str, Any] | None = None
    device: str = "cpu"
    split_fractions: dict[str, int] | None = None

    def __post_init__(self) -> None:
        self.out, self.raw, self.configs = Path(self.out), Path(self.raw), Path(self.configs)
        self.noise_seeds = tuple(self.noise_seeds)
        self.run = self.out / f"seed{self.seed}"
        self.logs = self.run / "logs"
        self.base = {**DEMO_OVERRIDES["common"], "device": self.device, "dataset_dir": str(self.raw),
                     "cache_dir": str(self.run / "cache"), "seed": self.seed, "split_seed": self.seed,
                     "split_fractions": self.split_fractions or EVIDENCE_DATA["split_fractions"],
                     "bundle_root": str(self.run)}  # fmt: skip
        self.search = {**DEMO_OVERRIDES["search"], **(self.search_overrides or {}), "epochs": int(self.epochs)}
        self.cell = {"cell_channels": self.search.get("cell_channels", 32)}

    def tasks(self) -> dict[str, tuple[str, ...]]:
        return seed_tasks(self.noise_seeds, self.n_random)

    def _timed(self, name: str, config: str, overrides: dict[str, Any], output: Path) -> None:
        """Run a workflow unless it finished before: its time stamp is written only after it returned, so a step
        interrupted after its first checkpoint (a best-so-far model.pt) runs again."""
        stamp = self.run / f"{name}_s.txt"
        if stamp.is_file() and output.is_file():
            return
        self.logs.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        run_workflow(self.configs / config, "run", self.logs / f"{name}.log", overrides)
        atomic_write(stamp, lambda tmp: Path(tmp).write_text(f"{time.perf_counter() - t}\n"))

    def _genotype_file(self, arm: str) -> Path | None:
        if arm == "no_cells":
            return None
        if arm in ("full", "lth", "random_cuts", "sgas"):
            return self.run / f"search_{arm}" / "genotype.json"
        return self.run / f"{arm}_genotype.json"  # truncated, random_<k>: written by their retrain task

    def run_task(self, name: str) -> None:
        """Run one step of this seed (nothing when its output exists)."""
        b = self.run / "baseline"
        if name == "baseline":
            self._timed("baseline", "train.json", {**self.base, **DEMO_OVERRIDES["train"], "ckpt_dir": str(b),
                                                   "output_dir": str(b)}, b / "baseline.pt")  # fmt: skip
        elif name.startswith("search_"):
            self._search(name.removeprefix("search_"), b)
        elif name.startswith("retrain_"):
            self._retrain(name.removeprefix("retrain_"), b)
        else:
            raise ValueError(f"unknown benchmark task {name!r}; the tasks are {list(self.tasks())}")

    def _search(self, arm: str, b: Path) -> None:
        lth_history = self.run / "search_lth" / "search_history.json"
        if arm == "full":
            extra: dict[str, Any] = {"prune": False}
        elif arm.startswith("full_seed"):
            extra = {"prune": False, "seed": int(arm.removeprefix("full_seed"))}
        elif arm == "lth":
            extra = {"prune": True, **(self.lth_overrides or {})}
        elif arm == "random_cuts":  # LTH's schedule with random choices (same search seed: same data, same α)
            extra = {"prune": True, **(self.lth_overrides or {}),
                     "pruning#control": {"name": "random_cuts", "schedule": str(lth_history), "seed": self.seed}}  # fmt: skip
        elif arm == "sgas":  # one greedy decision every `every` arch steps, spread over LTH's arch steps
            history = json.loads(lth_history.read_text())
            every = max(1, history["epochs"][-1]["arch_steps"] // decisions_needed(history))
            extra = {"prune": True, "pruning#interval": every, "pruning#control": {"name": "sgas", "every": every}}
        else:
            raise ValueError(f"unknown search arm {arm!r}")
        d = self.run / f"search_{arm}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(b / "baseline.pt", d / "baseline.pt")
        self._timed(f"search_{arm}", "search.json",
                    {**self.base, **self.search, **extra, "ckpt_dir": str(d), "output_dir": str(d)}, d / "genotype.json")

    def _retrain(self, arm: str, b: Path) -> None:
        genotype = self._genotype_file(arm)
        if arm == "truncated":
            full_history = json.loads((self.run / "search_full" / "search_history.json").read_text())
            lth_steps = json.loads((self.run / "search_lth" / "search_history.json").read_text())["epochs"][-1]["arch_steps"]
            save_genotypes(genotype, [truncated_genotype(full_history, lth_steps)[0]], share_genotype=True, n_nodes=4)
        elif arm.removeprefix("random_").isdigit():  # random_<k>, not random_cuts (a searched control)
            k = int(arm.removeprefix("random_"))
            save_genotypes(genotype, [random_genotype(10_000 * self.seed + k)], share_genotype=True, n_nodes=4)
        d = self.run / f"retrain_{arm}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(b / "baseline.pt", d / "baseline.pt")
        gfile = str(genotype) if genotype else "none"
        # the same width for every arm (a random genotype's file records none)
        o = {**self.base, **DEMO_OVERRIDES["retrain"], **self.cell, "epochs": self.retrain_epochs,
             "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": gfile}  # fmt: skip
        self._timed(f"retrain_{arm}", "retrain.json", o, d / "model.pt")
        if not (d / "evaluation" / "iac" / "metrics_per_case.csv").is_file():
            ev = {**self.base, **self.cell, "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": gfile,
                  "models": "${'iac': (@network_def, @ckpt_dir + '/model.pt')}"}  # fmt: skip
            run_workflow(self.configs / "evaluate.json", "run", self.logs / f"evaluate_{arm}.log", ev)

    def run_all(self) -> dict[str, Any]:
        """Every step of this seed in this process, one after another, then :meth:`collect`."""
        for name in topological(self.tasks()):
            self.run_task(name)
        return self.collect()

    def collect(self) -> dict[str, Any]:
        """Read every step's outputs into the seed's result (and ``result.json``)."""
        stamp = lambda name: float(p.read_text()) if (p := self.run / f"{name}_s.txt").is_file() else None  # noqa: E731
        tasks = self.tasks()
        result: dict[str, Any] = {"seed": self.seed, "stages_s": {t: stamp(t) for t in tasks}, "searches": {}}
        batch = int(self.search.get("batch_size", 1))
        for t in tasks:
            if t.startswith("search_"):
                result["searches"][t.removeprefix("search_")] = search_summary(self.run / t, batch)
        lth_steps = result["searches"]["lth"]["arch_steps"]
        full_history = json.loads((self.run / "search_full" / "search_history.json").read_text())
        truncated, at = truncated_genotype(full_history, lth_steps)
        result["truncated"] = {"arch_step": at, "lth_arch_steps": lth_steps, "genotype": truncated.to_dict()}
        result["arms"] = {}
        for t in tasks:
            if not t.startswith("retrain_"):
                continue
            arm, d = t.removeprefix("retrain_"), self.run / t
            summary = json.loads((d / "evaluation" / "iac" / "metrics_summary.json").read_text())
            result["arms"][arm] = {
                "retrain_s": result["stages_s"][t],
                "cell_gamma": cell_gammas(d / "model.pt"),
                "mean_dice": summary["mean_dice"],
                "per_class": {k: v["dice"]["mean"] for k, v in summary["classes"].items()},
                "per_patient": per_patient_metrics(d / "evaluation" / "iac" / "metrics_per_case.csv"),
            }
        write_json_atomic(self.run / "result.json", result, indent=1)
        return result


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
    device: str = "cpu",
    split_fractions: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One seed of the benchmark in this process, step after step; returns and writes ``<out>/seed<S>/result.json``."""
    seed_run = SeedRun(out, seed, raw, configs, epochs, retrain_epochs, n_random, tuple(noise_seeds),
                       search_overrides, lth_overrides, device, split_fractions)  # fmt: skip
    return seed_run.run_all()


def _start_task(seed_run: SeedRun, name: str, slot: Slot) -> tuple[subprocess.Popen, Path]:
    """Launch one step of a seed in its own process on ``slot`` (``python -m iac_components.evidence.task``)."""
    spec = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(seed_run).items()}
    spec.update(device=slot.device, task=name, threads=slot.threads)
    seed_run.logs.mkdir(parents=True, exist_ok=True)
    log = seed_run.logs / f"task_{name}.out"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "iac_components.evidence.task", json.dumps(spec)],
                                stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **slot.env})  # fmt: skip
    return proc, log


def _threads_per_process(devices: str, jobs: int, threads: int | None) -> int | None:
    try:
        return device_slots(devices, jobs, threads)[0].threads
    except ScheduleError:  # --report_only on a machine without the devices the run used
        return threads


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
    devices: str = "cpu",
    jobs: int = 1,
) -> dict[str, Any]:
    """Run the benchmark's ``seeds`` (each resumable), then pool every finished seed under ``out`` into
    ``<results>.json`` / ``.md`` (:func:`~iac_components.evidence.report.pooled_report`).

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
        threads: torch threads of each process (default: torch's choice in one process, else the cores shared).
        devices: ``"cpu"``, ``"cuda"`` (every visible GPU) or GPU ids (``"0,1"``): with more than one slot
            (device x ``jobs``), the seeds' independent steps run side by side, one process per slot
            (:mod:`~iac_components.evidence.schedule`); each step's wall-clock is then measured beside the others.
        jobs: processes per device.
    """

    from iac_components.evidence.report import pooled_report, render_markdown

    as_ints = lambda v: tuple(int(s) for s in (str(v).split(",") if isinstance(v, (str, int)) else v) if str(s) != "")  # noqa: E731
    seeds, noise_seeds = as_ints(seeds), as_ints(noise_seeds)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    configs = find_bundle(bundle, out) / "configs"
    if not report_only:
        _run_seeds(out, seeds, noise_seeds, configs, epochs, retrain_epochs, n_random, patients, dataset_dir,
                   search_overrides, lth_overrides, devices, jobs, threads)  # fmt: skip
    finished = [json.loads(p.read_text()) for p in sorted(out.glob("seed*/result.json"))]
    report = pooled_report(finished, margin=margin)
    import sys

    command = "iac benchmark " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["benchmark"] else " ".join(sys.argv)
    report.update(command=command, machine=machine_info(),
                  config={"bundle": bundle, "epochs": epochs, "retrain_epochs": retrain_epochs, "n_random": n_random,
                          "devices": devices, "jobs": jobs,
                          "threads_per_process": _threads_per_process(devices, jobs, threads),
                          "data": {**EVIDENCE_DATA, "patients": patients, "dataset_dir": dataset_dir or "synthetic ACDC"},
                          "train": DEMO_OVERRIDES["train"], "search": {**DEMO_OVERRIDES["search"], **(search_overrides or {})},
                          "lth": lth_overrides or {}, "retrain": {**DEMO_OVERRIDES["retrain"], "epochs": retrain_epochs},
                          "margin": margin})  # fmt: skip
    write_json_atomic(Path(f"{results}.json"), report, indent=1)
    Path(f"{results}.md").write_text(render_markdown(report))
    print(render_markdown(report))
    return report


def _run_seeds(out: Path, seeds: tuple[int, ...], noise_seeds: tuple[int, ...], configs: Path, epochs: int,
               retrain_epochs: int, n_random: int, patients: int, dataset_dir: str | None,
               search_overrides: dict[str, Any] | None, lth_overrides: dict[str, Any] | None, devices: str, jobs: int,
               threads: int | None) -> None:  # fmt: skip
    """Run every seed's steps (data, baseline, searches, retrains, evaluation): in this process when there is one
    CPU slot, else stage-major over the slots, one process per step."""
    import torch

    from iac_components.data import synthesize

    slots = device_slots(devices, jobs, threads)
    # shares of the folds (normalised): on the synthetic data exact counts, the test fold all the rest; a given
    # dataset_dir keeps the 60-patient proportions
    fractions = {**EVIDENCE_DATA["split_fractions"], "test": int(patients) - EVIDENCE_TRAINING_PATIENTS}
    if dataset_dir:
        fractions = dict(EVIDENCE_DATA["split_fractions"])
    elif fractions["test"] < 1:
        raise ScheduleError(f"patients={patients}: the benchmark trains and searches on "
                            f"{EVIDENCE_TRAINING_PATIENTS} patients and needs at least one more to test on")
    raw = Path(dataset_dir) if dataset_dir else out / "raw"
    if not dataset_dir and not (raw / "training").is_dir():
        synthesize("acdc", raw, patients=int(patients), seed=0, test_fraction=0.0)
    runs = [SeedRun(out, seed, raw, configs, epochs, retrain_epochs, n_random, noise_seeds if i == 0 else (),
                    search_overrides, lth_overrides, slots[0].device, fractions) for i, seed in enumerate(seeds)]  # fmt: skip
    if len(slots) == 1 and not slots[0].env:  # one CPU process: this one
        torch.set_num_threads(int(slots[0].threads))
        for r in runs:
            r.run_all()
    else:
        # stage-major: every seed's baseline, then every seed's full search, ... so that the longest steps start
        # first (the first seed's list is the longest: it has the noise-floor searches)
        graph = {f"seed{r.seed}/{name}": tuple(f"seed{r.seed}/{n}" for n in r.tasks()[name])
                 for name in runs[0].tasks() for r in runs if name in r.tasks()}  # fmt: skip
        by_key = {f"seed{r.seed}/{name}": (r, name) for r in runs for name in r.tasks()}
        print(f"[benchmark] {len(graph)} steps on {len(slots)} processes: " + ", ".join(
            s.device + (f" (GPU {s.env['CUDA_VISIBLE_DEVICES']})" if s.env else "") for s in slots), flush=True)
        run_graph(graph, lambda key, slot: _start_task(*by_key[key], slot), slots)
        for r in runs:
            r.collect()
