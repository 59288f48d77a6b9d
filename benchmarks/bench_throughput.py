"""Throughput of a search step, a fixed-cell step and a plain step, against the straightforward reference supernet.

Images/s counts the images of the weight batch per iteration (not the search's arch-step batch), in every arm.
All arms run in the same process on the same machine, interleaved per repeat, so their ratios compare; absolute
numbers from another machine do not.

    python benchmarks/bench_throughput.py --device cpu --batch 32 --size 256 --steps 3 --dtypes fp32,bf16

Arms (FlexibleUNet with MONAI's own encoder, default ``resnet50``; cells of width 32 in its 4 skips):

* ``plain``: the network's own training step (all weights).
* ``fixed``: the retrain step: fixed 8-edge cells + the backbone, all trained.
* ``search``: our search iteration (``IACSearchTrainer``: arch step on one batch + weight step on another,
  frozen backbone), with PC-DARTS ``K``.
* ``reference``: the same iteration in the straightforward supernet (``reference_supernet.py``).
* ``plain_compiled``, ``fixed_compiled`` (not run by default): the plain and the fixed step with the network under
  ``torch.compile`` (what MONAI's ``SupervisedTrainer(compile=True)`` does); the first iteration (compilation) is
  reported apart, and an arm that fails to compile is reported with its error, not dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.losses import DiceCELoss
from monai.networks.nets import FlexibleUNet
from reference_supernet import ReferenceSupernet

from iac_components.genotype import Genotype
from iac_components.implant import get_network_adapter, implant_fixed_cells, implant_search_cells
from iac_components.search import IACSearchTrainer
from iac_components.utils import atomic_write, machine_info, write_json_atomic

# a typical derived cell: 8 edges, a mix of the op types
GENOTYPE = Genotype(
    (
        ((0, "sep_conv_3x3"), (1, "skip_connect")),
        ((0, "dil_conv_3x3"), (2, "sep_conv_5x5")),
        ((1, "conv_3x3"), (3, "max_pool_3x3")),
        ((2, "dil_conv_5x5"), (4, "avg_pool_3x3")),
    )
)


def _net(backbone: str, classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return FlexibleUNet(1, classes, backbone, spatial_dims=2)


def _autocast(device: torch.device, dtype: str):
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(n: int, batch: int, size: int, classes: int, device: torch.device) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [
        {
            "image": torch.randn(batch, 1, size, size, generator=g).to(device),
            "label": torch.randint(0, classes, (batch, 1, size, size), generator=g).to(device),
        }
        for _ in range(n)
    ]


def time_supervised(net, batches, device, dtype, loss_fn) -> list[float]:
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    net.train()
    times = []
    for b in batches:
        _sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with _autocast(device, dtype):
            pred = net(b["image"])
        loss_fn(pred.float(), b["label"]).backward()
        opt.step()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def time_reference(net, batches, device, dtype, loss_fn) -> list[float]:
    wopt = torch.optim.SGD(net.weight_parameters(), lr=1e-3, momentum=0.9)
    aopt = torch.optim.Adam(net.arch_parameters(), lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    net.train()
    times = []
    for i in range(len(batches) - 1):
        arch_b, weight_b = batches[i + 1], batches[i]
        _sync(device)
        t = time.perf_counter()
        aopt.zero_grad()
        with _autocast(device, dtype):
            pred = net(arch_b["image"])
        loss_fn(pred.float(), arch_b["label"]).backward()
        aopt.step()
        wopt.zero_grad()
        with _autocast(device, dtype):
            pred = net(weight_b["image"])
        loss_fn(pred.float(), weight_b["label"]).backward()
        wopt.step()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def time_search(net, batches, device, dtype, loss_fn) -> list[float]:
    wopt = torch.optim.SGD(list(net.weight_parameters()), lr=1e-3, momentum=0.9)
    aopt = torch.optim.Adam(list(net.arch_parameters()), lr=6e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    engine = IACSearchTrainer(
        device, 1, batches[:-1], batches[1:], net, wopt, aopt, loss_fn,
        amp=dtype != "fp32", amp_dtype="bfloat16" if dtype != "fp32" else None, decollate=False,
    )  # fmt: skip
    times, start = [], []
    engine.add_event_handler(Events.ITERATION_STARTED, lambda e: (_sync(device), start.append(time.perf_counter())))
    engine.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: (_sync(device), times.append(time.perf_counter() - start[-1]))
    )
    engine.run()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3, help="timed iterations per arm (after one warm-up)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds of all arms")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--arms", default="plain,fixed,search,reference")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "throughput"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    classes = 4
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    feature_channels = get_network_adapter(_net(args.backbone, classes)).feature_channels
    arms = args.arms.split(",")
    results: dict[str, dict[str, list[float]]] = {d: {a: [] for a in arms} for d in args.dtypes.split(",")}
    batches = _batches(args.steps + 2, args.batch, args.size, classes, device)
    errors: dict[str, str] = {}
    first_call_s: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for dtype in results:
            for arm in arms:
                if arm in ("plain_compiled", "fixed_compiled"):
                    net = _net(args.backbone, classes)
                    if arm == "fixed_compiled":
                        net = implant_fixed_cells(net, GENOTYPE, cell_channels=args.width)
                    try:
                        compiled = torch.compile(net.to(device))
                        t = time_supervised(compiled, batches[: args.steps + 1], device, dtype, loss_fn)
                    except Exception as e:  # an inductor failure is a result of this arm, not a crash of the run
                        # the failing op and the assertion, not inductor's generic last line
                        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                        keep = [ln for ln in lines if ln.startswith(("Error in op", "expected size"))] or lines[:1]
                        errors[f"{dtype} {arm}"] = f"{type(e).__name__}: {' / '.join(keep)[:400]}"
                        print(f"{dtype} {arm}: failed: {errors[f'{dtype} {arm}']}", flush=True)
                        continue
                    first_call_s.setdefault(f"{dtype} {arm}", []).append(t[0])
                elif arm == "plain":
                    t = time_supervised(_net(args.backbone, classes).to(device), batches[: args.steps + 1], device, dtype, loss_fn)
                elif arm == "fixed":
                    net = implant_fixed_cells(_net(args.backbone, classes), GENOTYPE, cell_channels=args.width)
                    t = time_supervised(net.to(device), batches[: args.steps + 1], device, dtype, loss_fn)
                elif arm == "search":
                    net = implant_search_cells(_net(args.backbone, classes), cell_channels=args.width, partial_k=args.k)
                    t = time_search(net.to(device), batches, device, dtype, loss_fn)
                elif arm == "reference":
                    net = ReferenceSupernet(_net(args.backbone, classes), feature_channels, args.width, args.k)
                    t = time_reference(net.to(device), batches, device, dtype, loss_fn)
                else:
                    raise SystemExit(f"unknown arm {arm!r}")
                results[dtype][arm].extend(t[1:])  # the first iteration warms up
                print(f"{dtype} {arm}: {statistics.median(t[1:]):.3f} s/iteration", flush=True)
    table = {}
    for dtype, per_arm in results.items():
        med = {a: statistics.median(v) for a, v in per_arm.items() if v}
        row = {a: {"s_per_iteration": m, "images_per_s": args.batch / m} for a, m in med.items()}
        if "search" in med and "reference" in med:
            row["search_speedup_vs_reference"] = med["reference"] / med["search"]
        if "fixed" in med and "plain" in med:
            row["fixed_over_plain"] = med["fixed"] / med["plain"]
        if "fixed_compiled" in med and "plain_compiled" in med:
            row["fixed_compiled_over_plain_compiled"] = med["fixed_compiled"] / med["plain_compiled"]
        if "fixed_compiled" in med and "plain" in med:
            row["fixed_compiled_over_plain"] = med["fixed_compiled"] / med["plain"]
        table[dtype] = row
    doc = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine_info(),
        "config": vars(args),
        "results": table,
        "raw_seconds": results,
        "first_call_s": first_call_s,
        "errors": errors,
    }
    out = Path(args.out)
    write_json_atomic(out.with_suffix(".json"), doc)
    lines = [
        f"# Throughput ({doc['machine'].get('gpu', doc['machine']['cpu'])}, {args.device})",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {json.dumps(doc['machine'])}",
        "",
        f"FlexibleUNet-{args.backbone}, batch {args.batch}, {args.size}x{args.size}, cells width {args.width}, K={args.k}; "
        f"median of {args.steps * args.repeats} iterations after a warm-up. Images/s counts the weight batch.",
        "",
        "| dtype | arm | s / iteration | images / s |",
        "|---|---|---|---|",
    ]
    for dtype, row in table.items():
        for arm in arms:
            if arm in row:
                lines.append(f"| {dtype} | {arm} | {row[arm]['s_per_iteration']:.3f} | {row[arm]['images_per_s']:.2f} |")
    lines.append("")
    for dtype, row in table.items():
        if "search_speedup_vs_reference" in row:
            lines.append(f"- {dtype}: search images/s = {row['search_speedup_vs_reference']:.2f} x the reference's")
        if "fixed_over_plain" in row:
            lines.append(f"- {dtype}: fixed-cell step = {row['fixed_over_plain']:.2f} x the plain step's time")
        if "fixed_compiled_over_plain_compiled" in row:
            lines.append(f"- {dtype}: compiled fixed-cell step = {row['fixed_compiled_over_plain_compiled']:.2f} x the "
                         f"compiled plain step's time, {row['fixed_compiled_over_plain']:.2f} x the eager plain step's")
    for key, seconds in first_call_s.items():
        lines.append(f"- {key}: first iteration (compilation) {', '.join(f'{t:.0f}' for t in seconds)} s")
    for key, error in errors.items():
        lines.append(f"- {key}: failed to compile: `{error}`")
    atomic_write(out.with_suffix(".md"), lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
