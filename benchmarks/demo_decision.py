"""When does the demo's search decide, and how much does that move? The demo's search (``search.json`` with
``DEMO_OVERRIDES["search"]``) from one trained baseline, once per search seed, with a cap well past the demo's, so
that each run ends by the rule; the decided epoch per seed is the spread a user's run (another seed, another CPU's
rounding) can land anywhere in, and the demo's cap is chosen above it.

    python benchmarks/demo_decision.py --seeds 0 1 2 3 4 5 --cap 30 --out benchmarks/runs/demo_decision \
        --results benchmarks/results/demo_decision

Runs resume seed by seed (a seed whose history is written is read, not run again); ``--threads`` sets torch's
threads (1 leaves the other core free).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from iac_components.bundles.run import find_bundle, run_workflow
from iac_components.data import synthesize
from iac_components.demo import DEMO_OVERRIDES
from iac_components.utils import machine_info, write_json_atomic


def _summary(history: dict, seconds: float | None) -> dict:
    decided = history["decided_at"]
    return {"decided_epoch": decided["epoch"] if decided else None,
            "decided_arch_step": decided["arch_step"] if decided else None,
            "epochs": history["epochs"][-1]["epoch"], "arch_steps": history["epochs"][-1]["arch_steps"],
            "ops_alive": [history["ops_alive_start"]] + [e["ops_alive"] for e in history["epochs"]],
            "search_s": seconds, "genotype": history["epochs"][-1]["groups"][0]["genotype"]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--cap", type=int, default=30, help="epochs each search may run (the demo's cap is lower)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/runs/demo_decision")
    ap.add_argument("--results", default="benchmarks/results/demo_decision")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out).resolve()
    raw = out / "raw"
    if not (raw / "training").is_dir():
        synthesize("acdc", raw, patients=20, seed=0)  # the demo's data
    bundle = find_bundle("acdc_iac")
    common = {**DEMO_OVERRIDES["common"], "dataset_dir": str(raw), "cache_dir": str(out / "cache"), "bundle_root": str(out)}
    base = out / "baseline"
    if not (base / "baseline.pt").is_file():  # the demo's baseline (seed 0), shared by every search
        run_workflow(bundle / "configs" / "train.json", "run", out / "train.log",
                     {**common, **DEMO_OVERRIDES["train"], "seed": 0, "ckpt_dir": str(base), "output_dir": str(base)})  # fmt: skip
    search = {**DEMO_OVERRIDES["search"], "epochs": args.cap}
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    rows = {}
    for seed in args.seeds:
        saved = results / f"seed{seed}_search_history.json.gz"
        timing = results / f"seed{seed}_search_s.json"
        if saved.is_file() and timing.is_file():  # resumed: the committed raw files are the run
            with gzip.open(saved, "rt") as f:
                rows[seed] = _summary(json.load(f), json.loads(timing.read_text())["search_s"])
            continue
        d = out / f"seed{seed}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        shutil.copy(base / "baseline.pt", d / "baseline.pt")
        t = time.perf_counter()
        run_workflow(bundle / "configs" / "search.json", "search", d / "search.log",
                     {**common, **search, "seed": seed, "ckpt_dir": str(d), "output_dir": str(d)})  # fmt: skip
        history = (d / "search_history.json").read_text()
        with gzip.open(saved, "wt") as f:
            f.write(history)
        rows[seed] = _summary(json.loads(history), time.perf_counter() - t)
        write_json_atomic(timing, {"search_s": rows[seed]["search_s"], "threads": args.threads})
        print(f"[demo_decision] seed {seed}: decided at epoch {rows[seed]['decided_epoch']}", flush=True)
    decided = sorted(r["decided_epoch"] for r in rows.values() if r["decided_epoch"] is not None)
    command = " ".join(["python", "benchmarks/demo_decision.py", *(argv if argv is not None else sys.argv[1:])])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    result = {"command": command, "commit": commit, "machine": machine_info(), "cap": args.cap,
              "demo_cap": DEMO_OVERRIDES["search"]["epochs"], "search": search, "seeds": rows,
              "decided_epochs": decided, "undecided_seeds": [s for s, r in rows.items() if r["decided_epoch"] is None],
              "raw_files": str(results)}  # fmt: skip
    write_json_atomic(Path(f"{args.results}.json"), result, indent=1)
    lines = [f"# When the demo's search decides, per search seed (`{command}`, commit {commit})", "",
             f"Machine: {result['machine'].get('cpu')}, {result['machine'].get('cores')} cores, CPU only, "
             f"{args.threads} thread(s). One baseline (the demo's, seed 0); each search runs the demo's settings with "
             f"the cap raised to {args.cap} epochs. The histories are beside this file. `search s` is wall-clock with whatever "
             "else ran on the machine (the load average at the start is in the JSON); the decided epoch does not depend on it.", "",
             "| search seed | decided at epoch (arch step) | ops alive per epoch (before the first, then after each) | search s |",
             "|---|---|---|---|"]  # fmt: skip
    for seed, r in rows.items():
        lines.append(f"| {seed} | {r['decided_epoch']} ({r['decided_arch_step']}) | {r['ops_alive']} | {r['search_s']:.0f} |")
    lines += ["", f"Decided epochs, sorted: {decided}; undecided within {args.cap}: {result['undecided_seeds']}."]
    Path(f"{args.results}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
