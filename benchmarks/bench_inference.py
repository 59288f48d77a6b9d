"""Seconds to segment one volume with the exported model (traced, as ``models/model.ts``), with and without cells.

The model is what ``inference.json`` runs: the 2-D network (base U-Net, wrapped in ``PadToMultiple``) applied to
the axial slices (``SliceWise``), traced, under MONAI's ``SlidingWindowInferer`` with ``roi_size = (-1, -1, w)``
(``w`` = ``window_slices``: how many slices go through the network as one batch). Volumes are the bundles' input
after their preprocessing, i.e. at the bundle's in-plane size (``spatial_size``: ACDC 256x256; BraTS 224x224, to which
``ResizeWithPadOrCropd`` crops a 240x240 slice), with the case's slices. Weights are random (the time does not
depend on them); the cells are a typical derived 8-edge cell of width 32 on every skip. Arms alternate per round
in one process, so their ratio compares.

    python benchmarks/bench_inference.py --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from monai.inferers import SlidingWindowInferer  # noqa: E402

from bench_throughput import GENOTYPE  # noqa: E402
from iac_components.implant import implant_fixed_cells  # noqa: E402
from iac_components.networks import build_backbone  # noqa: E402
from iac_components.networks.slicewise import SliceWise  # noqa: E402
from iac_components.utils import atomic_write, machine_info, write_json_atomic  # noqa: E402

CASES = {
    # ACDC-like: one cine-MRI frame at the bundle's 1.5 mm grid, 256x256, 10 slices; 4 classes
    "acdc_like": {"channels": 1, "classes": 4, "shape": (256, 256, 10)},
    # BraTS-like: 4 MR channels, 240x240x155 cropped in-plane to the bundle's 224x224; 4 classes
    "brats_like": {"channels": 4, "classes": 4, "shape": (224, 224, 155)},
}


def traced_model(channels: int, classes: int, cells: bool) -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    net = build_backbone("unet", channels, classes)
    if cells:
        net = implant_fixed_cells(net, GENOTYPE, cell_channels=32)
    model = SliceWise(net).eval()
    with torch.no_grad():
        return torch.jit.trace(model, torch.randn(1, channels, 64, 64, 2), check_trace=False)


def seconds_per_volume(model, volume: torch.Tensor, window: int) -> float:
    inferer = SlidingWindowInferer(roi_size=(-1, -1, window), sw_batch_size=1, overlap=0.0)
    t = time.perf_counter()
    with torch.inference_mode():
        out = inferer(volume, model)
    seconds = time.perf_counter() - t
    assert out.shape[2:] == volume.shape[2:]
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--windows", default="16,1", help="window_slices values (the bundles use 16)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "inference"))
    args = ap.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    machine = machine_info()
    rows = []
    for name in args.cases.split(","):
        case = CASES[name]
        models = {arm: traced_model(case["channels"], case["classes"], arm == "cells") for arm in ("no_cells", "cells")}
        volume = torch.randn(1, case["channels"], *case["shape"], generator=torch.Generator().manual_seed(0))
        for window in windows:
            for arm in models:  # warm-up: the first call of a traced model is slower
                seconds_per_volume(models[arm], volume[..., :2], window)
            times = {arm: [] for arm in models}
            for _ in range(args.rounds):
                for arm, model in models.items():
                    times[arm].append(seconds_per_volume(model, volume, window))
            ratios = [c / n for c, n in zip(times["cells"], times["no_cells"])]
            row = {"case": name, "shape": list(case["shape"]), "channels": case["channels"], "window_slices": window,
                   "no_cells_s": times["no_cells"], "cells_s": times["cells"], "ratio_per_round": ratios,
                   "ratio_median": statistics.median(ratios)}  # fmt: skip
            rows.append(row)
            print(f"{name} {case['shape']} window {window}: no cells {statistics.median(times['no_cells']):.2f} s, "
                  f"cells {statistics.median(times['cells']):.2f} s per volume, cells/no cells "
                  f"{row['ratio_median']:.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    command = ("python benchmarks/bench_inference.py " + " ".join(sys.argv[1:])).strip()
    write_json_atomic(Path(args.out + ".json"), {"command": command, "machine": machine, "rows": rows})
    lines = [
        f"# Inference seconds per volume, with and without cells (`{command}`)", "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, load {' '.join(machine['load_average_at_start'])} at "
        f"the start, {machine['torch_threads']} torch threads, torch {torch.__version__}, fp32, CPU. Traced SliceWise "
        "base U-Net (PadToMultiple) under SlidingWindowInferer(roi (-1, -1, window_slices)); random weights; cells: an "
        "8-edge cell of width 32 on every skip. Median over rounds; ratio per round, arms alternating.", "",
        "| case | volume (H, W, slices) x channels | window_slices | no cells s | cells s | cells / no cells |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['case']} | {tuple(r['shape'])} x {r['channels']} | {r['window_slices']} | "
                     f"{statistics.median(r['no_cells_s']):.2f} | {statistics.median(r['cells_s']):.2f} | "
                     f"{r['ratio_median']:.2f} |")
    atomic_write(Path(args.out + ".md"), lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
