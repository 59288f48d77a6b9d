"""CPU cost of every backbone of the table: parameters, a plain training step, a fixed-cell step, a search step.

For each backbone of :data:`iac_components.networks.BACKBONES` (built by ``build_backbone``, 1 input channel,
4 classes, wrapped in ``PadToMultiple`` as the bundles use them):

* ``plain``: one SGD step of the whole network (forward, DiceCE loss — deep-supervision stack where the network
  has one — backward, step);
* ``fixed``: the same with fixed cells implanted (``implant_fixed_cells``, backbone fine-tuned as in the retrain);
* ``search``: one architecture step (α, β on one batch) and one weight step (cell weights on another) of the
  supernet with the frozen backbone (``implant_search_cells``), as ``IACSearchTrainer`` does it: gradients only
  into the parameters being stepped.

Each step is timed as the median of ``--steps`` repetitions after one warm-up; ratios are to the plain step of the
same backbone in the same run. Results go to ``benchmarks/results/backbones.json`` and ``backbones.md``.

Usage::

    python benchmarks/bench_backbones.py                       # batch 4, 128x128, all backbones
    python benchmarks/bench_backbones.py --backbones resnet50 nnunet --size 96
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from monai.losses import DiceCELoss

from iac_components.genotype import Genotype
from iac_components.implant import implant_fixed_cells, implant_search_cells
from iac_components.networks import BACKBONES, StackedDeepSupervisionLoss, build_backbone
from iac_components.utils import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = 4
# a DARTS-like derived cell with 8 edges, every default op family represented
GENOTYPE = Genotype(
    (
        ((0, "sep_conv_3x3"), (1, "skip_connect")),
        ((0, "conv_3x3"), (2, "max_pool_3x3")),
        ((1, "dil_conv_3x3"), (3, "avg_pool_3x3")),
        ((2, "sep_conv_5x5"), (4, "dil_conv_5x5")),
    )
)


def _loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _timed(step: Callable[[], None], steps: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _sgd_step(net: torch.nn.Module, params: list, optimizer: torch.optim.Optimizer, loss_fn, batch) -> None:
    x, y = batch
    loss = loss_fn(net(x), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = g
    optimizer.step()


def bench_one(name: str, batch: int, size: int, steps: int, cell_channels: int, partial_k: int) -> dict:
    torch.manual_seed(0)
    kwargs = {"patch_size": (size, size)} if name == "nnunet" else {}
    net = build_backbone(name, 1, CLASSES, **kwargs)
    loss_fn = StackedDeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))
    g = torch.Generator().manual_seed(0)
    shape = (batch, 1, size, size)
    batches = [
        (torch.randn(shape, generator=g), torch.randint(0, CLASSES, shape, generator=g).float()) for _ in range(2)
    ]
    row: dict = {"backbone": name, "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2)}

    plain = copy.deepcopy(net).train()
    params = list(plain.parameters())
    opt = torch.optim.SGD(params, lr=1e-3)
    row["plain_s"] = _timed(lambda: _sgd_step(plain, params, opt, loss_fn, batches[0]), steps)
    del plain, opt

    if not BACKBONES[name].implantable:
        row.update(fixed_s=None, search_s=None, fixed_ratio=None, search_ratio=None, cell_params_M=None)
        return row

    fixed = implant_fixed_cells(copy.deepcopy(net), GENOTYPE, cell_channels=cell_channels).train()
    params = list(fixed.weight_parameters())
    opt = torch.optim.SGD(params, lr=1e-3)
    row["fixed_s"] = _timed(lambda: _sgd_step(fixed, params, opt, loss_fn, batches[0]), steps)
    row["fixed_cell_params_M"] = round(sum(p.numel() for p in fixed.cells.parameters()) / 1e6, 3)
    del fixed, opt

    search = implant_search_cells(copy.deepcopy(net), cell_channels=cell_channels, partial_k=partial_k).train()
    weights, arch = list(search.weight_parameters()), list(search.arch_parameters())
    w_opt = torch.optim.SGD(weights, lr=1e-3)
    a_opt = torch.optim.Adam(arch, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)

    def search_step() -> None:
        _sgd_step(search, arch, a_opt, loss_fn, batches[1])  # α/β on the search-val batch
        _sgd_step(search, weights, w_opt, loss_fn, batches[0])  # cell weights on the search-train batch

    row["search_s"] = _timed(search_step, steps)
    row["cell_params_M"] = round(sum(p.numel() for p in search.cells.parameters()) / 1e6, 3)
    row["fixed_ratio"] = round(row["fixed_s"] / row["plain_s"], 2)
    row["search_ratio"] = round(row["search_s"] / row["plain_s"], 2)
    return row


def _markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# Backbone step cost on the CPU",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, torch {meta['torch']} ({meta['threads']} intra-op thread(s)), "
        f"Python {meta['python']}; load average before/after: {meta['loadavg_before']} / {meta['loadavg_after']}.",
        f"Batch {meta['batch']} at {meta['size']}x{meta['size']}, 1 input channel, {CLASSES} classes; median of "
        f"{meta['steps']} steps after one warm-up. Cells: width {meta['cell_channels']}, PC-DARTS K="
        f"{meta['partial_k']}, default ops; fixed cell = 8 edges (`{GENOTYPE}`). `search` = one α/β step + one "
        "weight step on the frozen backbone; ratios to the plain step of the same backbone in this run.",
        "",
        "| backbone | params (M) | plain step (s) | fixed-cell step (s) | x plain | search step (s) | x plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        def f(v, fmt="{:.3f}"):
            return "n/a" if v is None else fmt.format(v)

        lines.append(
            f"| {r['backbone']} | {r['params_M']:.2f} | {f(r['plain_s'])} | {f(r.get('fixed_s'))} | "
            f"{f(r.get('fixed_ratio'), '{:.2f}')} | {f(r.get('search_s'))} | {f(r.get('search_ratio'), '{:.2f}')} |"
        )
    lines += ["", "`attention_unet` and `unetplusplus` are baselines without cells.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="*", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cell-channels", type=int, default=32)
    parser.add_argument("--partial-k", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    meta = {
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *(argv or sys.argv[1:])]),
        "cpu": machine_info()["cpu"],
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "batch": args.batch,
        "size": args.size,
        "steps": args.steps,
        "cell_channels": args.cell_channels,
        "partial_k": args.partial_k,
        "loadavg_before": _loadavg(),
    }
    rows = []
    t0 = time.perf_counter()
    for name in args.backbones:
        row = bench_one(name, args.batch, args.size, args.steps, args.cell_channels, args.partial_k)
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta["loadavg_after"] = _loadavg()
    meta["total_s"] = round(time.perf_counter() - t0, 1)
    result = {"meta": meta, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "backbones.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "backbones.md").write_text(_markdown(meta, rows))
    print(_markdown(meta, rows))
    return result


if __name__ == "__main__":
    main()
