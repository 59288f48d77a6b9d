"""Why the IAC ops never run channels-last under bf16 autocast on the CPU (issue 9, item 9: a bf16 search on the
CPU turned NaN within its first steps).

Counts, for each layout and depthwise kernel of the search space (sep_conv: 3x3 / 5x5 dilation 1; dil_conv:
3x3 / 5x5 dilation 2), how often the weight gradient of a depthwise convolution under CPU bf16 autocast is
non-finite (bf16 autocast and fp32), over random inputs of the sizes the cells see (8 images, 4-16 channels, 32-128 pixels, 3 draws
each). The contiguous kernels are the fix: ``iac_components.cell._CellBase._layout`` keeps contiguous tensors
whenever CPU autocast is on.

    python benchmarks/check_bf16_depthwise_grad.py [--out benchmarks/results/bf16_depthwise_grad]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

from iac_components.utils import machine_info, write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/bf16_depthwise_grad")
    args = ap.parse_args()
    torch.manual_seed(0)
    counts: dict[str, dict[str, int]] = {}
    for bf16, channels_last, (k, dil), size, c, _ in itertools.product(
        (True, False), (False, True), ((3, 1), (5, 1), (3, 2), (5, 2)), (32, 48, 64, 128), (4, 8, 16), range(3)
    ):
        conv = torch.nn.Conv2d(c, c, k, padding=dil * (k - 1) // 2, dilation=dil, groups=c, bias=False)
        x = torch.randn(8, c, size, size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(x)
        (gw,) = torch.autograd.grad(y, [conv.weight], torch.randn_like(y))
        key = f"{'bf16 autocast' if bf16 else 'fp32'}, {'channels-last' if channels_last else 'contiguous'}, {k}x{k} dilation {dil}"
        row = counts.setdefault(key, {"cases": 0, "non_finite": 0})
        row["cases"] += 1
        row["non_finite"] += int(not torch.isfinite(gw).all())
    command = "python " + " ".join(sys.argv)
    machine = machine_info()
    write_json_atomic(Path(f"{args.out}.json"), {"command": command, "machine": machine, "counts": counts}, indent=1)
    lines = ["# Depthwise-conv weight gradients on the CPU: bf16 autocast and fp32, contiguous and channels-last", "",
             f"Command: `{command}`  ",
             f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, CPU only.", "",
             "| precision, layout, kernel | non-finite weight gradients |", "|---|---|"]
    lines += [f"| {k} | {v['non_finite']} of {v['cases']} |" for k, v in counts.items()]
    lines += ["", "The IAC cells therefore run their ops contiguous whenever CPU autocast is on (channels-last "
                  "in fp32, where it is faster and these counts are zero)."]
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
