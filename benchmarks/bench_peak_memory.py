"""Peak memory of one search iteration at the bundles' real sizes, per backbone, and what fits a 12 GB card.

One iteration is what ``IACSearchTrainer`` does (as ``bench_backbones.py`` times it): an α/β step on one batch and
a cell-weight step on another, the backbone frozen, gradients only into the parameters being stepped; the supernet
holds every op (the start of a search, its most expensive point). Each case runs in a fresh process.

How memory is measured:

* CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` over the iteration (tensors only; the caching
  allocator's reserve and the CUDA context come on top, about 0.5-1 GB).
* CPU: the process's peak resident set (``ru_maxrss``) minus its resident set just before the iteration (network,
  batches and libraries already loaded): the iteration's own working memory (activations kept for backward,
  gradients, optimiser state). The iteration runs under an address-space limit of ``--cap_gb`` above what the
  process had mapped before it (``RLIMIT_AS``), so a case that needs more fails inside its process ("over the cap")
  instead of pushing the machine out of memory. Address space is at least the resident memory, so a case that ran
  under the cap fits in it.

The CPU and CUDA allocators differ, so a CPU figure says how a configuration compares with another, and whether the
tensors of an iteration fit in a budget, not a GPU's exact peak.

Usage::

    python benchmarks/bench_peak_memory.py      # every implantable backbone at batch 16, 256x256; smaller where over
    python benchmarks/bench_peak_memory.py --backbones unet --variants   # smaller batch / K / width even if it fits
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: The bundles' search sizes (the issue's "real sizes"): batch 16, 256x256, PC-DARTS K = 4, cell width 32.
REAL = {"batch": 16, "size": 256, "partial_k": 4, "cell_channels": 32}
#: Smaller settings tried on a backbone that does not fit (each changes one thing from REAL, then two).
VARIANTS = [
    {"batch": 8}, {"batch": 4}, {"partial_k": 8}, {"cell_channels": 16}, {"batch": 8, "partial_k": 8},
    {"batch": 8, "cell_channels": 16},
]  # fmt: skip


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def measure(backbone: str, batch: int, size: int, partial_k: int, cell_channels: int, device: str, cap_gb: float) -> dict:
    """One search iteration of ``backbone`` in this process; the memory it needed."""
    import torch
    from bench_backbones import CLASSES, _sgd_step
    from monai.losses import DiceCELoss

    from iac_components.implant import implant_search_cells
    from iac_components.networks import StackedDeepSupervisionLoss, build_backbone

    torch.manual_seed(0)
    kwargs = {"patch_size": (size, size)} if backbone == "nnunet" else {}
    net = implant_search_cells(build_backbone(backbone, 1, CLASSES, **kwargs), cell_channels=cell_channels,
                               partial_k=partial_k).to(device).train()  # fmt: skip
    loss_fn = StackedDeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))
    shape = (batch, 1, size, size)
    batches = [(torch.randn(shape, device=device), torch.randint(0, CLASSES, shape, device=device).float())
               for _ in range(2)]  # fmt: skip
    weights, arch = list(net.weight_parameters()), list(net.arch_parameters())
    w_opt = torch.optim.SGD(weights, lr=1e-3, momentum=0.9)
    a_opt = torch.optim.Adam(arch, lr=3e-4, betas=(0.5, 0.999))
    row = {"backbone": backbone, "batch": batch, "size": size, "partial_k": partial_k, "cell_channels": cell_channels,
           "device": device, "ops": sum(a.ops_alive() for a in net.cells.archs)}  # fmt: skip

    def iteration() -> None:
        _sgd_step(net, arch, a_opt, loss_fn, batches[1])
        _sgd_step(net, weights, w_opt, loss_fn, batches[0])

    peak, _ = measured_iteration(iteration, device, cap_gb)
    if peak is None:
        return {**row, "fits": False, "peak_gb": None, "note": f"over the {cap_gb:g} GB cap"}
    return {**row, "fits": peak <= cap_gb * 2**30, "peak_gb": round(peak / 2**30, 2), "note": ""}


def measured_iteration(iteration, device: str, cap_gb: float) -> tuple[int | None, float | None]:
    """Run ``iteration()`` and return the memory it needed (bytes) and its wall-clock (s); ``(None, None)`` when it
    could not allocate within ``cap_gb`` (on the CPU an address-space limit above what the process had mapped)."""
    import time

    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_bytes()
        limit = _vm_bytes() + int(cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    t = time.perf_counter()
    try:
        iteration()
    except (RuntimeError, MemoryError) as e:
        if "memory" not in str(e).lower() and not isinstance(e, MemoryError):
            raise
        return None, None
    seconds = time.perf_counter() - t
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() - before, seconds
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before, seconds


def in_a_new_process(script: str, case: dict, *extra: str) -> dict:
    """``script --one <case>`` in a fresh process (its peak is its own): the row it prints, or a failed row."""
    proc = subprocess.run([sys.executable, script, "--one", json.dumps(case), *extra], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**case, "fits": False, "peak_gb": None, "seconds": None, "note": f"failed: {last[:200]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# Peak memory of one search iteration (all ops alive)",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']['cpu']}, {meta['machine'].get('cores')} cores, torch {meta['machine']['torch']}, "
        f"device {meta['device']}{' (' + meta['machine']['gpu'] + ')' if meta['machine'].get('gpu') else ''}.",
        "",
        meta["method"],
        "",
        "| backbone | batch | size | K | width | ops | peak (GB) | fits in the cap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = f"{r['peak_gb']:.2f}" if r.get("peak_gb") is not None else "-"
        lines.append(f"| {r['backbone']} | {r['batch']} | {r['size']}x{r['size']} | {r['partial_k']} | "
                     f"{r['cell_channels']} | {r.get('ops', '-')} | {peak} | "
                     f"{'yes' if r['fits'] else 'no'}{' (' + r['note'] + ')' if r.get('note') else ''} |")  # fmt: skip
    if meta["device"] == "cpu":
        lines += ["", "No GPU figure: this run had no GPU (CUDA rows are left out, not estimated)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="*", default=None, help="default: every implantable backbone")
    parser.add_argument("--variants", action="store_true",
                        help="the smaller settings of VARIANTS for every backbone (default: for those over the cap)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cap_gb", type=float, default=12.0, help="the memory budget (GB) a case must fit")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=REAL["batch"], help="slices per batch (toy runs: fewer)")
    parser.add_argument("--size", type=int, default=REAL["size"], help="in-plane size (toy runs: smaller)")
    parser.add_argument("--out", type=Path, default=RESULTS / "peak_memory")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))), flush=True)
        return {}
    from iac_components.networks import BACKBONES
    from iac_components.utils import machine_info, write_json_atomic

    names = args.backbones or [n for n, s in BACKBONES.items() if s.implantable]
    rows = []
    for name in names:
        for change in [{}] + VARIANTS:
            real = {**REAL, "batch": args.batch, "size": args.size}
            row = in_a_new_process(__file__, {"backbone": name, **real, **change, "device": args.device,
                                              "cap_gb": args.cap_gb})  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
            if change == {} and row["fits"] and not args.variants:
                break  # fits at the bundles' sizes: nothing smaller to look for
    method = (
        "CUDA: torch.cuda.max_memory_allocated over the iteration, minus what was allocated before it."
        if args.device.startswith("cuda") else
        f"CPU: peak resident set (ru_maxrss) minus the resident set just before the iteration, in a fresh process per "
        f"case, the iteration run under an address-space limit of {args.cap_gb:g} GB above what the process had "
        "mapped (RLIMIT_AS): 'no (over the cap)' means the iteration could not allocate within it."
    )  # fmt: skip
    meta = {"command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/bench_peak_memory.py", *(argv or sys.argv[1:])]),
            "machine": machine_info(), "device": args.device, "cap_gb": args.cap_gb, "method": method,
            "threads": args.threads}  # fmt: skip
    result = {"meta": meta, "rows": rows}
    write_json_atomic(Path(f"{args.out}.json"), result)
    Path(f"{args.out}.md").write_text(_markdown(meta, rows))
    print(_markdown(meta, rows))
    return result


if __name__ == "__main__":
    main()
