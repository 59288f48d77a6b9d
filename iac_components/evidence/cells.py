"""Does the search find anything? Cells as the unit: one fold, one baseline, many cells retrained alike.

:class:`CellStudy` holds the data, the folds and the baseline fixed and varies only the cell, so that the
replicate of every comparison is what actually varies:

* ``one_op_<op>``: one op on every edge of a fixed chain topology (node ``j`` reads states ``j`` and ``j + 1``),
  one cell per candidate op of the search space: the op-level ground truth (does the data reward any op?);
* ``random_<k>``: uniformly random cells over the search space's ops (the null distribution of a cell);
* ``full_s<s>`` and ``lth_s<s>``: the full search (observe-only, to its budget) and IAC-LTH for search seed
  ``s`` (same folds, same baseline, same data; the search seed changes the cells' initial weights and the batch
  order);
* ``truncated_s<s>`` (the full search's cell at LTH's arch step), ``random_cuts_s<s>`` and ``sgas_s<s>`` (LTH's
  schedule with random choices, SGAS-style greedy decisions over LTH's arch steps): the controls, at LTH's budget;
* ``no_cells``, ``no_cells_1x``, ``no_cells_10x``: the baseline fine-tuned with the same recipe and budget, its
  backbone at 0.1x (the retrain's default), 1x and 10x the cells' learning rate: "more training" and "a faster
  backbone" as references for "a cell".

Every arm is retrained with one recipe and one retrain seed and evaluated per patient on the same test fold.
Steps whose outputs exist are skipped, so a study resumes; ``python -m iac_components.evidence.task`` runs one
step in its own process (``iac benchmark --study cells --jobs 2``). The statistics are in
:mod:`iac_components.evidence.cell_report`.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iac_components.bundles.run import run_workflow
from iac_components.demo import DEMO_OVERRIDES
from iac_components.evidence.runner import cell_gammas, decisions_needed, per_patient_metrics, search_summary, truncated_genotype
from iac_components.genotype import Genotype, save_genotypes
from iac_components.utils import atomic_write, write_json_atomic

__all__ = ["CellStudy", "SEARCH_KINDS", "chain_genotype", "random_genotype_over", "study_tasks"]

#: The searches of one search seed: the full search, IAC-LTH and the two searched controls at LTH's budget.
SEARCH_KINDS = ("full", "lth", "random_cuts", "sgas")
#: Backbone learning-rate multipliers of the no-cell references (0.1 is the retrain's default).
NO_CELL_MULTIPLIERS = {"no_cells": 0.1, "no_cells_1x": 1.0, "no_cells_10x": 10.0}


def chain_genotype(op: str, n_nodes: int = 4) -> Genotype:
    """One op on every edge of a fixed topology: node state ``j + 2`` reads states ``j`` and ``j + 1`` (a chain,
    so that ops compose: the receptive field grows with depth as the op's own does)."""
    return Genotype(tuple(((j, op), (j + 1, op)) for j in range(n_nodes)))


def random_genotype_over(seed: int, ops: tuple[str, ...], n_nodes: int = 4) -> Genotype:
    """A uniformly random cell over ``ops``: per node two distinct earlier states, each with a random op."""
    rng = random.Random(seed)
    return Genotype(tuple(tuple((i, rng.choice(ops)) for i in sorted(rng.sample(range(j + 2), 2)))
                          for j in range(n_nodes)))  # fmt: skip


def study_tasks(search_seeds: tuple[int, ...], ops: tuple[str, ...], n_random: int, controls: bool = True,
                one_op: bool = True) -> dict[str, tuple[str, ...]]:
    """The study's steps and what each needs (longest first where the order is free: the full searches)."""
    tasks: dict[str, tuple[str, ...]] = {"baseline": ()}
    kinds = SEARCH_KINDS if controls else ("full", "lth")
    for s in search_seeds:
        tasks[f"search_full_s{s}"] = ("baseline",)
    for s in search_seeds:
        tasks[f"search_lth_s{s}"] = ("baseline",)
        for k in kinds[2:]:
            tasks[f"search_{k}_s{s}"] = (f"search_lth_s{s}",)
    for s in search_seeds:
        tasks[f"retrain_full_s{s}"] = (f"search_full_s{s}",)
        tasks[f"retrain_lth_s{s}"] = (f"search_lth_s{s}",)
        tasks[f"retrain_truncated_s{s}"] = (f"search_full_s{s}", f"search_lth_s{s}")
        for k in kinds[2:]:
            tasks[f"retrain_{k}_s{s}"] = (f"search_{k}_s{s}",)
    for arm in [*(f"one_op_{op}" for op in (ops if one_op else ())), *(f"random_{k}" for k in range(n_random)),
                *NO_CELL_MULTIPLIERS]:  # fmt: skip
        tasks[f"retrain_{arm}"] = ("baseline",)
    return tasks


def arm_kind(arm: str) -> tuple[str, int | None]:
    """An arm's kind for the report (``one_op``, ``random``, ``full``, ``lth``, ``control``, ``reference``) and
    its search seed (None for cells no search made)."""
    if arm.startswith("one_op_"):
        return "one_op", None
    if arm in NO_CELL_MULTIPLIERS:
        return "reference", None
    name, _, seed = arm.rpartition("_s")
    if seed.isdigit() and name in ("full", "lth", "truncated", "random_cuts", "sgas"):
        return ("control" if name not in ("full", "lth") else name), int(seed)
    if arm.startswith("random_") and arm.removeprefix("random_").isdigit():
        return "random", None
    raise ValueError(f"unknown arm {arm!r}")


@dataclass
class CellStudy:
    """One study (see the module docstring); :meth:`run_task` runs one of :meth:`tasks` (nothing when its
    output exists), :meth:`collect` reads every finished output into ``study.json``.

    Args:
        out: the study's folder.
        raw: the dataset (ACDC layout).
        configs: the bundle's configs folder.
        epochs: the full search's budget (and LTH's maximum).
        retrain_epochs: epochs of every retrain arm.
        search_seeds: the searches' seeds (the replicate of a searched cell).
        n_random: random cells.
        seed: the fold's split seed, the baseline's seed and every retrain's seed (held fixed).
        split_fractions: patients per fold.
        search_overrides: overrides of every search (default: the demo's search settings).
        lth_overrides: extra overrides of the LTH search (rule values).
        controls: run the searched controls (random cuts, SGAS) besides the free truncated one.
        one_op: retrain the one-op cells.
        device: where every step runs.
    """

    out: Path
    raw: Path
    configs: Path
    epochs: int
    retrain_epochs: int
    search_seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    n_random: int = 15
    seed: int = 0
    split_fractions: dict[str, int] | None = None
    search_overrides: dict[str, Any] | None = None
    lth_overrides: dict[str, Any] | None = None
    controls: bool = True
    one_op: bool = True
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.out, self.raw, self.configs = Path(self.out), Path(self.raw), Path(self.configs)
        self.search_seeds = tuple(int(s) for s in self.search_seeds)
        self.logs = self.out / "logs"
        self.base = {**DEMO_OVERRIDES["common"], "device": self.device, "dataset_dir": str(self.raw),
                     "cache_dir": str(self.out / "cache"), "seed": self.seed, "split_seed": self.seed,
                     "split_fractions": self.split_fractions, "bundle_root": str(self.out)}  # fmt: skip
        self.search = {**DEMO_OVERRIDES["search"], **(self.search_overrides or {}), "epochs": int(self.epochs)}
        self.ops = tuple(self.search["ops"])
        self.cell = {"cell_channels": self.search.get("cell_channels", 32)}

    def spec(self) -> dict[str, Any]:
        """The fields a step's own process needs (JSON)."""
        keys = ("out", "raw", "configs", "epochs", "retrain_epochs", "search_seeds", "n_random", "seed",
                "split_fractions", "search_overrides", "lth_overrides", "controls", "one_op", "device")  # fmt: skip
        return {k: (str(v) if isinstance(v, Path) else v) for k in keys for v in [getattr(self, k)]}

    def tasks(self) -> dict[str, tuple[str, ...]]:
        return study_tasks(self.search_seeds, self.ops, self.n_random, self.controls, self.one_op)

    def _timed(self, name: str, config: str, overrides: dict[str, Any], output: Path) -> None:
        """Run a workflow unless it finished before (its time stamp is written after it returned)."""
        stamp = self.out / "stamps" / f"{name}_s.txt"
        if stamp.is_file() and output.is_file():
            return
        stamp.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        run_workflow(self.configs / config, "search" if name.startswith("search_") else "run",
                     self.logs / f"{name}.log", overrides)  # fmt: skip
        atomic_write(stamp, lambda tmp: Path(tmp).write_text(f"{time.perf_counter() - t}\n"))

    def run_task(self, name: str) -> None:
        """Run one step of the study (nothing when its output exists)."""
        b = self.out / "baseline"
        if name == "baseline":
            self._timed("baseline", "train.json", {**self.base, **DEMO_OVERRIDES["train"], "ckpt_dir": str(b),
                                                   "output_dir": str(b)}, b / "baseline.pt")  # fmt: skip
        elif name.startswith("search_"):
            self._search(name.removeprefix("search_"), b)
        elif name.startswith("retrain_"):
            self._retrain(name.removeprefix("retrain_"), b)
        else:
            raise ValueError(f"unknown study step {name!r}; the steps are {list(self.tasks())}")

    def _history(self, arm: str) -> dict[str, Any]:
        return json.loads((self.out / f"search_{arm}" / "search_history.json").read_text())

    def _search(self, arm: str, b: Path) -> None:
        kind, seed = arm_kind(arm)
        name = arm.rpartition("_s")[0]
        lth = f"lth_s{seed}"
        extra: dict[str, Any] = {"seed": seed}
        if name == "full":
            extra["prune"] = False
        elif name == "lth":
            extra.update(prune=True, **(self.lth_overrides or {}))
        elif name == "random_cuts":  # LTH's schedule with random choices
            extra.update(prune=True, **(self.lth_overrides or {}), **{"pruning#control": {
                "name": "random_cuts", "schedule": str(self.out / f"search_{lth}" / "search_history.json"),
                "seed": seed}})  # fmt: skip
        elif name == "sgas":  # one greedy decision every `every` arch steps, spread over LTH's arch steps
            history = self._history(lth)
            every = max(1, history["epochs"][-1]["arch_steps"] // decisions_needed(history))
            extra.update(prune=True, **{"pruning#interval": every, "pruning#control": {"name": "sgas", "every": every}})
        else:
            raise ValueError(f"unknown search arm {arm!r}")
        d = self.out / f"search_{arm}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(b / "baseline.pt", d / "baseline.pt")
        if any((d / "search_checkpoints").glob("*.pt")):  # an interrupted search goes on where it stopped
            extra["resume"] = True
        self._timed(f"search_{arm}", "search.json",
                    {**self.base, **self.search, **extra, "ckpt_dir": str(d), "output_dir": str(d)}, d / "genotype.json")

    def genotype_file(self, arm: str) -> Path | None:
        """Where an arm's cell is (None for the no-cell references)."""
        kind, _ = arm_kind(arm)
        if kind == "reference":
            return None
        name = arm.rpartition("_s")[0]
        if kind in ("full", "lth") or name in ("random_cuts", "sgas"):
            return self.out / f"search_{arm}" / "genotype.json"
        return self.out / "genotypes" / f"{arm}.json"  # one-op, random, truncated: written by their retrain step

    def _write_genotype(self, arm: str, path: Path) -> None:
        kind, seed = arm_kind(arm)
        if kind == "one_op":
            g = chain_genotype(arm.removeprefix("one_op_"))
        elif kind == "random":
            g = random_genotype_over(10_000 + int(arm.removeprefix("random_")), self.ops)
        else:  # truncated: the full search's cell at the arch step where LTH stopped
            lth_steps = self._history(f"lth_s{seed}")["epochs"][-1]["arch_steps"]
            g = truncated_genotype(self._history(f"full_s{seed}"), lth_steps)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_genotypes(path, [g], share_genotype=True, n_nodes=4)

    def _retrain(self, arm: str, b: Path) -> None:
        genotype = self.genotype_file(arm)
        if genotype is not None and not genotype.is_file():
            self._write_genotype(arm, genotype)
        d = self.out / f"retrain_{arm}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(b / "baseline.pt", d / "baseline.pt")
        gfile = str(genotype) if genotype else "none"
        o = {**self.base, **DEMO_OVERRIDES["retrain"], **self.cell, "epochs": self.retrain_epochs,
             "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": gfile}  # fmt: skip
        if arm in NO_CELL_MULTIPLIERS:
            o["backbone_lr_multiplier"] = NO_CELL_MULTIPLIERS[arm]
        self._timed(f"retrain_{arm}", "retrain.json", o, d / "model.pt")
        if not (d / "evaluation" / "iac" / "metrics_per_case.csv").is_file():
            ev = {**self.base, **self.cell, "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": gfile,
                  "models": "${'iac': (@network_def, @ckpt_dir + '/model.pt')}"}  # fmt: skip
            run_workflow(self.configs / "evaluate.json", "run", self.logs / f"evaluate_{arm}.log", ev)

    def collect(self) -> dict[str, Any]:
        """Every finished step's outputs in one document (``study.json``), the input of the report."""
        import torch

        def stamp(name: str) -> float | None:
            p = self.out / "stamps" / f"{name}_s.txt"
            return float(p.read_text()) if p.is_file() else None

        doc: dict[str, Any] = {"spec": self.spec(), "ops": list(self.ops), "searches": {}, "cells": []}
        batch = int(self.search.get("batch_size", 1))
        for t in self.tasks():
            d = self.out / t
            if t.startswith("search_") and (d / "genotype.json").is_file():
                doc["searches"][t.removeprefix("search_")] = {**search_summary(d, batch), "search_s": stamp(t)}
        for t in self.tasks():
            d = self.out / t
            csv = d / "evaluation" / "iac" / "metrics_per_case.csv"
            if not t.startswith("retrain_") or not csv.is_file():
                continue
            arm = t.removeprefix("retrain_")
            kind, seed = arm_kind(arm)
            genotype = self.genotype_file(arm)
            state = torch.load(d / "model.pt", map_location="cpu", weights_only=True)
            state = state.get("model", state)
            per_patient = per_patient_metrics(csv)
            doc["cells"].append({
                "kind": kind, "name": arm, "seed": seed,
                "mean_dice": sum(p["dice"] for p in per_patient.values()) / len(per_patient),
                "genotype": (None if genotype is None else
                             Genotype.from_dict(json.loads(genotype.read_text())["genotypes"][0]).to_dict()),
                "cell_parameters": int(sum(v.numel() for k, v in state.items() if k.startswith("cells."))),
                "cell_gamma": cell_gammas(d / "model.pt"),
                "retrain_s": stamp(t),
                "per_patient": per_patient,
            })  # fmt: skip
        doc["baseline_s"] = stamp("baseline")
        write_json_atomic(self.out / "study.json", doc, indent=1)
        return doc


def _start_step(study: CellStudy, name: str, slot: Any) -> tuple[Any, Path]:
    """Launch one step in its own process (``python -m iac_components.evidence.task``)."""
    import os
    import subprocess
    import sys

    spec = {**study.spec(), "study": "cells", "device": slot.device, "task": name, "threads": slot.threads}
    study.logs.mkdir(parents=True, exist_ok=True)
    log = study.logs / f"task_{name}.out"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "iac_components.evidence.task", json.dumps(spec)],
                                stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **slot.env})  # fmt: skip
    return proc, log


def run_study(study: CellStudy, devices: str = "cpu", jobs: int = 1, threads: int | None = None,
              only: str | None = None) -> dict[str, Any]:
    """Run the study's steps (each resumable), side by side on ``jobs`` processes per device, then
    :meth:`CellStudy.collect`. ``only``: a comma-separated list of steps (with what they need) to run now."""
    import torch

    from iac_components.evidence.schedule import device_slots, run_graph, topological

    slots = device_slots(devices, jobs, threads)
    tasks = study.tasks()
    if only:
        wanted, todo = set(), [t.strip() for t in only.split(",") if t.strip()]
        unknown = [t for t in todo if t not in tasks]
        if unknown:
            raise ValueError(f"unknown step(s) {unknown}; the steps are {list(tasks)}")
        while todo:
            t = todo.pop()
            if t not in wanted:
                wanted.add(t)
                todo.extend(tasks[t])
        tasks = {t: needs for t, needs in tasks.items() if t in wanted}
    if len(slots) == 1 and not slots[0].env:
        torch.set_num_threads(int(slots[0].threads))
        for name in topological(tasks):
            study.run_task(name)
    else:
        run_graph(tasks, lambda key, slot: _start_step(study, key, slot), slots)
    return study.collect()
