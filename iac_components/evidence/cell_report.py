"""The cell study's report: the cell as the unit, a known answer for the search, and equivalence margins stated
against what searching is measured to be worth.

Input: one or more :meth:`~iac_components.evidence.cells.CellStudy.collect` documents (``study.json``). Output
(``search_matters.json``), whatever the figures say::

    {"cells": [{"kind": "one_op" | "random" | "full" | "lth" | "control" | "reference", "name", "seed",
                "mean_dice", "cell_parameters", "genotype"}, ...],
     "one_op": {op: mean_dice}, "random_spread": {...},
     "searched_vs_random": {"p", "n_searched", "n_random", "mean_diff", ...},   # full-search cells vs random cells
     "lth_vs_random": {...}, "bootstrap": {name: {"mean_diff", "ci95", ...}},  # patients and cells resampled
     "known_answer": {"winner", "winner_margin", "full_recovery", "lth_recovery", "chance", "emergence", ...},
     "tost": {"margin", "lth_vs_full_p", "random_vs_full_p", "smallest_margin": {...}},
     "agreement": {...}, "cost": {...}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from iac_components.evidence.genotypes import chance_agreement, genotype_agreement
from iac_components.genotype import Genotype
from iac_components.stats import cell_level_test, joint_bootstrap, tost_from_draws

__all__ = ["emergence", "op_classes", "recovery", "render_markdown", "study_report"]


def _by_kind(cells: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [c for c in cells if c["kind"] == kind]


def _per_patient(cells: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    return {c["name"]: {p: m["dice"] for p, m in c["per_patient"].items()} for c in cells}


def _boot(pp: dict[str, dict[str, float]], a: Sequence[str], b: Sequence[str], paired: bool = False) -> dict[str, Any]:
    r = joint_bootstrap(pp, a, b, paired=paired)
    return {k: v for k, v in r.items() if k != "draws"} | {"_draws": r["draws"]}


def recovery(genotypes: Sequence[Mapping[str, Any]], winner: str | Sequence[str], n_ops: int) -> dict[str, Any]:
    """How often searched cells put the winning op (or any op of the winning class) on their edges: per cell the
    share of its edges, pooled, and the one-sided binomial p of at least that many edges if each edge's op were
    drawn uniformly from ``n_ops`` (chance: the winners' share of the ops)."""
    from scipy.stats import binomtest

    winners = {winner} if isinstance(winner, str) else set(winner)
    chance = len(winners) / n_ops
    per_cell, hits, edges = [], 0, 0
    for g in genotypes:
        ops = [op for _, _, op in Genotype.from_dict(g).edges()]
        per_cell.append(sum(op in winners for op in ops) / len(ops))
        hits, edges = hits + sum(op in winners for op in ops), edges + len(ops)
    if not edges:
        return {"per_cell": [], "pooled": None, "edges": 0, "p_binomial": None, "chance": chance}
    p = binomtest(hits, edges, chance, alternative="greater").pvalue
    return {"per_cell": per_cell, "pooled": hits / edges, "edges": edges, "winner_edges": hits, "p_binomial": float(p),
            "chance": chance, "cells_above_chance": int(sum(f > chance for f in per_cell)), "n_cells": len(per_cell)}  # fmt: skip


def op_classes(ops: Sequence[str]) -> dict[str, list[str]]:
    """The ops by what they can do at a skip, read from the ops themselves: ``learned`` (weights: a spatial
    transform learned from the data) and ``parameter_free`` (identity, pooling). A structural property, fixed
    before any result: the known-answer task displaces the labels, which only a learned op can follow."""
    from iac_components.ops import build_op

    classes: dict[str, list[str]] = {"learned": [], "parameter_free": []}
    for op in ops:
        learned = any(p.numel() for p in build_op(op, 4, 2, affine=False).parameters())  # as in the supernet
        classes["learned" if learned else "parameter_free"].append(op)
    return classes


def emergence(history: Mapping[str, Any], genotype: Mapping[str, Any], group: int = 0) -> dict[str, Any]:
    """When each final op of a full search became its edge's top-1 by α and stayed there to the end: the arch step
    of that check as a fraction of the search's arch steps (the paper's "early emergence", measured)."""
    checks = [c for e in history["epochs"] for c in e.get("checks", []) if c.get("alpha")]
    if not checks:
        return {"fractions": [], "median": None}
    total = max(1, int(checks[-1]["arch_step"]))
    fractions = []
    for i, j, op in Genotype.from_dict(genotype).edges():
        key = f"{i}->{j}"
        since = None
        for c in checks:
            alpha = c["alpha"][group].get(key)
            if alpha is None:
                continue
            top = max(alpha, key=alpha.get)
            since = (c["arch_step"] if since is None else since) if top == op else None
        fractions.append(None if since is None else since / total)
    known = [f for f in fractions if f is not None]
    return {"fractions": fractions, "median": float(np.median(known)) if known else None,
            "never_top1_at_the_end": sum(f is None for f in fractions)}  # fmt: skip


def study_report(doc: Mapping[str, Any], histories: Mapping[str, Mapping[str, Any]] | None = None,
                 standard: Mapping[str, Any] | None = None, second: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report of one study (the known-answer data) and, optionally, the op-level ground truth of another
    (``standard``: the plain synthetic data).

    Args:
        doc: the study's ``study.json``.
        histories: search name (``full_s1`` ...) -> its ``search_history.json`` (for the emergence figures).
        standard: another study's ``study.json`` whose one-op and random cells are reported beside.
        second: a study of the same data and recipe over another baseline (a baseline retrained where the first
            could not be reproduced bit for bit): its searches join what is a property of a search (recovery,
            emergence, agreement, cost); its cells' Dice is reported against its own no-cell reference only, never
            pooled with the first baseline's cells (the cell-level tests and the bootstraps use the first alone).
    """
    cells = list(doc["cells"])
    extra = [c for c in (second or {}).get("cells", []) if c["kind"] in ("full", "lth")]
    searched = {k: _by_kind(cells, k) + _by_kind(extra, k) for k in ("full", "lth")}  # every search, both baselines
    ops = list(doc["ops"])
    pp = _per_patient(cells)
    names = {k: [c["name"] for c in _by_kind(cells, k)] for k in ("one_op", "random", "full", "lth", "control", "reference")}
    report: dict[str, Any] = {
        "cells": [{k: c[k] for k in ("kind", "name", "seed", "mean_dice", "cell_parameters", "genotype")} | {"baseline": b}
                  for b, group in ((1, cells), (2, extra)) for c in group],  # fmt: skip
        "ops": ops,
        "one_op": {c["name"].removeprefix("one_op_"): c["mean_dice"] for c in _by_kind(cells, "one_op")},
    }
    randoms = [c["mean_dice"] for c in _by_kind(cells, "random")]
    if randoms:
        report["random_spread"] = {"n": len(randoms), "mean": float(np.mean(randoms)), "min": float(np.min(randoms)),
                                   "max": float(np.max(randoms)),
                                   "sd": float(np.std(randoms, ddof=1)) if len(randoms) > 1 else None}  # fmt: skip
    boots = _bootstraps(cells, pp, names, randoms, report)
    report["tost"] = _tost(boots)
    report["bootstrap"] = {k: {kk: vv for kk, vv in v.items() if kk != "_draws"} for k, v in boots.items()}
    if report["one_op"]:
        report["known_answer"] = _known_answer(report, cells, extra, searched, pp, ops, histories)
    report["agreement"], report["cost"] = _agreement(cells, extra, searched, ops), _cost(doc, second)
    if second is not None:
        report["second_baseline"] = _second_baseline(cells, extra, second)
    if standard is not None:
        report["standard_data"] = _standard_data(standard)
    return report


def _bootstraps(cells: list[dict[str, Any]], pp: Any, names: dict[str, list[str]], randoms: list[float],
                report: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The cell-level tests (into ``report``) and the joint cell-and-patient bootstraps of every comparison."""
    boots: dict[str, Any] = {}
    for kind in ("full", "lth"):
        if names[kind] and names["random"]:
            test = cell_level_test([c["mean_dice"] for c in _by_kind(cells, kind)], randoms)
            report["searched_vs_random" if kind == "full" else "lth_vs_random"] = test
            boots[f"{kind}_vs_random"] = _boot(pp, names[kind], names["random"])
    for kind in ("full", "lth", "random", "one_op"):
        for ref in names["reference"]:
            if names[kind]:
                boots[f"{kind}_vs_{ref}"] = _boot(pp, names[kind], [ref])
    seeds = sorted({c["seed"] for c in _by_kind(cells, "full")} & {c["seed"] for c in _by_kind(cells, "lth")})
    if seeds:
        boots["lth_vs_full"] = _boot(pp, [f"lth_s{s}" for s in seeds], [f"full_s{s}" for s in seeds], paired=True)
        for control in ("truncated", "random_cuts", "sgas"):
            have = [s for s in seeds if f"{control}_s{s}" in pp]
            if have:
                boots[f"{control}_vs_full"] = _boot(pp, [f"{control}_s{s}" for s in have], [f"full_s{s}" for s in have],
                                                    paired=True)  # fmt: skip
                boots[f"lth_vs_{control}"] = _boot(pp, [f"lth_s{s}" for s in have], [f"{control}_s{s}" for s in have],
                                                   paired=True)  # fmt: skip
    if names["full"] and names["random"]:
        boots["random_vs_full"] = _boot(pp, names["random"], names["full"])
    return boots


def _tost(boots: Mapping[str, Any]) -> dict[str, Any]:
    """Equivalence of LTH (and of the controls and random cells) to the full search, at a margin read from the data."""
    # the equivalence margin, stated against what searching is measured to be worth: half the full search's
    # measured gain over random cells (a margin as wide as that gain would call "no search" equivalent)
    value = boots.get("full_vs_random", {}).get("mean_diff")
    margin = 0.5 * value if value is not None and value > 0 else None
    tost: dict[str, Any] = {"margin": margin, "value_of_search": value,
                            "margin_rule": "half the full search's measured gain over the random cells (cells and "
                                           "patients resampled); None when that gain is not positive",
                            "smallest_margin": {}}  # fmt: skip
    for name in ("lth_vs_full", "random_vs_full", "truncated_vs_full", "random_cuts_vs_full", "sgas_vs_full"):
        if name in boots:
            draws = boots[name]["_draws"]
            tost["smallest_margin"][name] = tost_from_draws(draws, 1.0)["smallest_margin"]
            if margin:
                key = {"lth_vs_full": "lth_vs_full_p", "random_vs_full": "random_vs_full_p"}.get(name, f"{name}_p")
                tost[key] = tost_from_draws(draws, margin)["p_tost"]
    tost.setdefault("lth_vs_full_p", None)
    tost.setdefault("random_vs_full_p", None)
    return tost


def _known_answer(report: Mapping[str, Any], cells: list[dict[str, Any]], extra: list[dict[str, Any]],
                  searched: Mapping[str, list[dict[str, Any]]], pp: Any, ops: list[str],
                  histories: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:  # fmt: skip
    """The op-level ground truth (the one-op cells' ranking, the winning op and op class) and whether the searches
    recover it; when the searches' histories are given, when their final ops emerge."""
    one_op = report["one_op"]
    ranked = sorted(one_op, key=one_op.get, reverse=True)
    winner, median = ranked[0], float(np.median(list(one_op.values())))
    median_op = min(one_op, key=lambda o: abs(one_op[o] - median))
    ka: dict[str, Any] = {
        "winner": winner, "ranking": ranked, "winner_margin": one_op[winner] - median,
        "chance": 1.0 / len(ops),
        "cell_to_cell_sd": report.get("random_spread", {}).get("sd"),
    }  # fmt: skip
    ka["winner_vs_median_op"] = {k: v for k, v in _boot(pp, [f"one_op_{winner}"], [f"one_op_{median_op}"]).items()
                                 if k != "_draws"} | {"median_op": median_op}  # fmt: skip
    for kind in ("full", "lth"):
        ka[f"{kind}_recovery"] = recovery([c["genotype"] for c in searched[kind]], winner, len(ops))
    # the same question one level up: the class of ops (learned or parameter-free) whose one-op cells score best
    classes = {k: v for k, v in op_classes(list(one_op)).items() if v}
    if len(classes) == 2:
        means = {k: float(np.mean([one_op[o] for o in v])) for k, v in classes.items()}
        best = max(means, key=means.get)
        other = min(means, key=means.get)
        ka["winning_class"] = {
            "classes": classes, "mean_dice": means, "winner": best, "margin": means[best] - means[other],
            "worst_of_winner_minus_best_of_other": min(one_op[o] for o in classes[best]) - max(one_op[o] for o in classes[other]),
            **{f"{kind}_recovery": recovery([c["genotype"] for c in searched.get(kind, _by_kind(cells, kind))],
                                            classes[best], len(ops))
               for kind in ("full", "lth", "random")},
        }  # fmt: skip
    if histories:
        per = {n: emergence(h, next(c["genotype"] for c in cells + extra if c["name"] == n))
               for n, h in histories.items() if any(c["name"] == n for c in cells + extra)}  # fmt: skip
        allf = [f for e in per.values() for f in e["fractions"] if f is not None]
        ka["emergence"] = {"per_search": per, "median": float(np.median(allf)) if allf else None,
                           "what": "arch step from which each final op stays its edge's top-1 by α, as a "
                                   "fraction of the search's arch steps"}  # fmt: skip
    else:
        ka["emergence"] = None
    return ka


def _agreement(cells: list[dict[str, Any]], extra: list[dict[str, Any]], searched: Mapping[str, list[dict[str, Any]]],
               ops: list[str]) -> dict[str, Any]:  # fmt: skip
    """Agreement between searched cells (full with full, LTH with its seed's full), beside chance for this op set."""
    g = {c["name"]: Genotype.from_dict(c["genotype"]) for c in cells + extra if c["genotype"]}
    fulls = [g[c["name"]] for c in searched["full"]]
    pairs_ff = list(combinations(fulls, 2))
    both = sorted({c["seed"] for c in searched["full"]} & {c["seed"] for c in searched["lth"]})
    return {
        "full_vs_full": _mean(genotype_agreement(a, b) for a, b in pairs_ff),
        "lth_vs_full_same_seed": _mean(genotype_agreement(g[f"lth_s{s}"], g[f"full_s{s}"]) for s in both),
        "chance": chance_agreement(ops=tuple(ops)),
    }


def _cost(doc: Mapping[str, Any], second: Mapping[str, Any] | None) -> dict[str, Any]:
    """What each search cost (time, epochs, arch steps, ops alive summed over epochs), both baselines."""
    return {
        name: {k: v for k, v in s.items() if k in ("wall_clock_s", "epochs", "arch_steps", "decided_at", "search_s")}
        | {"ops_alive_sum": int(sum(s["ops_alive"]))}
        for d in (doc, second or {}) for name, s in d.get("searches", {}).items()
    }


def _second_baseline(cells: list[dict[str, Any]], extra: list[dict[str, Any]], second: Mapping[str, Any]) -> dict[str, Any]:
    """The second baseline's cells, each against that baseline's own no-cell retrain."""
    refs = {c["name"]: c["mean_dice"] for c in _by_kind(list(second["cells"]), "reference")}
    first_refs = {c["name"]: c["mean_dice"] for c in _by_kind(cells, "reference")}
    return {
        "why": "the first baseline could not be reproduced bit for bit (its no-cell retrain differs), so these "
               "searches ran over a second baseline: their Dice is read against that baseline's own no-cell "
               "retrain, and only their search-level figures (recovery, emergence, agreement) are pooled",
        "no_cells": refs.get("no_cells"), "first_baseline_no_cells": first_refs.get("no_cells"),
        "cells": {c["name"]: {"mean_dice": c["mean_dice"],
                              "minus_no_cells": (c["mean_dice"] - refs["no_cells"]) if "no_cells" in refs else None}
                  for c in extra},
    }  # fmt: skip


def _standard_data(standard: Mapping[str, Any]) -> dict[str, Any]:
    """Another study's one-op and random cells (the plain synthetic data), reported beside."""
    sc = list(standard["cells"])
    return {
        "one_op": {c["name"].removeprefix("one_op_"): c["mean_dice"] for c in _by_kind(sc, "one_op")},
        "references": {c["name"]: c["mean_dice"] for c in _by_kind(sc, "reference")},
        "random": [c["mean_dice"] for c in _by_kind(sc, "random")],
    }


def _mean(rows: Any) -> dict[str, float] | None:
    rows = list(rows)
    if not rows:
        return None
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"n_pairs": len(rows)}


def _ci(b: Mapping[str, Any]) -> str:
    return f"{b['mean_diff']:+.4f} (95 % CI {b['ci95'][0]:+.4f}..{b['ci95'][1]:+.4f})"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown (the numbers of the JSON, in the order the question asks them)."""
    parts = (_md_header, _md_ground_truth, _md_searched_vs_random, _md_second_baseline, _md_cells, _md_standard_data)
    return "\n".join(line for part in parts for line in part(report)) + "\n"


def _md_header(report: Mapping[str, Any]) -> list[str]:
    """Title, commands, commit, machine, data."""
    lines: list[str] = []
    m = report.get("machine", {})
    lines += ["# Does the search find anything? Cells as the unit, and a task with a known answer", ""]
    for c in report.get("commands", []):
        lines.append(f"Command: `{c}`  ")
    lines += [f"Commit: {report.get('commit')}  ",
              f"Machine: {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')}, CPU only.  ", ""]
    d = report.get("data", {})
    if d:
        lines += [f"Data: {d.get('description')}", ""]
    return lines


def _md_ground_truth(report: Mapping[str, Any]) -> list[str]:
    """The one-op cells, the random cells' spread, the known answer and its recovery."""
    lines: list[str] = []
    lines += ["## Op-level ground truth (one op on every edge of a chain topology)", "", "| op | mean test Dice |", "|---|---|"]
    lines += [f"| {op} | {v:.4f} |" for op, v in sorted(report["one_op"].items(), key=lambda kv: -kv[1])]
    rs = report.get("random_spread")
    if rs:
        sd = "-" if rs["sd"] is None else f"{rs['sd']:.4f}"
        lines += ["", f"Random cells (n = {rs['n']}): mean {rs['mean']:.4f}, range {rs['min']:.4f}..{rs['max']:.4f}, "
                      f"SD across cells {sd}."]  # fmt: skip
    ka = report.get("known_answer")
    if ka:
        w = ka["winner_vs_median_op"]
        lines += ["", f"Winner: **{ka['winner']}**, {ka['winner_margin']:+.4f} Dice over the median op "
                      f"({w['median_op']}; {_ci(w)}, patients resampled); cell-to-cell SD of random cells "
                      f"{ka['cell_to_cell_sd'] if ka['cell_to_cell_sd'] is None else round(ka['cell_to_cell_sd'], 4)}."]  # fmt: skip
        for kind in ("full", "lth"):
            r = ka.get(f"{kind}_recovery") or {}
            if r.get("edges"):
                lines.append(f"- {kind} searches put it on {r['winner_edges']} of {r['edges']} edges ({r['pooled']:.3f}; "
                             f"chance {ka['chance']:.3f}, one-sided binomial p = {r['p_binomial']:.3g}); per cell "
                             + ", ".join(f"{f:.2f}" for f in r["per_cell"]) + ".")  # fmt: skip
        wc = ka.get("winning_class")
        if wc:
            other = next(k for k in wc["classes"] if k != wc["winner"])
            lines.append(f"- By class (read from the ops: {', '.join(f'{k}: ' + '/'.join(v) for k, v in wc['classes'].items())}): "
                         f"**{wc['winner']}** one-op cells {wc['mean_dice'][wc['winner']]:.4f} vs {other} "
                         f"{wc['mean_dice'][other]:.4f} ({wc['margin']:+.4f}; its worst op minus the other's best "
                         f"{wc['worst_of_winner_minus_best_of_other']:+.4f}).")  # fmt: skip
            for kind in ("full", "lth", "random"):
                r = wc.get(f"{kind}_recovery") or {}
                if r.get("edges"):
                    lines.append(f"  - {kind} cells put a {wc['winner']} op on {r['winner_edges']} of {r['edges']} edges "
                                 f"({r['pooled']:.3f}; chance {r['chance']:.3f}, one-sided binomial p = "
                                 f"{r['p_binomial']:.3g}).")  # fmt: skip
        e = ka.get("emergence")
        if e and e.get("median") is not None:
            lines.append(f"- Emergence: a full search's final op stays its edge's top-1 from a median {e['median']:.2f} "
                         "of the search's arch steps on.")  # fmt: skip
    return lines


def _md_searched_vs_random(report: Mapping[str, Any]) -> list[str]:
    """Searched against random cells (cell-level tests, bootstraps), equivalence, agreement."""
    lines: list[str] = []
    sr = report.get("searched_vs_random")
    lines += ["", "## Searched cells against random cells (the cell as the unit)", ""]
    if sr:
        lines.append(f"- Full-search cells vs random cells: {sr['mean_diff']:+.4f} (n = {sr['n_searched']} vs "
                     f"{sr['n_random']}), one-sided permutation p = {sr['p']:.3g}, Mann-Whitney p = "
                     f"{sr['p_mannwhitney']:.3g}; ranks among the random cells "
                     f"{sr['rank_among_random']} (1 = best).")  # fmt: skip
    lr = report.get("lth_vs_random")
    if lr:
        lines.append(f"- LTH cells vs random cells: {lr['mean_diff']:+.4f}, permutation p = {lr['p']:.3g}; ranks "
                     f"{lr['rank_among_random']}.")  # fmt: skip
    lines += ["", "| comparison (cells and patients resampled) | difference | 95 % CI |", "|---|---|---|"]
    for k, b in report["bootstrap"].items():
        lines.append(f"| {k} | {b['mean_diff']:+.4f} | {b['ci95'][0]:+.4f}..{b['ci95'][1]:+.4f} |")
    t = report["tost"]
    rounded = {k: (None if t[k] is None else round(t[k], 5)) for k in ("margin", "value_of_search")}
    lines += ["", "## Equivalence (TOST from the same bootstrap)", "",
              f"Margin: {rounded['margin']} ({t['margin_rule']}; measured value of search over random: "
              f"{rounded['value_of_search']}).  ",
              f"LTH vs full p = {t.get('lth_vs_full_p')}; random vs full (the negative control) p = {t.get('random_vs_full_p')}.  ",
              "Smallest margin at which each passes at 5 %: "
              + ", ".join(f"{k} {v:.4f}" for k, v in t["smallest_margin"].items()) + "."]  # fmt: skip
    a = report.get("agreement", {})
    if a.get("full_vs_full"):
        f, ch = a["full_vs_full"], a["chance"]
        lines += ["", f"Agreement of full searches across search seeds: edges {f['edges']:.3f}, inputs {f['inputs']:.3f}, "
                      f"nodes {f['nodes']:.3f} (chance for these ops {ch['edges']:.3f} / {ch['inputs']:.3f} / "
                      f"{ch['nodes']:.3f})."]  # fmt: skip
    return lines


def _md_second_baseline(report: Mapping[str, Any]) -> list[str]:
    """The searches over a second baseline, each against its own no-cell retrain."""
    lines: list[str] = []
    sb = report.get("second_baseline")
    if sb:
        lines += ["", "## Searches over a second baseline", "", f"{sb['why'][0].upper()}{sb['why'][1:]}. No-cell retrain: "
                  f"{sb['no_cells']:.4f} on the second baseline, {sb['first_baseline_no_cells']:.4f} on the first.", ""]
        lines += [f"- {n}: {v['mean_dice']:.4f} ({v['minus_no_cells']:+.4f} against its own no-cell retrain)"
                  for n, v in sb["cells"].items()]  # fmt: skip
    return lines


def _md_cells(report: Mapping[str, Any]) -> list[str]:
    """Every cell's mean test Dice."""
    lines: list[str] = []
    lines += ["", "## Cells", "", "| kind | cell | search seed | baseline | mean test Dice | cell parameters |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for c in sorted(report["cells"], key=lambda c: (c["kind"], -c["mean_dice"])):
        lines.append(f"| {c['kind']} | {c['name']} | {c['seed'] if c['seed'] is not None else ''} | {c.get('baseline', 1)} | "
                     f"{c['mean_dice']:.4f} | {c['cell_parameters']} |")  # fmt: skip
    return lines


def _md_standard_data(report: Mapping[str, Any]) -> list[str]:
    """The plain synthetic data's one-op cells and references."""
    lines: list[str] = []
    sd = report.get("standard_data")
    if sd:
        lines += ["", "## The plain synthetic data (no known answer)", "",
                  "One-op cells: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(sd["one_op"].items(), key=lambda kv: -kv[1]))
                  + "; references: " + ", ".join(f"{k} {v:.4f}" for k, v in sd["references"].items()) + "."]  # fmt: skip
    return lines
