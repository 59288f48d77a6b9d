"""Does ε carry to a dataset with several times more slices per epoch?

The JSD rule checks every ``interval`` architecture steps, not once per epoch, so that ε (and patience) mean the
same on a small and a large dataset. This script checks it: it runs the LTH search of ``iac benchmark`` (same
bundle, same settings, the same frozen baseline U-Net) on a synthetic ACDC dataset with ``--patients`` patients
(4x the benchmark's 20 by default, so about 4x the slices and arch steps per epoch) and compares where the rule
acts, in arch steps and in epochs, with the benchmark's LTH searches. If ε carries, the decisions land at a
similar number of arch steps (and so at ~4x fewer epochs); if the rule were counted per epoch they would land at
a similar number of epochs.

Needs the benchmark's runs first (``iac benchmark --out benchmarks/runs/lth_vs_full ...``)::

    python benchmarks/bench_epsilon_scale.py [--patients 80] [--epochs 12] [--seed 0]

Writes ``benchmarks/results/epsilon_scale.json`` and ``.md`` with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def summarize(history_file: Path) -> dict:
    """Where the rule acted in one search: arch steps and epochs of the first cuts, the decision, ops alive."""
    h = json.loads(history_file.read_text())
    epochs = h["epochs"]
    arch_per_epoch = [b["arch_steps"] - a["arch_steps"] for a, b in zip(epochs, epochs[1:]) if not b["warmup"]]
    first_cut: dict[str, tuple[int, int]] = {}
    for ev in h["events"]:
        if ev["kind"] == "edge":
            first_cut.setdefault(ev["where"], (ev["arch_step"], ev["epoch"]))
    steps = [s for s, _ in first_cut.values()]
    eps = [e for _, e in first_cut.values()]
    decided = h["decided_at"]
    return {
        "history": str(history_file.relative_to(ROOT) if history_file.is_relative_to(ROOT) else history_file),
        "weight_steps_per_epoch": epochs[-1]["iteration"] // epochs[-1]["epoch"],
        "arch_steps_per_epoch": statistics.median(arch_per_epoch) if arch_per_epoch else None,
        "edges_cut": len(first_cut),
        "first_cut_arch_step_median": statistics.median(steps) if steps else None,
        "first_cut_epoch_median": statistics.median(eps) if eps else None,
        "decided_arch_step": decided["arch_step"] if decided else None,
        "decided_epoch": decided["epoch"] if decided else None,
        "epochs_run": epochs[-1]["epoch"],
        "arch_steps_run": epochs[-1]["arch_steps"],
        "ops_alive_by_arch_step": [(e["arch_steps"], e["ops_alive"]) for e in epochs],
        "wall_clock_s": h["total_wall_clock_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=80)
    ap.add_argument("--epochs", type=int, default=12, help="the search's maximum (it stops when decided)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--benchmark_runs", default=str(ROOT / "benchmarks" / "runs" / "lth_vs_full"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "runs" / "epsilon_scale"))
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "epsilon_scale"))
    args = ap.parse_args()

    from iac_components.bundles.run import find_bundle, run_workflow
    from iac_components.data import synthesize
    from iac_components.demo import DEMO_OVERRIDES
    from iac_components.utils import machine_info, write_json_atomic

    runs = Path(args.benchmark_runs)
    references = sorted(runs.glob("seed*/search_lth/search_history.json"))
    baseline = runs / f"seed{args.seed}" / "baseline" / "baseline.pt"
    if not references or not baseline.is_file():
        raise SystemExit(f"no benchmark runs under {runs}: run `iac benchmark --out {runs}` first")
    out = Path(args.out).resolve()
    raw = synthesize("acdc", out / "raw", patients=args.patients, seed=0)
    search_dir = out / "search_lth"
    search_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(baseline, search_dir / "baseline.pt")
    if not (search_dir / "genotype.json").is_file():
        overrides = {**DEMO_OVERRIDES["common"], **DEMO_OVERRIDES["search"], "epochs": args.epochs, "prune": True,
                     "seed": args.seed, "dataset_dir": str(raw), "cache_dir": str(out / "cache"),
                     "ckpt_dir": str(search_dir), "output_dir": str(search_dir)}
        (out / "logs").mkdir(exist_ok=True)
        run_workflow(find_bundle("acdc_iac") / "configs" / "search.json", "search", out / "logs" / "search_lth.log", overrides)
    rows = {f"{p.parents[1].name} (20 patients)": summarize(p) for p in references}
    rows[f"seed{args.seed}, {args.patients} patients"] = summarize(search_dir / "search_history.json")
    doc = {"command": "python " + " ".join(sys.argv), "machine": machine_info(), "config": vars(args), "searches": rows}
    write_json_atomic(Path(f"{args.results}.json"), doc, indent=1)
    m = doc["machine"]
    lines = [
        "# Does ε carry to more slices per epoch? (synthetic ACDC)",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, CPU only.",
        "",
        "LTH searches with the default rule (checks every 4 arch steps) and the demo's search settings; the "
        f"{args.patients}-patient search uses seed {args.seed}'s frozen baseline from `iac benchmark`.",
        "",
        "| search | weight / arch steps per epoch | edges cut by the edge rule | first cut: median arch step (epoch) | "
        "decided: arch step (epoch) | wall-clock (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        decided = (f"{r['decided_arch_step']} ({r['decided_epoch']})" if r["decided_arch_step"]
                   else f"not within {r['arch_steps_run']} ({r['epochs_run']})")
        lines.append(f"| {name} | {r['weight_steps_per_epoch']} / {r['arch_steps_per_epoch']:g} | {r['edges_cut']} | "
                     f"{r['first_cut_arch_step_median']:g} ({r['first_cut_epoch_median']:g}) | {decided} | {r['wall_clock_s']:.0f} |")
    Path(f"{args.results}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
