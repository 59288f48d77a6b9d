"""Same-process A/B: the cells' batch norms as torch's ``nn.BatchNorm2d`` (on the channels-last maps the cells run
in on the CPU) against :class:`iac_components.ops.ChannelsFirstBatchNorm2d` (copy to channels-first, norm, copy back),
every norm of the cells in both the search and the fixed step (the library uses it in the search cells' ops only,
where this measured a gain).

Both arms build the same network from the same seed and differ only in the norms' class; rounds alternate the arms.
Search = our whole search iteration (``IACSearchTrainer``: arch step + weight step, frozen backbone); fixed = the
retrain step with a fixed 8-edge cell per skip.

    python benchmarks/ab_norm_layout.py --rounds 3 --steps 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from bench_throughput import GENOTYPE, _batches, time_search, time_supervised
from monai.losses import DiceCELoss
from monai.networks.nets import FlexibleUNet

from iac_components.implant import implant_fixed_cells, implant_search_cells
from iac_components.networks import build_backbone
from iac_components.ops import ChannelsFirstBatchNorm2d, channels_first_norms
from iac_components.utils import atomic_write, machine_info, machine_line, write_json_atomic

CONFIGS = {
    # the demo's search: BasicUNet ("unet"), batch 8, 64x64, width 16, K=4
    "unet_b8_64_w16": {"backbone": "unet", "batch": 8, "size": 64, "width": 16},
    # the small throughput configuration: FlexibleUNet-resnet50, batch 4, 128x128, width 32, K=4
    "resnet50_b4_128_w32": {"backbone": "resnet50", "batch": 4, "size": 128, "width": 32},
}


def _backbone(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("unet", 1, 4) if name == "unet" else FlexibleUNet(1, 4, name, spatial_dims=2)


def _as_native(net: torch.nn.Module) -> torch.nn.Module:
    for m in net.modules():
        if type(m) is ChannelsFirstBatchNorm2d:
            m.__class__ = torch.nn.BatchNorm2d
    return net


def run(config: dict, arm: str, norm: str, steps: int) -> float:
    base = _backbone(config["backbone"])
    if arm == "search":
        net = implant_search_cells(base, cell_channels=config["width"], partial_k=4)
    else:
        net = implant_fixed_cells(base, GENOTYPE, cell_channels=config["width"])
    _as_native(net)  # whatever the library's default, each arm sets the cells' norms itself
    if norm == "channels_first":
        channels_first_norms(net.cells)
    device = torch.device("cpu")
    batches = _batches(steps + 2, config["batch"], config["size"], 4, device)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    times = (time_search if arm == "search" else time_supervised)(net, batches, device, "fp32", loss)
    return statistics.median(times[1:])  # the first iteration warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "norm_layout"))
    args = ap.parse_args()
    rows = []
    for name, config in CONFIGS.items():
        for arm in ("search", "fixed"):
            t = {"native": [], "channels_first": []}
            for _ in range(args.rounds):
                for norm in t:
                    t[norm].append(run(config, arm, norm, args.steps))
            ratios = [a / b for a, b in zip(t["native"], t["channels_first"])]
            rows.append({"config": name, "arm": arm, "native_s": t["native"], "channels_first_s": t["channels_first"],
                         "speedup_per_round": ratios, "speedup_median": statistics.median(ratios)})
            print(f"{name} {arm}: native {statistics.median(t['native']):.3f} s, channels-first "
                  f"{statistics.median(t['channels_first']):.3f} s per iteration, speed-up "
                  f"{statistics.median(ratios):.2f}x (rounds {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    command = "python benchmarks/ab_norm_layout.py " + " ".join(sys.argv[1:])
    machine = machine_info()
    write_json_atomic(Path(args.out + ".json"), {"command": command.strip(), "machine": machine, "rows": rows})
    lines = [f"# Cells' batch norm: torch's on channels-last vs channels-first (`{command.strip()}`)", "",
             f"{machine_line(machine)}, fp32. Seconds per iteration "
             "(median over the steps of a round); speed-up = native / channels-first, per round, same process.", "",
             "| configuration | step | native s | channels-first s | speed-up (median of rounds) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['arm']} | {statistics.median(r['native_s']):.3f} | "
                     f"{statistics.median(r['channels_first_s']):.3f} | {r['speedup_median']:.2f}x |")
    atomic_write(Path(args.out + ".md"), lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
