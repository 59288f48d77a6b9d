"""Calibrate the JSD rule's numbers on a recorded full search, at a given search configuration.

Runs (or reuses) the baseline and one full search (the pruning handler observe-only, every epoch recorded) through
the ``acdc_iac`` bundle's configs on synthetic ACDC, then replays every rule of the sweep on that history with the
same code the handler runs (``iac_components.search.rule.replay_history``): when each rule would have decided the
cell, how much its cell agrees with the full search's final genotype, whether its first cuts kept the final ops,
and how the recorded divergences sit against each ε (the share of edge checks above the threshold).

Two configurations matter (issue 9): the demo's search settings (``--config demo``: arch lr 1e-2, batch 8) and
the optimiser settings the bundles ship (``--config bundle``: arch lr 6e-4, weight lr 0.025, batch 16), both at
the demo's image size (64x64) so that they run on a CPU.

    python benchmarks/calibrate_rule.py --config demo --epochs 30 [--out benchmarks/runs/calibrate]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from _synthetic import synthetic_baseline

from iac_components.bundles.run import run_workflow
from iac_components.demo import DEMO_OVERRIDES
from iac_components.evidence.calibration import SWEEP, sweep_rules
from iac_components.search.rule import JSDRule
from iac_components.utils import machine_info, write_json_atomic

# the demo's search settings without its rule values (an observe-only search records every rule's evidence)
_DEMO = {k: v for k, v in DEMO_OVERRIDES["search"].items() if not k.startswith("pruning#")}
CONFIGS = {
    "demo": _DEMO,
    # the bundles search all 8 ops (the demo 5 of them)
    "bundle": {**{k: v for k, v in _DEMO.items() if k != "ops"}, "batch_size": 16, "arch_learning_rate": 6e-4,
               "learning_rate": 0.025},
}


def divergence_ratios(history: dict, window: int, group: int = 0) -> list[float]:
    """d / D_max of every edge check of a full search's history, for a window of ``window`` arch steps (the ε at
    which that check would sit on the threshold), recomputed from the recorded logits by the rule itself."""
    from iac_components.search.rule import CellTracks

    rule, tracks, out = JSDRule(window=window), CellTracks(), []
    for e in history["epochs"]:
        for c in e["checks"]:
            verdicts, _ = rule.check_cell(tracks, c["alpha"][group], c["beta"][group], c["arch_step"], c["lr"], prune=False)
            out += [v.d * rule.epsilon / v.threshold for v in verdicts["edge"].values() if v.d is not None and v.threshold]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--seed", type=int, default=100, help="search seed (not one that a benchmark reports)")
    ap.add_argument("--out", default="benchmarks/runs/calibrate")
    ap.add_argument("--results", default="benchmarks/results/calibration")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    configs, common, base = synthetic_baseline(out, args.patients, args.seed)
    run = out / f"full_{args.config}"
    run.mkdir(parents=True, exist_ok=True)
    shutil.copy(base / "baseline.pt", run / "baseline.pt")
    search = {**CONFIGS[args.config], "epochs": args.epochs, "prune": False}
    if not (run / "genotype.json").is_file():
        run_workflow(configs / "search.json", "search", run / "search.log", {**common, **search, "ckpt_dir": str(run),
                                                                     "output_dir": str(run)})
    history = json.loads((run / "search_history.json").read_text())
    sweep = sweep_rules(history, SWEEP)
    by_window = {w: np.array(divergence_ratios(history, w)) for w in SWEEP["window"]}
    ratios = by_window[JSDRule().window]
    above = {str(eps): float(np.mean(ratios > eps)) for eps in SWEEP["epsilon"]}
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine_info(),
        "config": {"name": args.config, **search, "seed": args.seed, "patients": args.patients},
        "total_arch_steps": sweep["total_arch_steps"],
        "edge_checks": int(ratios.size),
        "d_over_max_deciles_by_window": {str(w): [float(q) for q in np.quantile(r, [0.1, 0.25, 0.5, 0.75, 0.9])]
                                         for w, r in by_window.items()},
        "share_of_edge_checks_moving_at_epsilon": above,
        "sweep": sweep,
    }
    prefix = f"{args.results}_{args.config}"
    write_json_atomic(Path(f"{prefix}.json"), report, indent=1)
    default = JSDRule().config()
    rows = sorted(sweep["rows"], key=lambda r: (r["decided_step"] or 1e9, -r["agreement_edges"]))
    lines = [f"# Rule calibration on a full search ({args.config} configuration)", "",
             f"Command: `{report['command']}`  ",
             f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, torch {report['machine']['torch']}.  ",
             f"Search: {json.dumps(search)}; {sweep['total_arch_steps']} arch steps, one check per epoch.", "",
             "d / D_max of the edge checks (the ε at which each would sit on the threshold), deciles 10/25/50/75/90 %, "
             "by window: " + "; ".join(f"{w} arch steps: " + ", ".join(f"{q:.3g}" for q in qs)
                                       for w, qs in report["d_over_max_deciles_by_window"].items()) + ".  ",
             f"Share of edge checks that count as moving at each ε (window {JSDRule().window}): "
             + ", ".join(f"ε = {k}: {v:.2f}" for k, v in above.items()) + ".", "",
             "Every rule of the sweep replayed on this history (exact up to each edge's first cut). Agreement is with "
             "this full search's own final genotype, whose ops are themselves uncertain at this budget.", "",
             "| epsilon | window | patience | margin | keep | decided at arch step | ops alive at the end "
             "| agreement edges / nodes | safe first cuts |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(default)**" if all(r[k] == v for k, v in default.items()) else ""
        safe = "" if r["safe_first_cuts"] is None else f"{r['safe_first_cuts']:.2f}"
        lines.append(f"| {r['epsilon']:g} | {r['window']} | {r['patience']} | {r['margin']:g} | {r['keep_schedule']}{mark} | "
                     f"{r['decided_step'] or 'not decided'} | {r['ops_alive_end']} | {r['agreement_edges']:.2f} / "
                     f"{r['agreement_nodes']:.2f} | {safe} |")
    Path(f"{prefix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
