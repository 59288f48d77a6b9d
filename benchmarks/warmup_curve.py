"""How long must the search warm up before its γ-gated cells carry signal? γ and ‖γ·cell‖/‖skip‖ per epoch of a
warm-up-only search (no arch step), through the acdc_iac bundle's configs on synthetic ACDC at the demo's sizes.

The cells start with γ = 0, so the gradient that reaches their ops (and, after the warm-up, α) is proportional
to γ. The warm-up should last until the cells' contribution stops growing quickly; this prints the curve and the
weight step at which the contribution first reaches 50 % and 90 % of its final value.

    python benchmarks/warmup_curve.py --steps 260 [--out benchmarks/runs/warmup] [--results benchmarks/results/warmup_curve]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from _synthetic import synthetic_baseline

from iac_components.bundles.run import run_workflow
from iac_components.demo import DEMO_OVERRIDES
from iac_components.utils import machine_info, write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=260, help="weight steps of warm-up to record")
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--out", default="benchmarks/runs/warmup")
    ap.add_argument("--results", default="benchmarks/results/warmup_curve")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    configs, common, base = synthetic_baseline(out, args.patients, args.seed)
    run = out / "search"
    run.mkdir(parents=True, exist_ok=True)
    shutil.copy(base / "baseline.pt", run / "baseline.pt")
    search = {**DEMO_OVERRIDES["search"], "warmup_steps": args.steps, "prune": False}
    search["epochs"] = max(2, args.steps // 13 + 1)  # the demo's data: 13 weight steps per epoch
    run_workflow(configs / "search.json", "search", run / "search.log", {**common, **search, "ckpt_dir": str(run), "output_dir": str(run)})
    history = json.loads((run / "search_history.json").read_text())
    rows = [(e["iteration"], e["cells"]["gamma_mean_abs"], e["cells"]["ratio"]) for e in history["epochs"] if e.get("cells")]
    epoch_length = rows[0][0]
    final = [sum(r) / len(r) for _, _, r in rows][-1]
    mean_ratio = [(it, sum(r) / len(r)) for it, _, r in rows]
    reach = {f"{int(f * 100)}%": next((it for it, r in mean_ratio if r >= f * final), None) for f in (0.5, 0.9)}
    report = {"command": "python " + " ".join(sys.argv), "machine": machine_info(), "search": search,
              "epoch_length": epoch_length, "curve": [{"weight_step": it, "gamma_mean_abs": g, "ratio": r} for it, g, r in rows],
              "mean_ratio_reaches": reach}
    write_json_atomic(Path(f"{args.results}.json"), report, indent=1)
    lines = ["# Warm-up: what the cells add while only their weights train", "", f"Command: `{report['command']}`  ",
             f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, torch {report['machine']['torch']}.  ",
             f"Demo search settings, {epoch_length} weight steps per epoch.", "",
             "| weight step | mean abs γ per level | ‖γ·cell‖/‖skip‖ per level |", "|---|---|---|"]
    lines += [f"| {it} | {' / '.join(f'{x:.3f}' for x in g)} | {' / '.join(f'{x:.3f}' for x in r)} |" for it, g, r in rows]
    lines += ["", f"The mean contribution (over levels) reaches 50 % of its value at step {rows[-1][0]} by step {reach['50%']} and 90 % by "
                  f"step {reach['90%']}."]
    Path(f"{args.results}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
