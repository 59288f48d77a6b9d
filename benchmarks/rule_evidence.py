"""Does the JSD rule decide, on a recorded search history? The figures issue 9 asks for, from the history alone.

For the checks after the warm-up: how the divergences sit against the threshold in force (how many edge checks
above, how many below, and the quartiles of d / threshold), which condition ended each check (moving, leaders
changed, waiting for patience, undecided by the margin, cut), how many decisions waited because of the JSD
condition alone (same leaders, lead above the margin, but still moving), and, for every cut, its lead against the
margin in force (no cut may sit within the margin). Also the cells' γ and contribution at the last epoch.

    python benchmarks/rule_evidence.py HISTORY.json [--out benchmarks/results/rule_evidence_demo]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from iac_components.analysis.temporal import blocked_counts, load_history
from iac_components.utils import write_json_atomic


def evidence(history: dict, group: int = 0) -> dict:
    ratios = [v["d"] / v["threshold"] for e in history["epochs"] for c in e["checks"]
              for v in c["verdicts"][group]["edge"].values() if v["d"] is not None and v["threshold"]]
    cuts = [ev for ev in history["events"] if ev["group"] == group]
    # a lead of None: nothing left to lead (e.g. `none` against the last op)
    lead_over_margin = [ev["lead"] / ev["margin"] for ev in cuts if ev["margin"] and ev["lead"] is not None]
    first_check = next((c["arch_step"] for e in history["epochs"] for c in e["checks"]), None)
    last = history["epochs"][-1]
    return {
        "method": history["method"],
        "rule": history["rule"],
        "checks": sum(len(e["checks"]) for e in history["epochs"]),
        "first_check_arch_step": first_check,
        "decided_at": history["decided_at"],
        "edge_checks_judged": len(ratios),
        "edge_checks_above_threshold": int(sum(r > 1 for r in ratios)),
        "edge_checks_below_threshold": int(sum(r <= 1 for r in ratios)),
        "d_over_threshold_quartiles": [float(q) for q in np.quantile(ratios, [0.25, 0.5, 0.75])] if ratios else None,
        "statuses": blocked_counts(history, group),
        "cuts": len(cuts),
        "cuts_by_kind": {k: sum(ev["kind"] == k for ev in cuts) for k in ("edge", "node")},
        "min_lead_over_margin_at_a_cut": min(lead_over_margin) if lead_over_margin else None,
        "cuts_within_margin": int(sum(r < 1 for r in lead_over_margin)),
        "ops_alive": [e["ops_alive"] for e in history["epochs"]],
        "cells_last_epoch": last.get("cells"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("history")
    ap.add_argument("--out", default=None, help="path prefix of the .json and .md written (default: print only)")
    args = ap.parse_args()
    ev = evidence(load_history(args.history))
    ev["history"] = args.history
    ev["command"] = "python " + " ".join(sys.argv)
    text = json.dumps(ev, indent=1)
    print(text)
    if args.out:
        write_json_atomic(Path(f"{args.out}.json"), ev, indent=1)
        s = ev["statuses"]["edge"]
        lines = [f"# Does the rule decide? ({ev['method']})", "", f"Command: `{ev['command']}`", "",
                 f"* checks: {ev['checks']} (the first at arch step {ev['first_check_arch_step']}); decided at "
                 f"{ev['decided_at']}",
                 f"* edge checks with a divergence: {ev['edge_checks_judged']}; above the threshold in force "
                 f"{ev['edge_checks_above_threshold']}, below {ev['edge_checks_below_threshold']}; d / threshold "
                 f"quartiles {', '.join(f'{q:.3g}' for q in ev['d_over_threshold_quartiles'] or [])}",
                 "* what ended each edge check: " + ", ".join(f"{k} {v}" for k, v in s.items() if k != "jsd_only"),
                 f"* edge checks that waited because of the JSD condition alone: {s.get('jsd_only', 0)} "
                 f"(nodes: {ev['statuses']['node'].get('jsd_only', 0)})",
                 f"* cuts: {ev['cuts']} ({ev['cuts_by_kind']}); smallest lead / margin at a cut: "
                 f"{ev['min_lead_over_margin_at_a_cut']}; cuts within the margin: {ev['cuts_within_margin']}",
                 f"* ops alive per epoch: {ev['ops_alive']}",
                 f"* cells at the last epoch: {ev['cells_last_epoch']}"]
        Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
