"""The benchmark's report: finished seeds pooled into paired comparisons, agreement beside chance, honest cost.

The paired unit is (seed, test patient): every arm of a seed is evaluated on the same test patients, and each
seed draws its own folds, so a patient can be a test patient of more than one seed (``distinct_patients``
says how many there are). ``lth_vs_full.json`` has a stable shape a script can read::

    {"comparisons": {"full_vs_no_cells": {...}, "full_vs_random": {...}, "lth_vs_full": {..., "p_tost": ...},
                     "lth_vs_no_cells", "truncated_vs_full", "lth_vs_truncated", "random_vs_no_cells",
                     "full_vs_random_each": [{...} per random cell]},
     "agreement": {"lth_vs_full", "full_vs_full", "truncated_vs_full", "random_cuts_vs_full", "sgas_vs_full",
                   "chance"} (each edges / inputs / nodes),
     "speedup": {"per_seed", "mean", "full_search_epochs", "ops_epochs_ratio_per_seed", "cell_macs_ratio_per_seed",
                 "epoch_s", "search_s", "arch_steps"},
     "pipeline_cost_s": {...}, "units": {...}, "arms": {...}, "seeds": [...], "command", "machine", "config"}

each comparison with ``mean_diff``, ``ci95`` [lo, hi] (bootstrap), ``p_wilcoxon``, ``n_pairs``, per-class Dice
and HD95 differences.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from iac_components.evidence.genotypes import chance_agreement, genotype_agreement
from iac_components.genotype import Genotype
from iac_components.stats import paired_comparison, tost_paired

__all__ = ["pooled_report", "render_markdown"]

KEYS = ("edges", "inputs", "nodes")
#: The equal-budget controls (each an arm when its seeds have it): stopping early, random cuts on LTH's
#: schedule, SGAS-style greedy decisions over LTH's arch steps.
CONTROL_ARMS = ("truncated", "random_cuts", "sgas")
SEARCHES = ("full", "lth", "random_cuts", "sgas")


def _units(results: list[dict[str, Any]], arm: str, what: str = "dice") -> dict[str, float]:
    """``{"seed<S>/<patient>": value}`` of one arm over the finished seeds."""
    out = {}
    for r in results:
        for p, m in r.get("arms", {}).get(arm, {}).get("per_patient", {}).items():
            v = m[what] if what in m else None
            if v is not None:
                out[f"seed{r['seed']}/{p}"] = float(v)
    return out


def _class_units(results: list[dict[str, Any]], arm: str, cls: str) -> dict[str, float]:
    return {f"seed{r['seed']}/{p}": m["dice_per_class"][cls] for r in results
            for p, m in r.get("arms", {}).get(arm, {}).get("per_patient", {}).items()}  # fmt: skip


def _compare(results: list[dict[str, Any]], a: str | dict[str, float], b: str | dict[str, float]) -> dict[str, Any]:
    ua = _units(results, a) if isinstance(a, str) else a
    ub = _units(results, b) if isinstance(b, str) else b
    c = paired_comparison(ua, ub)
    out = {"mean_diff": c["mean_diff"], "ci95": c["ci95"], "p_wilcoxon": c["wilcoxon_p"], "n_pairs": c["n_patients"],
           "mean_a": c["mean_a"], "mean_b": c["mean_b"], "wins": c["wins"], "losses": c["losses"]}  # fmt: skip
    if isinstance(a, str) and isinstance(b, str):
        classes = sorted({k for r in results for m in r["arms"][a]["per_patient"].values() for k in m["dice_per_class"]})
        out["per_class_mean_diff"] = {k: paired_comparison(_class_units(results, a, k), _class_units(results, b, k))
                                      ["mean_diff"] for k in classes}  # fmt: skip
        ha, hb = _units(results, a, "hd95"), _units(results, b, "hd95")
        if set(ha) & set(hb):
            h = paired_comparison(ha, hb)
            out["hd95_mean_diff"], out["hd95_ci95"] = h["mean_diff"], h["ci95"]
    return out


def _spread(values: list[float]) -> dict[str, float]:
    """Median and interquartile range of a list of timings."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": len(values)}


def _mean_agreement(pairs: list[tuple[Genotype, Genotype]]) -> dict[str, float] | None:
    if not pairs:
        return None
    a = [genotype_agreement(x, y) for x, y in pairs]
    return {k: float(np.mean([v[k] for v in a])) for k in KEYS} | {"n_pairs": len(pairs)}


def _macs_ratio(result: dict[str, Any]) -> float | None:
    full, lth = (result["searches"][n].get("cell_macs_per_epoch") for n in ("full", "lth"))
    return float(sum(full) / sum(lth)) if full and lth else None


def _processes(config: dict[str, Any], machine: dict[str, Any]) -> str:
    """How the steps ran: one process, or side by side (their wall-clock measured while sharing the machine)."""
    jobs, devices = int(config.get("jobs", 1)), str(config.get("devices", "cpu"))
    threads = config.get("threads_per_process") or machine.get("torch_threads")
    if jobs == 1 and devices == "cpu":
        return f"Steps run one after another in one process ({threads} torch threads).  "
    return (f"Steps run side by side: {jobs} process(es) per device on {devices}, {threads} torch thread(s) each; "
            "every wall-clock was measured while other steps shared the machine.  ")


def pooled_report(results: list[dict[str, Any]], margin: float = 0.005) -> dict[str, Any]:
    """Pool the finished seeds (each a :func:`~iac_components.evidence.runner.run_seed` result)."""
    results = [r for r in results if r.get("arms")]
    report: dict[str, Any] = {"seeds": [r["seed"] for r in results], "comparisons": {}, "agreement": {}}
    if not results:
        return report
    arms = [a for a in results[0]["arms"] if all(a in r["arms"] for r in results)]
    randoms = [a for a in arms if a.startswith("random_") and a[len("random_"):].isdigit()]  # not random_cuts
    # the random cells of a seed, averaged per patient: the distribution's mean as one arm
    random_mean = {u: float(np.mean([_units(results, a)[u] for a in randoms])) for u in _units(results, randoms[0])} if randoms else {}
    comp = report["comparisons"]
    comp["full_vs_no_cells"] = _compare(results, "full", "no_cells")
    if randoms:
        comp["full_vs_random"] = _compare(results, _units(results, "full"), random_mean)
        comp["full_vs_random_each"] = [{"arm": a, **_compare(results, "full", a)} for a in randoms]
        comp["random_vs_no_cells"] = _compare(results, random_mean, _units(results, "no_cells"))
    comp["lth_vs_full"] = _compare(results, "lth", "full")
    tost = tost_paired(_units(results, "lth"), _units(results, "full"), margin=margin)
    comp["lth_vs_full"].update(p_tost=tost["p_tost"], tost_margin=margin, ci90=tost["ci90"], equivalent=tost["equivalent"])
    comp["lth_vs_no_cells"] = _compare(results, "lth", "no_cells")
    for control in CONTROL_ARMS:
        if control in arms:
            comp[f"{control}_vs_full"] = _compare(results, control, "full")
            comp[f"lth_vs_{control}"] = _compare(results, "lth", control)

    def g(r: dict[str, Any], name: str) -> Genotype:
        return Genotype.from_dict(r["searches"][name]["genotype"])

    full_pairs = []
    for r in results:  # full searches of one seed that differ only in the search seed
        fulls = [g(r, n) for n in r["searches"] if n == "full" or n.startswith("full_seed")]
        full_pairs += list(combinations(fulls, 2))
    report["agreement"] = {
        "lth_vs_full": _mean_agreement([(g(r, "lth"), g(r, "full")) for r in results]),
        "lth_vs_full_per_seed": {str(r["seed"]): genotype_agreement(g(r, "lth"), g(r, "full")) for r in results},
        "full_vs_full": _mean_agreement(full_pairs),
        "truncated_vs_full": _mean_agreement([(Genotype.from_dict(r["truncated"]["genotype"]), g(r, "full")) for r in results]),
        **{f"{c}_vs_full": _mean_agreement([(g(r, c), g(r, "full")) for r in results])
           for c in CONTROL_ARMS[1:] if all(c in r["searches"] for r in results)},
        "chance": chance_agreement(),
    }
    per_seed = [r["searches"]["full"]["wall_clock_s"] / r["searches"]["lth"]["wall_clock_s"] for r in results]
    ops = [sum(r["searches"]["full"]["ops_alive"]) / sum(r["searches"]["lth"]["ops_alive"]) for r in results]
    report["speedup"] = {
        "per_seed": per_seed,
        "mean": float(np.mean(per_seed)),
        "full_search_epochs": [r["searches"]["full"]["epochs"] for r in results],
        "lth_epochs": [r["searches"]["lth"]["epochs"] for r in results],
        "lth_decided": [r["searches"]["lth"]["decided_at"] is not None for r in results],
        # machine-independent proxy: ops alive summed over the search's epochs (the full search keeps all)
        "ops_epochs_ratio_per_seed": ops,
        # the same with the cells' forward multiply-accumulates per epoch (None for results without the count)
        "cell_macs_ratio_per_seed": [_macs_ratio(r) for r in results],
        # the spread of the timings: every epoch of a search is a repeat of its step at that size
        "epoch_s": {name: [_spread(r["searches"][name]["epoch_wall_clock_s"]) for r in results]
                    for name in SEARCHES if all(name in r["searches"] for r in results)},
        "search_s": {name: [r["searches"][name]["wall_clock_s"] for r in results]
                     for name in SEARCHES if all(name in r["searches"] for r in results)},
        "arch_steps": {name: [r["searches"][name]["arch_steps"] for r in results]
                       for name in SEARCHES if all(name in r["searches"] for r in results)},
    }
    report["pipeline_cost_s"] = {
        str(r["seed"]): {
            "baseline": r["stages_s"].get("baseline"),
            "lth_search": r["searches"]["lth"]["wall_clock_s"],
            "full_search": r["searches"]["full"]["wall_clock_s"],
            "retrain": r["stages_s"].get("retrain_lth"),
        }
        for r in results
    }
    units = _units(results, "no_cells")
    report["units"] = {"pairs": len(units), "distinct_patients": len({u.split("/", 1)[1] for u in units})}
    report["arms"] = {
        a: {"mean_dice": float(np.mean(list(_units(results, a).values()))),
            "largest_gamma_per_seed": [max(r["arms"][a]["cell_gamma"], default=0.0) for r in results]}
        for a in arms
    }  # fmt: skip
    return report


def _row(name: str, c: dict[str, Any]) -> str:
    tost = f" | {c['p_tost']:.3g}" if "p_tost" in c else " | "
    return (f"| {name} | {c['mean_a']:.4f} vs {c['mean_b']:.4f} | {c['mean_diff']:+.4f} | {c['ci95'][0]:+.4f}..{c['ci95'][1]:+.4f} | "
            f"{c['p_wilcoxon']:.3g}{tost} | {c['n_pairs']} |")  # fmt: skip


def _classes(comparisons: dict[str, Any]) -> list[str]:
    return sorted({k for v in comparisons.values() if isinstance(v, dict) for k in v.get("per_class_mean_diff", {})})


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: the positive control first, then LTH against the full search and the controls."""
    m = report.get("machine", {})
    lines = [
        "# Evidence: do the cells help, and does IAC-LTH match the full search? (synthetic ACDC with headroom)",
        "",
        f"Command: `{report.get('command', '')}`  ",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')}{', ' + m['gpu'] if m.get('gpu') else ', CPU only'}.  ",
        _processes(report.get("config", {}), m),
        f"Seeds finished: {report['seeds']}.",
    ]
    c = report.get("comparisons", {})
    if not c:
        return "\n".join(lines + ["", "No seed has finished."]) + "\n"
    lines += _md_comparisons(report, c)
    lines += _md_agreement(report)
    lines += _md_cost(report)
    return "\n".join(lines) + "\n"


def _md_comparisons(report: dict[str, Any], c: dict[str, Any]) -> list[str]:
    """The paired unit, the positive control, LTH against the full search and the controls, per class and HD95."""
    u = report["units"]
    lines: list[str] = []
    lines += [
        f"Paired unit: (seed, test patient), {u['pairs']} pairs, {u['distinct_patients']} distinct patients; mean "
        "Dice over the foreground classes per patient; bootstrap 95 % CI; Wilcoxon signed-rank; TOST (paired t) at "
        f"±{report.get('config', {}).get('margin', 0.005)} Dice for LTH vs full.",
        "",
        "## Positive control: do retrained cells beat no cells and random cells?",
        "",
        "| comparison | mean Dice a vs b | mean diff | 95% CI | Wilcoxon p | TOST p | pairs |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in ("full_vs_no_cells", "full_vs_random", "random_vs_no_cells"):
        if k in c:
            lines.append(_row(k.replace("_", " "), c[k]))
    for e in c.get("full_vs_random_each", []):
        lines.append(_row(f"full vs {e['arm'].replace('_', ' ')}", e))
    lines += ["", "## IAC-LTH against the full search and the controls", "",
              "| comparison | mean Dice a vs b | mean diff | 95% CI | Wilcoxon p | TOST p | pairs |", "|---|---|---|---|---|---|---|"]
    for k in ("lth_vs_full", "lth_vs_no_cells") + tuple(f"{x}_{y}" for ctl in CONTROL_ARMS
                                                         for x, y in ((ctl, "vs_full"), ("lth_vs", ctl))):  # fmt: skip
        if k in c:
            lines.append(_row(k.replace("_", " "), c[k]))
    lines += ["", "Per class (mean Dice difference a - b) and HD95 (mean difference in mm, 95 % CI):", "",
              "| comparison | " + " | ".join(_classes(c)) + " | HD95 diff | HD95 95% CI |", "|---|" + "---|" * (len(_classes(c)) + 2)]
    for k, v in c.items():
        if isinstance(v, dict) and "per_class_mean_diff" in v:
            h = v.get("hd95_ci95")
            lines.append(f"| {k.replace('_', ' ')} | " + " | ".join(f"{v['per_class_mean_diff'][x]:+.4f}" for x in _classes(c))
                         + (f" | {v['hd95_mean_diff']:+.2f} | {h[0]:+.2f}..{h[1]:+.2f} |" if h else " | - | - |"))
    return lines


def _md_agreement(report: dict[str, Any]) -> list[str]:
    """Genotype agreement with the full search (and between full searches), beside chance."""
    lines: list[str] = []
    a = report["agreement"]
    lines += ["", "| genotype agreement (edges / inputs / nodes) | value | pairs |", "|---|---|---|"]
    for k in ("lth_vs_full", "truncated_vs_full", "random_cuts_vs_full", "sgas_vs_full", "full_vs_full", "chance"):
        v = a.get(k)
        if v:
            lines.append(f"| {k.replace('_', ' ')}{' (two random cells, exact)' if k == 'chance' else ''} | "
                         + " / ".join(f"{v[x]:.3f}" for x in KEYS) + f" | {v.get('n_pairs', '-')} |")
    return lines


def _md_cost(report: dict[str, Any]) -> list[str]:
    """Speed-up, search cost per seed, pipeline cost, and each arm's Dice and largest γ."""
    lines: list[str] = []
    s = report["speedup"]
    lines += [
        "",
        "Speed-up of the search (full search's wall-clock / LTH's, same machine, each to its end): per seed "
        + ", ".join(f"{x:.2f}x" for x in s["per_seed"]) + f"; mean {s['mean']:.2f}x; full search "
        + ", ".join(map(str, s["full_search_epochs"])) + " epochs, LTH " + ", ".join(map(str, s["lth_epochs"]))
        + " epochs (decided: " + ", ".join("yes" if d else "no" for d in s["lth_decided"]) + "). Ops-alive x epochs "
        "ratio (machine-independent): " + ", ".join(f"{x:.2f}" for x in s["ops_epochs_ratio_per_seed"]) + "; the "
        "cells' forward multiply-accumulates over the search, full / LTH: "
        + ", ".join("-" if x is None else f"{x:.2f}" for x in s.get("cell_macs_ratio_per_seed", [])) + ".",
        "",
        ("Search cost per seed (wall-clock in s; arch steps; one epoch's median [interquartile range] over the "
         "search's epochs, in s):"),
        "",
        "| seed | " + " | ".join(f"{n} search" for n in s.get("search_s", {})) + " |",
        "|---|" + "---|" * len(s.get("search_s", {})),
    ]
    for n_seed, seed in enumerate(report["seeds"]):
        lines.append(f"| {seed} | " + " | ".join(
            f"{s['search_s'][n][n_seed]:.0f} s, {s['arch_steps'][n][n_seed]} steps, epoch {e['median']:.1f} "
            f"[{e['q1']:.1f}..{e['q3']:.1f}]" for n in s["search_s"] for e in [s["epoch_s"][n][n_seed]]) + " |")
    lines += [
        "",
        "| seed | baseline (s) | LTH search (s) | full search (s) | retrain (s) |",
        "|---|---|---|---|---|",
    ]
    for seed, p in report["pipeline_cost_s"].items():
        lines.append(f"| {seed} | " + " | ".join(f"{p[k]:.0f}" if p[k] is not None else "-" for k in
                                                 ("baseline", "lth_search", "full_search", "retrain")) + " |")
    lines += ["", "| arm | mean test Dice | largest cell γ per seed |", "|---|---|---|"]
    for arm, v in report["arms"].items():
        lines.append(f"| {arm} | {v['mean_dice']:.4f} | " + ", ".join(f"{x:.4f}" for x in v["largest_gamma_per_seed"]) + " |")
    return lines
