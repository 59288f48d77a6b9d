"""Same-process A/B: the ReLU that DARTS's conv ops start with, computed once per node of a cell and shared by
every conv op on the edges that leave it (:func:`iac_components.ops.relu_first_forward`, the library's default)
against each op computing its own (the op's plain ``forward``).

Both arms build the same network from the same seed; they differ only in that one function; rounds alternate the
arms. Search = our whole search iteration (``IACSearchTrainer``: arch step + weight step, frozen backbone, all ops
alive: every node's ReLU feeds 5 conv ops on each of its edges); fixed = the retrain step with a fixed 8-edge cell
per skip (``bench_throughput.GENOTYPE``: only node 0 feeds two conv ops); infer = the fixed network's forward under
``torch.inference_mode``. Memory: the bytes that the search supernet's forward pass (all ops alive) saves for its
backward (unique storages seen by ``torch.autograd.graph.saved_tensors_hooks``), which is what a shared ReLU can
change: a deterministic count, not a timing.

    python benchmarks/ab_shared_relu.py --rounds 3 --steps 4
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from ab_norm_layout import CONFIGS, _backbone
from bench_throughput import GENOTYPE, _batches, time_search, time_supervised
from monai.losses import DiceCELoss

import iac_components.cell as cell_module
from iac_components.implant import implant_fixed_cells, implant_search_cells
from iac_components.utils import atomic_write, machine_info, machine_line, write_json_atomic

ARMS = ("per_op", "shared")


@contextlib.contextmanager
def relu_per_op():
    """Every op computes its own ReLU: the cells call the op's plain forward."""
    shared = cell_module.relu_first_forward
    cell_module.relu_first_forward = lambda op, x, cache: op(x)
    try:
        yield
    finally:
        cell_module.relu_first_forward = shared


def time_inference(net: torch.nn.Module, batches: list[dict]) -> list[float]:
    net.eval()
    times = []
    with torch.inference_mode():
        for b in batches:
            t = time.perf_counter()
            net(b["image"])
            times.append(time.perf_counter() - t)
    return times


def saved_for_backward_gib(config: dict, arm: str) -> float:
    """GiB of the unique storages the search supernet's forward and loss save for the backward pass."""
    net = implant_search_cells(_backbone(config["backbone"]), cell_channels=config["width"], partial_k=4).train()
    batch = _batches(1, config["batch"], config["size"], 4, torch.device("cpu"))[0]
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with relu_per_op() if arm == "per_op" else contextlib.nullcontext():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            DiceCELoss(to_onehot_y=True, softmax=True)(net(batch["image"]), batch["label"])
    return sum(storages.values()) / 2**30


def run(config: dict, step: str, arm: str, steps: int) -> float:
    base = _backbone(config["backbone"])
    if step == "search":
        net = implant_search_cells(base, cell_channels=config["width"], partial_k=4)
    else:
        net = implant_fixed_cells(base, GENOTYPE, cell_channels=config["width"])
    device = torch.device("cpu")
    batches = _batches(steps + 2, config["batch"], config["size"], 4, device)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    with relu_per_op() if arm == "per_op" else contextlib.nullcontext():
        if step == "search":
            times = time_search(net, batches, device, "fp32", loss)
        elif step == "fixed":
            times = time_supervised(net, batches[: steps + 1], device, "fp32", loss)
        else:
            times = time_inference(net, batches[: steps + 1])
    return statistics.median(times[1:])  # the first iteration warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--shared_first", action="store_true", help="run the shared arm first in each round")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "shared_relu"))
    args = ap.parse_args()
    machine = machine_info()
    rows = []
    memory = []
    for name in args.configs.split(","):
        gib = {arm: saved_for_backward_gib(CONFIGS[name], arm) for arm in ARMS}
        memory.append({"config": name, **{f"{arm}_saved_gib": g for arm, g in gib.items()}})
        print(f"{name} search forward saves {gib['per_op']:.3f} GiB per-op, {gib['shared']:.3f} GiB shared "
              f"({gib['shared'] / gib['per_op']:.2f}x)", flush=True)
        for step in ("search", "fixed", "infer"):
            t: dict[str, list[float]] = {arm: [] for arm in ARMS}
            for _ in range(args.rounds):
                for arm in ARMS[::-1] if args.shared_first else ARMS:
                    t[arm].append(run(CONFIGS[name], step, arm, args.steps))
            ratios = [a / b for a, b in zip(t["per_op"], t["shared"])]
            rows.append({"config": name, "step": step, "per_op_s": t["per_op"], "shared_s": t["shared"],
                         "speedup_per_round": ratios, "speedup_median": statistics.median(ratios)})  # fmt: skip
            print(f"{name} {step}: per-op {statistics.median(t['per_op']):.3f} s, shared {statistics.median(t['shared']):.3f}"
                  f" s per iteration, speed-up {statistics.median(ratios):.2f}x (rounds "
                  f"{', '.join(f'{r:.2f}' for r in ratios)})", flush=True)  # fmt: skip
    command = ("python benchmarks/ab_shared_relu.py " + " ".join(sys.argv[1:])).strip()
    write_json_atomic(Path(args.out + ".json"), {"command": command, "machine": machine, "rows": rows, "memory": memory})
    lines = [
        f"# Cells' conv ops: one shared ReLU per node vs one ReLU per op (`{command}`)", "",
        f"{machine_line(machine)}, fp32, CPU. Seconds per iteration "
        "(median over the steps of a round); speed-up = per-op / shared, per round, same process, arms alternating.", "",
        "| configuration | step | per-op ReLU s | shared ReLU s | speed-up (median of rounds) |", "|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['config']} | {r['step']} | {statistics.median(r['per_op_s']):.3f} | "
                     f"{statistics.median(r['shared_s']):.3f} | {r['speedup_median']:.2f}x |")  # fmt: skip
    lines += ["", "Saved for the backward pass by the search supernet's forward (all ops alive, one batch):", "",
              "| configuration | per-op ReLU GiB | shared ReLU GiB | shared / per-op |", "|---|---|---|---|"]
    for m in memory:
        lines.append(f"| {m['config']} | {m['per_op_saved_gib']:.3f} | {m['shared_saved_gib']:.3f} | "
                     f"{m['shared_saved_gib'] / m['per_op_saved_gib']:.2f} |")
    atomic_write(Path(args.out + ".md"), lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
