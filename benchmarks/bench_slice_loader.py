"""Benchmark the 2-D slice loader alone: batches/s for batch 16, with and without augmentation, 0 and 2 workers.

Builds a synthetic dataset (default: 20 ACDC patients at the demo size), prepares it (timed too), then iterates
``monai.data.DataLoader(SliceDataset(...))`` without any model. Writes ``benchmarks/results/slice_loader.json``
and ``slice_loader.md`` with the command and the machine.

Usage::

    python benchmarks/bench_slice_loader.py [--dataset acdc] [--patients 20] [--batches 60] [--workers 0 2]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from iac_components.utils import machine_info

__all__ = ["main"]


def _rate(ds, batch_size: int, workers: int, batches: int, warmup: int, seed: int) -> dict:
    import torch
    from monai.data import DataLoader

    from iac_components.data.datasets import make_slice_sampler

    sampler = make_slice_sampler(ds, empty_weight=0.2, num_samples=(batches + warmup) * batch_size, seed=seed)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers, persistent_workers=False)
    it = iter(loader)
    t_start = time.perf_counter()
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    n = 0
    for batch in it:
        assert batch["image"].shape[0] == batch_size and torch.is_tensor(batch["label"])
        n += 1
    dt = time.perf_counter() - t0
    return {
        "batches": n,
        "seconds": round(dt, 3),
        "batches_per_s": round(n / dt, 2),
        "slices_per_s": round(n * batch_size / dt, 1),
        "startup_and_warmup_s": round(t0 - t_start, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="acdc")
    p.add_argument("--patients", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batches", type=int, default=60, help="timed batches per configuration")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads in the main process")
    p.add_argument("--work-dir", default=None, help="where the synthetic raw data and cache go (default: temp)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--name", default="slice_loader")
    args = p.parse_args(argv)

    import torch

    from iac_components.data.datasets import SliceDataset
    from iac_components.data.prepare import load_manifest, prepare_dataset
    from iac_components.data.synth import synth_settings, synthesize
    from iac_components.utils import atomic_write, write_json_atomic

    torch.set_num_threads(args.torch_threads)
    tmp = tempfile.TemporaryDirectory() if args.work_dir is None else None
    work = Path(tmp.name if tmp else args.work_dir)
    t0 = time.perf_counter()
    raw = synthesize(args.dataset, work / "raw", patients=args.patients, seed=0)
    t_synth = time.perf_counter() - t0
    t0 = time.perf_counter()
    manifest = prepare_dataset(
        args.dataset, raw, work / "cache", num_workers=2, progress=False, force=True, **synth_settings(args.dataset)
    )
    t_prep = time.perf_counter() - t0
    m = load_manifest(manifest)
    runs = []
    for augment in (False, True):
        ds = SliceDataset(manifest, augment=augment, seed=0)
        for w in args.workers:
            r = _rate(ds, args.batch_size, w, args.batches, args.warmup, seed=1)
            r.update(augment=augment, num_workers=w)
            runs.append(r)
            print(f"augment={augment!s:5} workers={w}: {r['batches_per_s']:8.2f} batches/s", file=sys.stderr)
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "torch_threads_main": args.torch_threads,
        "dataset": args.dataset,
        "patients": args.patients,
        "cases": m["num_cases"],
        "slices": sum(c["num_slices"] for c in m["cases"]),
        "slice_shape": m["cases"][0]["shape"][:3],
        "image_dtype": m["settings"]["image_dtype"],
        "batch_size": args.batch_size,
        "synthesize_s": round(t_synth, 2),
        "prepare_s": round(t_prep, 2),
        "runs": runs,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    write_json_atomic(out / f"{args.name}.json", result)
    mach = result["machine"]
    lines = [
        f"# Slice loader benchmark ({args.dataset}, {result['cases']} cases, {result['slices']} slices "
        f"of {result['slice_shape']}, {result['image_dtype']})",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {mach['cpu']}, {mach['cores']} cores ({mach['usable_cores']} usable); torch {mach['torch']}, "
        f"MONAI {mach['monai']}, Python {mach['python']}; torch threads in the main process: {args.torch_threads}; "
        f"load average at start: {' '.join(mach['load_average_at_start'])}  ",
        f"Synthesize {args.patients} patients: {result['synthesize_s']} s; prepare (2 threads): {result['prepare_s']} s  ",
        f"Date: {result['date']}",
        "",
        f"| augmentation | num_workers | batches/s (batch {args.batch_size}) | slices/s | first batches (s) |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {'yes' if r['augment'] else 'no'} | {r['num_workers']} | {r['batches_per_s']} | {r['slices_per_s']} | "
            f"{r['startup_and_warmup_s']} |"
        )
    text = "\n".join(lines) + "\n"

    def write_md(path: str) -> None:
        with open(path, "w") as f:
            f.write(text)

    atomic_write(out / f"{args.name}.md", write_md)
    print(text)
    if tmp:
        tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
