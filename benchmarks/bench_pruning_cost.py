"""What pruning buys per search iteration: step time and peak memory against the ops still alive.

IAC-LTH deletes pruned ops and edges from the supernet (weights freed, no compute). This script measures the
effect in isolation: the same search iteration (``IACSearchTrainer``: arch step + weight step, frozen backbone)
on the same batches, with the cells pruned to the stages an LTH search passes through:

* ``all``: 14 edges x 8 ops (112 ops alive), as at the start of the search;
* ``4 per edge``: every edge cut to 4 ops (56), the first step of the default ``keep_schedule`` (4, 2, 1);
* ``2 per edge, nodes decided``: every node down to its 2 inputs (8 edges) with 2 ops each (16);
* ``decided``: 8 edges x 1 op (8): the derived cell, still in the supernet's modules.

Each stage runs in its own fresh process, so its peak resident memory (``ru_maxrss``) is its own; the memory
reported is that peak minus the resident memory once the supernet, optimisers and batches are built, i.e. what
the iterations themselves take (activations, gradients, optimiser state, allocator caches). Time is the median iteration after one warm-up.
The stages run
interleaved over ``--repeats`` rounds, so ratios between them compare; absolute numbers from other machines do
not. The real searches' epoch wall-clock against ops alive is in ``benchmarks/results/lth_vs_full.md``.

    python benchmarks/bench_pruning_cost.py [--backbone unet] [--batch 8] [--size 128] [--steps 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

STAGES = {"all": (8, False), "4 per edge": (4, False), "2 per edge, nodes decided": (2, True), "decided": (1, True)}


def _structure(arch, ops_per_edge: int, decide_nodes: bool) -> dict:
    """A pruned structure of ``arch`` with a balanced mix of op types (edge ``e`` keeps ops ``e, e+1, ...``)."""
    from iac_components.genotype import edge_key

    node_inputs = {j: (list(v) if not decide_nodes else [v[0], v[-1]]) for j, v in arch.node_inputs.items()}
    edge_ops = {}
    for n, (key, ops) in enumerate(arch.edge_ops.items()):
        i, j = (int(s) for s in key.split("->"))
        if i not in node_inputs[j]:
            continue
        edge_ops[edge_key(i, j)] = [ops[(n + m) % len(ops)] for m in range(ops_per_edge)]
    return {"edge_ops": edge_ops, "node_inputs": {str(j): v for j, v in node_inputs.items()}}


def measure_stage(args: argparse.Namespace, stage: str) -> dict:
    """Build the supernet, prune it to ``stage``, time ``args.steps`` search iterations (in this process)."""
    import torch
    from ignite.engine import Events
    from monai.losses import DiceCELoss

    from iac_components.implant import implant_search_cells
    from iac_components.networks import build_backbone
    from iac_components.search import IACSearchTrainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    classes = 4
    net = implant_search_cells(build_backbone(args.backbone, 1, classes), cell_channels=args.width, partial_k=args.k)
    ops_per_edge, decide_nodes = STAGES[stage]
    net.cells.apply_structure([_structure(a, ops_per_edge, decide_nodes) for a in net.cells.archs])
    g = torch.Generator().manual_seed(1)
    batches = [
        {"image": torch.randn(args.batch, 1, args.size, args.size, generator=g),
         "label": torch.randint(0, classes, (args.batch, 1, args.size, args.size), generator=g)}
        for _ in range(args.steps + 2)
    ]  # fmt: skip
    wopt = torch.optim.SGD(list(net.weight_parameters()), lr=1e-3, momentum=0.9)
    aopt = torch.optim.Adam(list(net.arch_parameters()), lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    engine = IACSearchTrainer("cpu", 1, batches[:-1], batches[1:], net, wopt, aopt, loss, decollate=False)
    times: list[float] = []
    marks: dict[str, float] = {}

    engine.add_event_handler(Events.ITERATION_STARTED, lambda e: marks.update(t=time.perf_counter()))
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: times.append(time.perf_counter() - marks["t"]))
    rss_start = _rss_kb()  # the built supernet, optimisers and batches: the baseline of the iterations' peak
    engine.run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cell_params = sum(p.numel() for n, p in net.named_parameters() if n.startswith("cells.") and p.requires_grad)
    return {
        "stage": stage,
        "ops_alive": sum(a.ops_alive() for a in net.cells.archs),
        "edges_alive": sum(len(a.edge_ops) for a in net.cells.archs),
        "cell_weight_parameters": cell_params,
        "s_per_iteration": statistics.median(times[1:]),
        "raw_seconds": times[1:],
        "peak_step_memory_mb": (peak - rss_start) / 1024,
        "peak_rss_mb": peak / 1024,
    }


def _rss_kb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="unet", help="a name of iac_components.networks.BACKBONES")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4, help="timed iterations per stage (after one warm-up)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds over the stages")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # internal: measure one stage, print JSON
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pruning_cost"))
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(measure_stage(args, args.stage)))
        return

    from iac_components.utils import machine_info, write_json_atomic

    runs: dict[str, list[dict]] = {s: [] for s in STAGES}
    for _ in range(args.repeats):
        for stage in STAGES:
            out = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--stage", stage], check=True, capture_output=True, text=True,
                env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            runs[stage].append(r)
            print(f"{stage}: {r['ops_alive']} ops, {r['s_per_iteration']:.3f} s/it, {r['peak_step_memory_mb']:.0f} MB", flush=True)
    rows = []
    for stage, rs in runs.items():
        rows.append({k: rs[0][k] for k in ("stage", "ops_alive", "edges_alive", "cell_weight_parameters")} | {
            "s_per_iteration": statistics.median(t for r in rs for t in r["raw_seconds"]),
            "peak_step_memory_mb": statistics.median(r["peak_step_memory_mb"] for r in rs),
        })
    full = rows[0]
    for r in rows:
        r["time_vs_all"] = r["s_per_iteration"] / full["s_per_iteration"]
        r["memory_vs_all"] = r["peak_step_memory_mb"] / full["peak_step_memory_mb"] if full["peak_step_memory_mb"] > 0 else None
    doc = {"command": "python " + " ".join(sys.argv), "machine": machine_info() | {"torch_threads": args.threads},
           "config": {k: v for k, v in vars(args).items() if k != "stage"}, "results": rows, "runs": runs}
    out = Path(args.out)
    write_json_atomic(out.with_suffix(".json"), doc, indent=1)
    m = doc["machine"]
    lines = [
        "# Search-iteration cost against ops alive (CPU)",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {args.threads} thread(s), CPU only.",
        "",
        f"Backbone `{args.backbone}` (frozen), batch {args.batch}, {args.size}x{args.size}, cells width {args.width}, "
        f"K={args.k}; one search iteration = arch step + weight step. Median of {args.steps * args.repeats} "
        "iterations per stage; memory: peak resident memory of the iterations above the resident memory of the built "
        "supernet, median over the stage's processes.",
        "",
        "| stage | ops alive | edges | cell weights | s / iteration | x all | step memory (MB) | x all |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mem = "" if r["memory_vs_all"] is None else f"{r['memory_vs_all']:.2f}"
        lines.append(f"| {r['stage']} | {r['ops_alive']} | {r['edges_alive']} | {r['cell_weight_parameters']:,} | "
                     f"{r['s_per_iteration']:.3f} | {r['time_vs_all']:.2f} | {r['peak_step_memory_mb']:.0f} | {mem} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
