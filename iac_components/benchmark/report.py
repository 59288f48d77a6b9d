"""The benchmark's report: the seeds pooled into paired tests, and the markdown rendering.

Reported (JSON + markdown): wall-clock of each search and the speed-up (warm-up and every epoch counted for
both; retraining apart), epochs and arch steps, ops alive per epoch; genotype agreement LTH vs full per edge and
per node, beside full vs full across seeds (the noise floor); test Dice per arm (mean, per class) with a
Wilcoxon signed-rank test and a bootstrap 95 % CI per patient for LTH vs full and each arm vs the baseline; the
rule calibration sweep (:mod:`iac_components.benchmark.calibration`) when the report has one.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from iac_components.benchmark.genotypes import genotype_agreement
from iac_components.genotype import Genotype
from iac_components.stats import paired_comparison

__all__ = ["ARMS", "render_markdown", "summarize_seeds"]

ARMS = ("full", "lth", "random", "no_cells")
"""The retrain arms of every seed, in report order."""


def summarize_seeds(report: dict[str, Any]) -> dict[str, Any]:
    """Pool the seeds: the paired unit is (seed, test patient); every arm of a seed has the same test patients."""
    seeds = report["seeds"]
    if not seeds:
        return report
    pooled: dict[str, dict[str, float]] = {}
    for arm in ARMS:
        units = {f"seed{seed}/{p}": v for seed, s in seeds.items() if arm in s.get("arms", {})
                 for p, v in s["arms"][arm]["per_patient"].items()}
        if units:
            pooled[arm] = units
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
        "speedup_vs_200_epochs_extrapolated": {
            "per_seed": [s["speedup_vs_200_epochs_extrapolated"] for s in seeds.values() if "speedup" in s],
            "mean": float(np.mean([s["speedup_vs_200_epochs_extrapolated"] for s in seeds.values() if "speedup" in s])),
        },
        "agreement_lth_vs_full": {k: float(np.mean([s["agreement_lth_vs_full"][k] for s in seeds.values()
                                                    if "agreement_lth_vs_full" in s])) for k in ("edges", "inputs", "nodes")},
        "agreement_full_vs_full": {k: float(np.mean([f[k] for f in floor])) for k in ("edges", "inputs", "nodes")} if floor else None,
        "paired_units": {"pairs": len(pooled.get("no_cells", {})),
                         "distinct_patients": len({u.split("/", 1)[1] for u in pooled.get("no_cells", {})})},
        "mean_dice": {arm: float(np.mean([s["arms"][arm]["mean_dice"] for s in seeds.values() if arm in s.get("arms", {})]))
                      for arm in ARMS if any(arm in s.get("arms", {}) for s in seeds.values())},
        "tests": tests,
    }
    return report


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: per-seed searches, test Dice per arm, paired tests, epoch cost, calibration sweep."""
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
            f"Mean speed-up {s['speedup']['mean']:.2f}x against the {report['config']['epochs']}-epoch full search "
            f"measured here; {s['speedup_vs_200_epochs_extrapolated']['mean']:.1f}x against a 200-epoch full search "
            "(extrapolated: the full search's mean epoch wall-clock x 200). Genotype agreement LTH vs full (edges / inputs / nodes): "
            + " / ".join(f"{s['agreement_lth_vs_full'][k]:.2f}" for k in ("edges", "inputs", "nodes"))
            + ("; full vs full across seeds (noise floor): " + " / ".join(f"{floor[k]:.2f}" for k in ("edges", "inputs", "nodes"))
               if floor else ""),
            "",
            "| arm | mean test Dice (over seeds) | per seed | largest cell γ per seed |",
            "|---|---|---|---|",
        ]
        for arm, v in s["mean_dice"].items():
            rs = [r["arms"][arm] for r in report["seeds"].values() if arm in r.get("arms", {})]
            per = ", ".join(f"{a['mean_dice']:.4f}" for a in rs)
            gam = ", ".join(f"{max(map(abs, a['cell_gamma'])):.4f}" if a.get("cell_gamma") else "-" for a in rs)
            lines.append(f"| {arm} | {v:.4f} | {per} | {gam} |")
        units = s.get("paired_units", {})
        lines += ["", f"Paired tests: one pair per (seed, test patient) ({units.get('pairs')} pairs, "
                      f"{units.get('distinct_patients')} distinct patients; each seed draws its own folds).", "",
                  "| comparison | mean diff | 95% CI (bootstrap) | Wilcoxon p | pairs |", "|---|---|---|---|---|"]
        for name, t in s["tests"].items():
            lines.append(f"| {name.replace('_', ' ')} | {t['mean_diff']:+.4f} | {t['ci95'][0]:+.4f}..{t['ci95'][1]:+.4f} | "
                         f"{t['wilcoxon_p']:.3g} | {t['n_patients']} |")
        lines += _epoch_cost_lines(report)
    sweep = report.get("calibration_sweep")
    if sweep:
        lines += ["", f"## Calibration sweep (replayed on seed {report['config']['seeds'][0]}'s full search, "
                      f"{sweep['total_arch_steps']} arch steps; {len(sweep['rows'])} rules)", "",
                  "The rule replayed on the full search's recorded checks (exact for each edge's first cut, an "
                  "approximation after it). Defaults: " + ", ".join(f"{k}={v}" for k, v in sweep["defaults"].items()),
                  "", "| epsilon | window | patience | margin | keep | replay decided at arch step | ops alive at the end "
                  "| agreement edges / nodes | safe first cuts |", "|---|---|---|---|---|---|---|---|---|"]
        default = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in sweep["defaults"].items()}
        is_default = lambda r: all(r[k] == v for k, v in default.items())  # noqa: E731
        rows = sorted(sweep["rows"], key=lambda r: (r["ops_alive_end"], r["decided_step"] or 1e9, -r["agreement_edges"]))
        shown = rows[:20] + [r for r in rows[20:] if is_default(r)]
        for r in shown:
            safe = "" if r["safe_first_cuts"] is None else f"{r['safe_first_cuts']:.2f}"
            mark = " **(default)**" if is_default(r) else ""
            lines.append(f"| {r['epsilon']:g} | {r['window']} | {r['patience']} | {r['margin']:g} | {r['keep_schedule']}{mark} | "
                         f"{r['decided_step'] or 'not decided'} | {r['ops_alive_end']} | "
                         f"{r['agreement_edges']:.2f} / {r['agreement_nodes']:.2f} | {safe} |")
        lines.append(f"\n(the first 20 of {len(rows)} rows, fewest ops alive and earliest decision first, and the default; "
                     "all rows in the JSON)")
    return "\n".join(lines) + "\n"


def _epoch_cost_lines(report: dict[str, Any]) -> list[str]:
    """Pruning makes epochs cheaper: each LTH search's epoch wall-clock against its ops alive."""
    lines = ["", "## Epoch wall-clock against ops alive (LTH searches; the full search keeps 112 ops)", "",
             "| seed | full search: median epoch (s) | LTH, epoch by epoch: ops alive at its end / its wall-clock (s) |", "|---|---|---|"]
    for seed, r in report["seeds"].items():
        if "lth" not in r:
            continue
        full = float(np.median(r["full"]["epoch_wall_clock_s"][1:] or r["full"]["epoch_wall_clock_s"]))
        lth = ", ".join(f"{o}/{t:.1f}" for o, t in zip(r["lth"]["ops_alive"], r["lth"]["epoch_wall_clock_s"]))
        lines.append(f"| {seed} | {full:.1f} | {lth} |")
    lines += ["", "(epoch 1 is the warm-up without arch steps; the last epoch stops when the cell is decided)"]
    return lines
