"""Seconds to segment one volume with the exported model (traced, as ``models/model.ts``), with and without cells.

The model is what ``inference.json`` runs: the 2-D network (base U-Net, wrapped in ``PadToMultiple``) applied to
the axial slices (``SliceWise``), traced, under MONAI's ``SlidingWindowInferer`` with ``roi_size = (-1, -1, w)``
(``w`` = ``window_slices``: how many slices go through the network as one batch). Volumes are the bundles' input
after their preprocessing, i.e. at the bundle's in-plane size (``spatial_size``: ACDC 256x256; BraTS 224x224, to which
``ResizeWithPadOrCropd`` crops a 240x240 slice), with the case's slices. Weights are random (the time does not
depend on them); the cells are a typical derived 8-edge cell of width 32 (`--width`) on every skip. Arms alternate per round
in one process, so their ratio compares.

``--compile`` adds two arms: the same eager network under ``torch.compile`` (what ``inference.json`` runs with
``--compile true``: MONAI's ``SupervisedEvaluator(compile=True)`` compiles the eager network; model.ts is TorchScript
and is not compiled). Its first call on the volume's window shape compiles; that time is reported apart
(``compile_s``) and the rounds after it are the steady per-volume time.

    python benchmarks/bench_inference.py --rounds 2
    python benchmarks/bench_inference.py --backbones unet,resnet50 --compile --windows 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_throughput import GENOTYPE
from monai.inferers import SlidingWindowInferer

from iac_components.implant import implant_fixed_cells
from iac_components.networks import build_backbone
from iac_components.networks.slicewise import SliceWise
from iac_components.utils import atomic_write, machine_info, machine_line, write_json_atomic

CASES = {
    # ACDC-like: one cine-MRI frame at the bundle's 1.5 mm grid, 256x256, 10 slices; 4 classes
    "acdc_like": {"channels": 1, "classes": 4, "shape": (256, 256, 10)},
    # BraTS-like: 4 MR channels, 240x240x155 cropped in-plane to the bundle's 224x224; 4 classes
    "brats_like": {"channels": 4, "classes": 4, "shape": (224, 224, 155)},
}


def eager_model(
    backbone: str, channels: int, classes: int, cells: bool, size: tuple[int, int], width: int = 32
) -> torch.nn.Module:
    torch.manual_seed(0)
    # the nnU-Net topology is planned from the patch size (the bundles': their in-plane size)
    net = build_backbone(backbone, channels, classes, **({"patch_size": size} if backbone == "nnunet" else {}))
    if cells:
        net = implant_fixed_cells(net, GENOTYPE, cell_channels=width)
    return SliceWise(net).eval()


def traced_model(
    backbone: str, channels: int, classes: int, cells: bool, size: tuple[int, int], width: int = 32
) -> torch.jit.ScriptModule:
    with torch.no_grad():
        model = eager_model(backbone, channels, classes, cells, size, width)
        return torch.jit.trace(model, torch.randn(1, channels, *size, 2), check_trace=False)


def build_arms(backbone: str, case: dict, compile_: bool, width: int = 32) -> dict[str, torch.nn.Module]:
    args = (backbone, case["channels"], case["classes"])
    size = tuple(case["shape"][:2])
    arms = {arm: traced_model(*args, arm == "cells", size, width) for arm in ("no_cells", "cells")}
    if compile_:
        for arm in ("no_cells", "cells"):
            arms[arm + "_compiled"] = torch.compile(eager_model(*args, arm == "cells", size, width))
    return arms


# (numerator, denominator) arms of the ratios reported
RATIOS = [("cells", "no_cells"), ("cells_compiled", "no_cells_compiled"), ("cells_compiled", "no_cells"),
          ("no_cells_compiled", "no_cells"), ("cells_compiled", "cells")]


def seconds_per_volume(model, volume: torch.Tensor, window: int) -> float:
    inferer = SlidingWindowInferer(roi_size=(-1, -1, window), sw_batch_size=1, overlap=0.0)
    sync = torch.cuda.synchronize if volume.is_cuda else (lambda: None)
    sync()
    t = time.perf_counter()
    with torch.inference_mode():
        out = inferer(volume, model)
    sync()
    seconds = time.perf_counter() - t
    assert out.shape[2:] == volume.shape[2:]
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--windows", default="16,1", help="window_slices values (the bundles use 16)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--backbones", default="unet", help="backbones of the bundles (keys of BACKBONES)")
    ap.add_argument("--compile", action="store_true", help="also time the eager networks under torch.compile")
    ap.add_argument("--width", type=int, default=32, help="the cells' inner width (cell_channels)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check runs it there)")
    ap.add_argument("--size", type=int, default=None, help="in-plane size instead of the case's (toy runs)")
    ap.add_argument("--slices", type=int, default=None, help="slices instead of the case's (toy runs)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "inference"))
    args = ap.parse_args()
    device = torch.device(args.device)
    windows = [int(w) for w in args.windows.split(",")]
    machine = machine_info()
    rows = []
    for name in args.cases.split(","):
        case = dict(CASES[name])
        h, w, d = case["shape"]
        case["shape"] = (args.size or h, args.size or w, args.slices or d)
        volume = torch.randn(1, case["channels"], *case["shape"], generator=torch.Generator().manual_seed(0)).to(device)
        for backbone in args.backbones.split(","):
            models = {k: m.to(device) for k, m in build_arms(backbone, case, args.compile, args.width).items()}
            for window in windows:
                compile_s = {}
                for arm, model in models.items():
                    # warm-up: a traced model's first call is slower; a compiled one compiles for this window shape
                    warm_up = volume if arm.endswith("_compiled") else volume[..., :2]
                    seconds = seconds_per_volume(model, warm_up, window)
                    if arm.endswith("_compiled"):
                        compile_s[arm] = seconds
                times = {arm: [] for arm in models}
                for _ in range(args.rounds):
                    for arm, model in models.items():
                        times[arm].append(seconds_per_volume(model, volume, window))
                row = {"case": name, "backbone": backbone, "shape": list(case["shape"]), "channels": case["channels"],
                       "window_slices": window, "seconds": times, "first_call_s": compile_s}  # fmt: skip
                for num, den in RATIOS:
                    if num in times and den in times:
                        ratios = [a / b for a, b in zip(times[num], times[den])]
                        row[f"{num}/{den}"] = {"per_round": ratios, "median": statistics.median(ratios)}
                rows.append(row)
                print(f"{name} {backbone} window {window}: " + ", ".join(
                    f"{arm} {statistics.median(t):.2f} s" for arm, t in times.items()) + "; " + ", ".join(
                    f"{k} {row[k]['median']:.2f}" for k in row if "/" in k), flush=True)  # fmt: skip
    command = ("python benchmarks/bench_inference.py " + " ".join(sys.argv[1:])).strip()
    write_json_atomic(Path(args.out + ".json"), {"command": command, "machine": machine, "rows": rows})
    lines = [
        f"# Inference seconds per volume, with and without cells (`{command}`)", "",
        f"{machine_line(machine)}, fp32, {args.device}. Traced SliceWise "
        "network (PadToMultiple) under SlidingWindowInferer(roi (-1, -1, window_slices)), as model.ts runs; random "
        f"weights; cells: an 8-edge cell of width {args.width} on every skip. 'compiled': the eager network under torch.compile "
        "(inference.json --compile true), its first call (compilation for the window shape plus that volume) apart. Median over rounds; "
        "ratios per round, arms alternating, so only ratios and same-run times compare.", "",
        "| case | backbone | volume (H, W, slices) x channels | window | no cells s | cells s | cells / no cells "
        "| compiled: no cells s | cells s | cells / no cells | compiled cells / traced no cells | first compiled volume s "
        "(no cells, cells) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip

    def med(row: dict, arm: str) -> str:
        return f"{statistics.median(row['seconds'][arm]):.2f}" if arm in row["seconds"] else "-"

    def ratio(row: dict, key: str) -> str:
        return f"{row[key]['median']:.2f}" if key in row else "-"

    for r in rows:
        first = r["first_call_s"]
        lines.append(
            f"| {r['case']} | {r['backbone']} | {tuple(r['shape'])} x {r['channels']} | {r['window_slices']} | "
            f"{med(r, 'no_cells')} | {med(r, 'cells')} | {ratio(r, 'cells/no_cells')} | "
            f"{med(r, 'no_cells_compiled')} | {med(r, 'cells_compiled')} | "
            f"{ratio(r, 'cells_compiled/no_cells_compiled')} | {ratio(r, 'cells_compiled/no_cells')} | "
            + (", ".join(f"{first[a]:.0f}" for a in ("no_cells_compiled", "cells_compiled") if a in first) or "-")
            + " |"
        )
    atomic_write(Path(args.out + ".md"), lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
