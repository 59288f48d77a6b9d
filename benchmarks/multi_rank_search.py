"""What N ranks buy the search: the demo's search in one process and under ``torchrun --nproc_per_node 2`` (gloo,
on the CPU), through ``search.json`` and ``multi_gpu_search.json`` as a user runs them.

With N ranks an epoch has N times fewer steps of N times more images. ``multi_gpu_search.json`` gives the warm-up
and the rule's window for one process and divides them by the number of ranks (counted in images), so the rule
should decide after about as many epochs as in one process, each epoch taking less wall-clock on N devices. On a
2-core CPU the two ranks share the cores that one process would use with two threads, so the wall-clock here says
what synchronising costs, not what N GPUs gain; the epochs to the decision are the figure that carries over.

    python benchmarks/multi_rank_search.py --out benchmarks/runs/multi_rank --results benchmarks/results/multi_rank_search
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from iac_components.bundles.run import find_bundle, run_workflow
from iac_components.data import synthesize
from iac_components.demo import DEMO_OVERRIDES
from iac_components.utils import machine_info, write_json_atomic


def _summary(history_file: Path, seconds: float) -> dict:
    h = json.loads(history_file.read_text())
    return {"decided_epoch": h["decided_at"]["epoch"] if h["decided_at"] else None,
            "decided_arch_step": h["decided_at"]["arch_step"] if h["decided_at"] else None,
            "epochs": h["epochs"][-1]["epoch"], "arch_steps": h["epochs"][-1]["arch_steps"],
            "ops_alive": [e["ops_alive"] for e in h["epochs"]], "search_s": seconds,
            "genotype": h["epochs"][-1]["groups"][0]["genotype"]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/runs/multi_rank")
    ap.add_argument("--results", default="benchmarks/results/multi_rank_search")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    raw = out / "raw"
    if not (raw / "training").is_dir():
        synthesize("acdc", raw, patients=20, seed=0)
    bundle = find_bundle("acdc_iac")
    common = {**DEMO_OVERRIDES["common"], "dataset_dir": str(raw), "cache_dir": str(out / "cache"), "bundle_root": str(out),
              "seed": 0}  # fmt: skip
    base = out / "baseline"
    if not (base / "baseline.pt").is_file():
        run_workflow(bundle / "configs" / "train.json", "run", out / "train.log",
                     {**common, **DEMO_OVERRIDES["train"], "ckpt_dir": str(base), "output_dir": str(base)})  # fmt: skip
    search = {k: v for k, v in DEMO_OVERRIDES["search"].items()}
    rows = {}
    for ranks in (1, 2):
        d = out / f"ranks{ranks}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        shutil.copy(base / "baseline.pt", d / "baseline.pt")
        overrides = {**common, **search, "ckpt_dir": str(d), "output_dir": str(d)}
        t = time.perf_counter()
        if ranks == 1:
            run_workflow(bundle / "configs" / "search.json", "search", d / "search.log", overrides)
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "monai.bundle", "run",
                   "search", "--config_file",
                   f"['{bundle}/configs/train.json','{bundle}/configs/search.json','{bundle}/configs/multi_gpu_search.json']"]  # fmt: skip
            for k, v in overrides.items():
                cmd += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
            with open(d / "search.log", "w") as log:
                subprocess.run(cmd, cwd=out, stdout=log, stderr=subprocess.STDOUT, check=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
        rows[ranks] = _summary(d / "search_history.json", time.perf_counter() - t)
        print(f"[multi_rank] {ranks} rank(s): {rows[ranks]}", flush=True)
    command = " ".join(["python", "benchmarks/multi_rank_search.py", *(argv or sys.argv[1:])])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    raw_dir = Path(args.results)
    raw_dir.mkdir(parents=True, exist_ok=True)
    for ranks in rows:  # the histories the table is read from, beside it
        with gzip.open(raw_dir / f"ranks{ranks}_search_history.json.gz", "wt") as f:
            f.write((out / f"ranks{ranks}" / "search_history.json").read_text())
    result = {"command": command, "commit": commit, "machine": machine_info(), "search": search, "ranks": rows,
              "raw_files": str(raw_dir)}  # fmt: skip
    write_json_atomic(Path(f"{args.results}.json"), result, indent=1)
    lines = [f"# The demo's search on one process and on two ranks (`{command}`, commit {commit})", "",
             f"Machine: {result['machine'].get('cpu')}, {result['machine'].get('cores')} cores, CPU only (gloo). The two "
             "ranks share the two cores one process would use; the epochs to the decision carry over to N devices, "
             "the wall-clock does not.", "",
             "| ranks | decided at epoch (arch step) | epochs run | ops alive per epoch | search s |", "|---|---|---|---|---|"]  # fmt: skip
    for ranks, r in rows.items():
        lines.append(f"| {ranks} | {r['decided_epoch']} ({r['decided_arch_step']}) | {r['epochs']} | {r['ops_alive']} | "
                     f"{r['search_s']:.0f} |")
    Path(f"{args.results}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
