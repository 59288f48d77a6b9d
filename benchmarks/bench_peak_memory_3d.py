"""Peak memory and time of one 3-D search iteration (all ops alive), per 3-D backbone and patch, on the CPU.

The 3-D counterpart of ``bench_peak_memory.py`` (issue 30: the 3-D supernet is where memory bites): MONAI's 3-D
BasicUNet (its default features) and a DynUNet with nnU-Net's 3d_fullres topology for an isotropic patch, search
cells implanted on every skip (8 ops, PC-DARTS K, cell width), one α/β step and one cell-weight step on random
volumes, each case in a fresh process under an address-space cap (see ``bench_peak_memory.py`` for how the CPU
figure is taken and what it means). CPU figures compare configurations and say whether an iteration's tensors fit
a budget; they are not a GPU's peak. No GPU figure here unless ``--device cuda`` ran on one.

    python benchmarks/bench_peak_memory_3d.py --cases basicunet3d:2:96:4:32 basicunet3d:2:64:4:32 ...
    python benchmarks/bench_peak_memory_3d.py --bundles brats_iac_3d kits_iac_3d amos_iac_3d \
        --out benchmarks/results/peak_memory_3d_bundles

A case is ``backbone:batch:patch:K:width`` (patch: the edge of a cubic patch). ``--bundles`` measures each 3-D
bundle at its own defaults instead: its channels, classes, patch, the search's batch, K and width (one search
iteration), and the baseline's training iteration (the 3-D U-Net alone, no cells, at the training batch, one Adam
step: what train.json and, with small cells added, retrain.json need).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from bench_peak_memory import in_a_new_process, measured_iteration

RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = 3


def _backbone(name: str, in_channels: int = 1, classes: int = CLASSES):
    from monai.networks.nets import BasicUNet, DynUNet

    if name == "basicunet3d":
        return BasicUNet(spatial_dims=3, in_channels=in_channels, out_channels=classes)
    if name == "dynunet3d":  # nnU-Net's 3d_fullres rule for an isotropic patch: 3x3x3 convs, stride 2 to 4^3
        return DynUNet(3, in_channels, classes, kernel_size=[3] * 5, strides=[1, 2, 2, 2, 2],
                       upsample_kernel_size=[2] * 4, filters=[32, 64, 128, 256, 320], norm_name="instance")  # fmt: skip
    raise SystemExit(f"error: unknown 3-D backbone {name!r}; choose basicunet3d or dynunet3d")


def measure(backbone: str, batch: int, patch: int | list[int], partial_k: int, cell_channels: int, device: str,
            cap_gb: float, in_channels: int = 1, classes: int = CLASSES, workflow: str = "search",
            bundle: str = "") -> dict:  # fmt: skip
    """One 3-D search iteration (``workflow="search"``), or one training iteration of the U-Net alone
    (``"train"``), in this process: the memory it needed and its wall-clock."""
    import torch
    from monai.losses import DiceCELoss

    from iac_components.implant import implant_search_cells

    torch.manual_seed(0)
    net = _backbone(backbone, in_channels, classes)
    if workflow == "search":
        net = implant_search_cells(net, cell_channels=cell_channels, partial_k=partial_k)
    net = net.to(device).train()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    size = list(patch) if isinstance(patch, (list, tuple)) else [patch] * 3
    shape = (batch, in_channels, *size)
    batches = [(torch.randn(shape, device=device), torch.randint(0, classes, (batch, 1, *size), device=device).float())
               for _ in range(2)]  # fmt: skip
    row = {"bundle": bundle, "workflow": workflow, "backbone": backbone, "batch": batch, "patch": patch,
           "in_channels": in_channels, "classes": classes, "device": device}  # fmt: skip
    if workflow == "train":
        params = list(net.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        row.update(partial_k=None, cell_channels=None, ops=None)
        peak, seconds = measured_iteration(lambda: _step(net, loss_fn, params, opt, batches[0]), device, cap_gb)
        return _result(row, peak, seconds, cap_gb)
    weights, arch = list(net.weight_parameters()), list(net.arch_parameters())
    w_opt = torch.optim.SGD(weights, lr=1e-3, momentum=0.9)
    a_opt = torch.optim.Adam(arch, lr=3e-4, betas=(0.5, 0.999))
    row.update(partial_k=partial_k, cell_channels=cell_channels, ops=sum(a.ops_alive() for a in net.cells.archs))

    def iteration() -> None:
        _step(net, loss_fn, arch, a_opt, batches[1])
        _step(net, loss_fn, weights, w_opt, batches[0])

    peak, seconds = measured_iteration(iteration, device, cap_gb)
    return _result(row, peak, seconds, cap_gb)


def _step(net, loss_fn, params, opt, xy) -> None:
    import torch

    x, y = xy
    out = net(x)
    loss = loss_fn(out[0] if isinstance(out, (list, tuple)) else out, y)
    for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
        p.grad = g
    opt.step()


def _result(row: dict, peak: float | None, seconds: float | None, cap_gb: float) -> dict:
    if peak is None:
        return {**row, "fits": False, "peak_gb": None, "seconds": None, "note": f"over the {cap_gb:g} GB cap"}
    return {**row, "fits": peak <= cap_gb * 2**30, "peak_gb": round(peak / 2**30, 2), "seconds": round(seconds, 1),
            "note": ""}  # fmt: skip


def _case(spec: str) -> dict:
    name, batch, patch, k, width = spec.split(":")
    return {"backbone": name, "batch": int(batch), "patch": int(patch), "partial_k": int(k), "cell_channels": int(width)}


def _bundle_cases(name: str) -> list[dict]:
    """A 3-D bundle's search iteration and training iteration at its own defaults (its generated configs)."""
    from iac_components.bundles.table import get_bundle
    from iac_components.data.settings import get_settings
    from iac_components.search.recipe import SEARCH_RECIPE

    spec = get_bundle(name)
    if not spec.volumetric:
        raise SystemExit(f"error: {name} is not a 3-D bundle; --bundles takes *_iac_3d names")
    s, v = get_settings(spec.dataset.adapter), spec.volume
    common = {"bundle": name, "backbone": "basicunet3d", "patch": list(v.patch_size),
              "in_channels": len(s.channel_names) or 1, "classes": len(s.class_names) or 2}  # fmt: skip
    return [
        {**common, "workflow": "search", "batch": v.search_batch_size, "partial_k": SEARCH_RECIPE.partial_k,
         "cell_channels": v.cell_channels},
        {**common, "workflow": "train", "batch": v.batch_size, "partial_k": 0, "cell_channels": 0},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["basicunet3d:2:64:4:32", "dynunet3d:2:64:4:32"])
    parser.add_argument("--bundles", nargs="+", help="3-D bundles measured at their own defaults (instead of --cases)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cap_gb", type=float, default=16.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "peak_memory_3d")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))), flush=True)
        return {}
    from iac_components.utils import machine_info, write_json_atomic

    rows = []
    cases = [c for b in args.bundles for c in _bundle_cases(b)] if args.bundles else [_case(c) for c in args.cases]
    for case in cases:
        row = in_a_new_process(__file__, {**case, "device": args.device, "cap_gb": args.cap_gb}, "--threads",
                               str(args.threads))  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/bench_peak_memory_3d.py", *(argv or sys.argv[1:])])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    meta = {"command": command, "commit": commit, "machine": machine_info(), "device": args.device,
            "cap_gb": args.cap_gb, "threads": args.threads}  # fmt: skip
    m = meta["machine"]
    title = ("of each 3-D bundle's search and training iteration at its defaults" if args.bundles
             else "of one 3-D search iteration (all 8 ops alive)")
    lines = [f"# Peak memory and time {title}", "", f"Command: `{command}`  ",
             f"Commit: {commit}  ", f"Machine: {m['cpu']}, {m.get('cores')} cores, torch {m['torch']}, device "
             f"{args.device}, {args.threads} threads.", "",
             "CPU: peak resident set minus the resident set before the iteration (one α/β step and one weight step), "
             f"a fresh process per case under an address-space cap of {args.cap_gb:g} GB above what it had mapped. "
             "Not a GPU's peak: the allocators differ; it says how cases compare and whether their tensors fit.", "",
             "| bundle | workflow | backbone | channels | classes | batch | patch | K | width | ops | peak (GB) | "
             "iteration (s) | within the cap |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        peak = "-" if r.get("peak_gb") is None else f"{r['peak_gb']:.2f}"
        secs = "-" if r.get("seconds") is None else f"{r['seconds']:.1f}"
        p = r["patch"] if isinstance(r["patch"], list) else [r["patch"]] * 3
        lines.append(f"| {r.get('bundle') or '-'} | {r.get('workflow', 'search')} | {r['backbone']} | "
                     f"{r.get('in_channels', 1)} | {r.get('classes', CLASSES)} | {r['batch']} | {'x'.join(map(str, p))} | "
                     f"{r.get('partial_k') or '-'} | {r.get('cell_channels') or '-'} | {r.get('ops') or '-'} | {peak} | "
                     f"{secs} | {'yes' if r['fits'] else 'no'}{' (' + r['note'] + ')' if r.get('note') else ''} |")  # fmt: skip
    if args.device == "cpu":
        lines += ["", "No GPU figure: no GPU was lent (CUDA rows are left out, not estimated)."]
    result = {"meta": meta, "rows": rows}
    write_json_atomic(Path(f"{args.out}.json"), result)
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
