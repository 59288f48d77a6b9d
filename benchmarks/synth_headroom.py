"""Headroom of the synthetic ACDC stand-in: the baseline U-Net's test Dice at the benchmark's training budget
against a much longer training on the same data, folds and recipe.

The data and folds are the benchmark's (``iac_components.evidence.EVIDENCE_DATA``: 15 patients to train on, the
rest as the test fold; split seed 1); the training is the demo's (``DEMO_OVERRIDES["train"]``) at each epoch
budget given. Writes ``<out>/synth_headroom.{json,md}``.

    python benchmarks/synth_headroom.py --budgets 10,40 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from iac_components.bundles.run import find_bundle, run_workflow
from iac_components.demo import DEMO_OVERRIDES
from iac_components.evidence.runner import EVIDENCE_DATA
from iac_components.utils import machine_info, write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="10,40", help="training epochs to compare (the first is the benchmark's)")
    ap.add_argument("--work", default="benchmarks/runs/synth_headroom")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--split_seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from monai.bundle import ConfigWorkflow

    from iac_components.data import evaluate_patients, synthesize
    from iac_components.implant import load_network_weights

    torch.set_num_threads(args.threads)
    work = Path(args.work).resolve()
    raw = work / "raw"
    if not (raw / "training").is_dir():
        synthesize("acdc", raw, patients=EVIDENCE_DATA["patients"], seed=0, test_fraction=0.0)
    configs = find_bundle("acdc_iac") / "configs"
    rows = []
    for epochs in [int(b) for b in args.budgets.split(",")]:
        d = work / f"train_{epochs}"
        common = {**DEMO_OVERRIDES["common"], "dataset_dir": str(raw), "cache_dir": str(work / "cache"),
                  "ckpt_dir": str(d), "output_dir": str(d), "bundle_root": str(d), "split_seed": args.split_seed,
                  "split_fractions": EVIDENCE_DATA["split_fractions"]}  # fmt: skip
        t = time.perf_counter()
        run_workflow(configs / "train.json", "run", work / f"train_{epochs}.log", {**common, **DEMO_OVERRIDES["train"], "epochs": epochs})
        train_s = time.perf_counter() - t
        wf = ConfigWorkflow(config_file=str(configs / "train.json"), workflow_type=None, logging_file=False, **common)
        wf.initialize()
        net, data = wf.parser.get_parsed_content("network"), wf.parser.get_parsed_content("data")
        load_network_weights(net, str(d / "baseline.pt"))
        s = evaluate_patients(net.eval(), data.manifest, fold="test", splits=data.splits, out_dir=str(d / "test"), device="cpu")
        summary = s["summary"]
        rows.append({"epochs": epochs, "train_s": train_s, "test_patients": summary["num_patients"],
                     "mean_dice": summary["mean_dice"],
                     "per_class": {k: v["dice"]["mean"] for k, v in summary["classes"].items()}})  # fmt: skip
    result = {"command": "python benchmarks/synth_headroom.py " + " ".join(sys.argv[1:]), "machine": machine_info(),
              "data": EVIDENCE_DATA, "split_seed": args.split_seed, "train": DEMO_OVERRIDES["train"], "rows": rows}  # fmt: skip
    out = Path(args.out)
    write_json_atomic(out / "synth_headroom.json", result, indent=1)
    m = result["machine"]
    lines = [
        "# Headroom of the synthetic ACDC stand-in", "",
        f"Command: `{result['command']}`  ", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, CPU only.  ",
        f"Data: {EVIDENCE_DATA['patients']} synthetic patients, folds {EVIDENCE_DATA['split_fractions']} (split seed "
        f"{args.split_seed}); the demo's baseline recipe at each budget; patient-level test Dice.", "",
        "| training epochs | test patients | mean Dice | RV | MYO | LV | training (s) |", "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        pc = r["per_class"]
        lines.append(f"| {r['epochs']} | {r['test_patients']} | {r['mean_dice']:.4f} | {pc.get('RV', 0):.4f} | "
                     f"{pc.get('MYO', 0):.4f} | {pc.get('LV', 0):.4f} | {r['train_s']:.0f} |")
    (out / "synth_headroom.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
