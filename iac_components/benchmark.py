"""``iac benchmark``: the full 200-epoch-style search against IAC-LTH, with controls and paired statistics.

For each seed, on the same data and folds: train the baseline U-Net; run the full search (the pruning handler
in observe-only mode, every epoch) and the IAC-LTH search; retrain, with the same budget and recipe, the full
search's genotype, the LTH genotype, a random genotype (does the search matter?) and no cells at all (the
baseline fine-tuned as long: do cells matter?); evaluate every arm per patient on the test patients in the
original grid. Everything runs through the bundle's own configs (``acdc_iac`` by default), like the demo.

Reported (JSON + markdown): wall-clock of each search and the speed-up (warm-up and every epoch counted for
both; retraining apart), epochs and arch steps, ops alive per epoch; genotype agreement LTH vs full per edge and
per node, beside full vs full across seeds (the noise floor); test Dice per arm (mean, per class) with a
Wilcoxon signed-rank test and a bootstrap 95 % CI per patient for LTH vs full and each arm vs the baseline.
"""

from __future__ import annotations

import csv
import json
import platform
import random
import shutil
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.demo import DEMO_OVERRIDES, _run, find_bundle
from iac_components.genotype import Genotype, load_genotypes, save_genotypes
from iac_components.ops import DEFAULT_OPS
from iac_components.stats import paired_comparison
from iac_components.utils import write_json_atomic

__all__ = ["genotype_agreement", "random_genotype", "run_benchmark"]

ARMS = ("full", "lth", "random", "no_cells")


def random_genotype(seed: int, n_nodes: int = 4, ops: tuple[str, ...] = DEFAULT_OPS) -> Genotype:
    """A uniformly random cell: per node two distinct earlier states, each with a random op."""
    rng = random.Random(seed)
    nodes = []
    for j in range(n_nodes):
        inputs = sorted(rng.sample(range(j + 2), 2))
        nodes.append(tuple((i, rng.choice(ops)) for i in inputs))
    return Genotype(tuple(nodes))


def genotype_agreement(a: Genotype, b: Genotype) -> dict[str, float]:
    """How much two cells agree: ``edges``, the fraction of ``a``'s edges (input and op) that ``b`` has too;
    ``inputs``, the same ignoring ops; ``nodes``, the fraction of nodes with the same two inputs."""
    ea, eb = set(a.edges()), set(b.edges())
    ia = {(i, j) for i, j, _ in ea}
    ib = {(i, j) for i, j, _ in eb}
    nodes = [sorted(i for i, _ in x) == sorted(i for i, _ in y) for x, y in zip(a.nodes, b.nodes)]
    return {"edges": len(ea & eb) / len(ea), "inputs": len(ia & ib) / len(ia), "nodes": float(np.mean(nodes))}


def _per_patient(csv_path: Path) -> dict[str, float]:
    per: dict[str, list[float]] = {}
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            dice = [float(v) for k, v in row.items() if k.startswith("dice_") and v != ""]
            per.setdefault(row["patient_id"], []).append(float(np.mean(dice)))
    return {p: float(np.mean(v)) for p, v in per.items()}


def _machine() -> dict[str, Any]:
    import os

    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version()}


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
    """Run the benchmark; see the module docstring. Returns the report (also ``<results>.json`` / ``.md``).

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
        "machine": _machine(),
        "config": {"bundle": bundle, "seeds": list(seeds), "epochs": epochs, "retrain_epochs": retrain_epochs,
                   "dataset_dir": str(raw), "common": common, "search": search, "lth": lth_overrides or {},
                   "retrain": DEMO_OVERRIDES["retrain"] | {"epochs": retrain_epochs}},
        "seeds": {},
    }
    for seed in seeds:
        run = out / f"seed{seed}"
        base = {**common, "seed": seed}
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
                o = {**base, **DEMO_OVERRIDES["retrain"], "epochs": retrain_epochs, "ckpt_dir": str(d), "output_dir": str(d),
                     "genotype_file": str(genotype) if genotype else "none"}
                t = _run(configs / "retrain.json", "run", logs / f"retrain_{arm}.log", o)
                ev = {**base, **cell, "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": str(genotype) if genotype else "none",
                      "models": "${'iac': (@network_def, @ckpt_dir + '/model.pt')}"}
                _run(configs / "evaluate.json", "run", logs / f"evaluate_{arm}.log", ev)
                (d / "retrain_s.txt").write_text(f"{t}\n")
            summary = json.loads((d / "evaluation" / "iac" / "metrics_summary.json").read_text())
            r["arms"][arm] = {
                "retrain_s": float((d / "retrain_s.txt").read_text()),
                "mean_dice": summary["mean_dice"],
                "per_class": {k: v["dice"]["mean"] for k, v in summary["classes"].items()},
                "per_patient": _per_patient(d / "evaluation" / "iac" / "metrics_per_case.csv"),
            }
        report["seeds"][str(seed)] = r
        write_json_atomic(Path(f"{results}.json"), _finish(report), indent=1)
    report = _finish(report)
    write_json_atomic(Path(f"{results}.json"), report, indent=1)
    Path(f"{results}.md").write_text(_markdown(report))
    print(_markdown(report))
    return report


def _finish(report: dict[str, Any]) -> dict[str, Any]:
    """Pool the seeds: per arm, each patient's Dice averaged over seeds; paired tests on those."""
    seeds = report["seeds"]
    if not seeds:
        return report
    pooled: dict[str, dict[str, float]] = {}
    for arm in ARMS:
        per = [s["arms"][arm]["per_patient"] for s in seeds.values() if arm in s.get("arms", {})]
        if per:
            patients = sorted(set.intersection(*(set(p) for p in per)))
            pooled[arm] = {p: float(np.mean([x[p] for x in per])) for p in patients}
    tests = {}
    if "lth" in pooled and "full" in pooled:
        tests["lth_vs_full"] = paired_comparison(pooled["lth"], pooled["full"])
    for arm in ("full", "lth", "random"):
        if arm in pooled and "no_cells" in pooled:
            tests[f"{arm}_vs_no_cells"] = paired_comparison(pooled[arm], pooled["no_cells"])
    fulls = [Genotype.from_dict(s["full"]["genotype"]) for s in seeds.values() if "full" in s]
    floor = [genotype_agreement(a, b) for a, b in combinations(fulls, 2)]
    report["summary"] = {
        "speedup": {"per_seed": [s["speedup"] for s in seeds.values() if "speedup" in s],
                    "mean": float(np.mean([s["speedup"] for s in seeds.values() if "speedup" in s]))},
        "agreement_lth_vs_full": {k: float(np.mean([s["agreement_lth_vs_full"][k] for s in seeds.values()
                                                    if "agreement_lth_vs_full" in s])) for k in ("edges", "inputs", "nodes")},
        "agreement_full_vs_full": {k: float(np.mean([f[k] for f in floor])) for k in ("edges", "inputs", "nodes")} if floor else None,
        "mean_dice": {arm: float(np.mean([s["arms"][arm]["mean_dice"] for s in seeds.values() if arm in s.get("arms", {})]))
                      for arm in ARMS if any(arm in s.get("arms", {}) for s in seeds.values())},
        "tests": tests,
    }
    return report


def _markdown(report: dict[str, Any]) -> str:
    s = report.get("summary", {})
    m = report["machine"]
    lines = [
        "# Full search vs IAC-LTH (synthetic ACDC layout)" if "raw" in report["config"]["dataset_dir"] else "# Full search vs IAC-LTH",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), CPU only.  ",
        f"Full search: {report['config']['epochs']} epochs, prune off (observe-only handler); LTH: the same with the JSD "
        "rule; wall-clock counts every epoch of each search, warm-up included; retraining is reported apart.",
        "",
        "| seed | full: s / epochs / arch steps | LTH: s / epochs / arch steps | speed-up | LTH decided | agreement edges / inputs / nodes |",
        "|---|---|---|---|---|---|",
    ]
    for seed, r in report["seeds"].items():
        if "speedup" not in r:
            continue
        f, lt, a = r["full"], r["lth"], r["agreement_lth_vs_full"]
        lines.append(
            f"| {seed} | {f['wall_clock_s']:.0f} / {f['epochs']} / {f['arch_steps']} | {lt['wall_clock_s']:.0f} / "
            f"{lt['epochs']} / {lt['arch_steps']} | {r['speedup']:.2f}x | {'yes' if lt['decided_at'] else 'no'} | "
            f"{a['edges']:.2f} / {a['inputs']:.2f} / {a['nodes']:.2f} |"
        )
    if s:
        floor = s.get("agreement_full_vs_full")
        lines += [
            "",
            f"Mean speed-up {s['speedup']['mean']:.2f}x. Genotype agreement LTH vs full (edges / inputs / nodes): "
            + " / ".join(f"{s['agreement_lth_vs_full'][k]:.2f}" for k in ("edges", "inputs", "nodes"))
            + (f"; full vs full across seeds (noise floor): " + " / ".join(f"{floor[k]:.2f}" for k in ("edges", "inputs", "nodes"))
               if floor else ""),
            "",
            "| arm | mean test Dice (over seeds) | per seed |",
            "|---|---|---|",
        ]
        for arm, v in s["mean_dice"].items():
            per = ", ".join(f"{r['arms'][arm]['mean_dice']:.4f}" for r in report["seeds"].values() if arm in r.get("arms", {}))
            lines.append(f"| {arm} | {v:.4f} | {per} |")
        lines += ["", "| comparison (per patient, Dice averaged over seeds) | mean diff | 95% CI | Wilcoxon p | patients |",
                  "|---|---|---|---|---|"]
        for name, t in s["tests"].items():
            lines.append(f"| {name.replace('_', ' ')} | {t['mean_diff']:+.4f} | {t['ci95'][0]:+.4f}..{t['ci95'][1]:+.4f} | "
                         f"{t['wilcoxon_p']:.3g} | {t['n_patients']} |")
    return "\n".join(lines) + "\n"
