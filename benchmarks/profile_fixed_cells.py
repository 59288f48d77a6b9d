"""Where the fixed-cell step's extra time goes: the plain and fixed-cell training steps, and each level's cell
alone (forward + backward on that level's real encoder features), in one process.

    python benchmarks/profile_fixed_cells.py [--batch 8] [--size 256] [--threads 2] [--steps 2]

FlexibleUNet with MONAI's resnet50 encoder and the fixed genotype of ``bench_throughput.py`` (width 32). Writes
``benchmarks/results/fixed_cell_levels.json`` and ``.md`` with the command and the machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from bench_backbones import _timed
from bench_throughput import GENOTYPE, _net
from monai.losses import DiceCELoss

from iac_components.implant import get_network_adapter, implant_fixed_cells
from iac_components.utils import machine_info, write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fixed_cell_levels"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 1, args.size, args.size, generator=g)
    y = torch.randint(0, 4, (args.batch, 1, args.size, args.size), generator=g)

    def train_step(net):
        return lambda: loss_fn(net(x), y).backward()

    plain = _net("resnet50", 4).train()
    fixed = implant_fixed_cells(_net("resnet50", 4), GENOTYPE, cell_channels=args.width).train()
    rows = {"plain step": _timed(train_step(plain), args.steps), "fixed-cell step": _timed(train_step(fixed), args.steps)}
    with torch.no_grad():
        feats = get_network_adapter(fixed.backbone).encode(x)
    levels = []
    for level, cell in enumerate(fixed.cells.cells):
        skip = feats[level].clone().requires_grad_()
        coarse = feats[level + 1].clone().requires_grad_()
        t = _timed(lambda cell=cell, skip=skip, coarse=coarse: cell(skip, coarse).pow(2).mean().backward(), args.steps)
        levels.append({"level": level, "skip_shape": list(skip.shape), "s_fwd_bwd": t})
    doc = {"command": "python " + " ".join(sys.argv), "machine": machine_info(), "config": vars(args),
           "steps_s": rows, "cells_s": levels}
    out = Path(args.out)
    write_json_atomic(out.with_suffix(".json"), doc, indent=1)
    extra = rows["fixed-cell step"] - rows["plain step"]
    lines = [
        "# Fixed-cell step: where the extra time goes (CPU)", "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {doc['machine']['cpu']}, {doc['machine']['cores']} cores, torch {doc['machine']['torch']}, "
        f"{args.threads} threads, CPU only.", "",
        f"FlexibleUNet-resnet50, batch {args.batch}, {args.size}x{args.size}, fixed cells of width {args.width}, fp32; "
        f"median of {args.steps} after a warm-up.", "",
        "| what | s | share of the extra time |", "|---|---|---|",
        f"| plain step | {rows['plain step']:.3f} | |",
        f"| fixed-cell step | {rows['fixed-cell step']:.3f} ({rows['fixed-cell step'] / rows['plain step']:.2f}x plain) | |",
    ]
    for r in levels:
        lines.append(f"| cell {r['level']} alone, forward + backward, skip {tuple(r['skip_shape'])} | {r['s_fwd_bwd']:.3f} | "
                     f"{r['s_fwd_bwd'] / extra:.0%} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
