"""``iac demo``: the whole pipeline on synthetic ACDC-layout data, through the ``acdc_iac`` bundle's own configs.

Writes a synthetic ACDC dataset (official layout and file names), then runs the bundle workflows a user runs,
in order, with overrides sized for two CPU cores: train the baseline U-Net, search IAC cells with IAC-LTH
(JSD progressive pruning), retrain with the derived cells, evaluate per patient in the original grid, export
TorchScript, and segment one volume from the TorchScript model. Prints a short table at the end.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from iac_components.bundles.run import LogTo, find_bundle, run_workflow
from iac_components.search.recipe import demo_search

__all__ = ["DEMO_OVERRIDES", "run_demo"]

#: The demo's settings: small synthetic volumes and short runs, so that the whole pipeline takes minutes on two
#: CPU cores. Everything else is the bundle's default.
DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    "common": {
        "device": "cpu",
        "amp": False,
        "num_workers": 0,
        "spacing": [2.0, 2.0],
        "spatial_size": [64, 64],
    },
    "train": {"epochs": 10, "batch_size": 16, "learning_rate": 3e-3},
    # the demo's search: the bundles' recipe with the differences iac_components.search.recipe.demo_search names
    # (5 of the 8 ops, width 16, batch 8, arch lr 1e-2, a 6-epoch warm-up, a 16-step window, ties settled); the
    # rule decides the cell within the 30-epoch cap (its table gives the epoch and the fraction)
    "search": demo_search().overrides(),
    # retrain, evaluate and export read the cell's width (16) from genotype.json, as a user's would
    "retrain": {"epochs": 6, "batch_size": 16, "learning_rate": 1e-3},
    "evaluate": {},
}


class _Console(logging.StreamHandler):
    """The search's progress lines on the real console; a subclass, so that :class:`~iac_components.bundles.run.LogTo`
    leaves it alone."""


def _show_progress() -> None:
    import sys

    from iac_components.search.record import PROGRESS

    for h in [h for h in PROGRESS.handlers if isinstance(h, _Console)]:
        PROGRESS.removeHandler(h)
    handler = _Console(sys.stdout)  # this console, before the workflows' output goes to the log files
    handler.setFormatter(logging.Formatter("[demo]   %(message)s"))
    PROGRESS.addHandler(handler)
    PROGRESS.setLevel(logging.INFO)


def run_demo(out: str | Path = "demo", patients: int = 20, seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Run the demo under ``out`` and return its summary (also written to ``out/demo_summary.json``).

    Args:
        out: output folder (raw data, cache, models, evaluation, predictions, logs).
        patients: synthetic ACDC patients.
        seed: seed of the synthetic data and of every workflow.
        threads: torch threads (default: torch's choice).
    """
    import torch

    from iac_components.data import synthesize
    from iac_components.utils import write_json_atomic

    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out).resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    bundle = find_bundle("acdc_iac", out)
    configs = bundle / "configs"
    t_start = time.perf_counter()
    raw = synthesize("acdc", out / "raw", patients=patients, seed=seed)
    paths = {
        "bundle_root": str(bundle),
        "dataset_dir": str(raw),
        "cache_dir": str(out / "cache"),
        "ckpt_dir": str(out / "models"),
        "output_dir": str(out / "eval"),
        "seed": seed,
    }
    common = {**paths, **DEMO_OVERRIDES["common"]}
    times: dict[str, float] = {}
    _show_progress()

    def step(name: str, file: str, run_id: str = "run", **extra: Any) -> None:
        print(f"[demo] {name} ...", flush=True)
        times[name] = run_workflow(configs / file, run_id, logs / f"{name}.log", {**common, **extra})
        print(f"[demo] {name} done in {times[name]:.0f} s (log: {logs / (name + '.log')})", flush=True)

    print(f"[demo] bundle {bundle}; synthetic ACDC ({patients} patients) in {raw}", flush=True)
    step("train", "train.json", **DEMO_OVERRIDES["train"])
    step("search", "search.json", run_id="search", **DEMO_OVERRIDES["search"])
    step("retrain", "retrain.json", **DEMO_OVERRIDES["retrain"])
    step("evaluate", "evaluate.json", **DEMO_OVERRIDES["evaluate"])

    print("[demo] export TorchScript ...", flush=True)
    from monai.bundle import ckpt_export

    t = time.perf_counter()
    size = DEMO_OVERRIDES["common"]["spatial_size"]
    with LogTo(logs / "export.log"):  # tracing warnings: the trace is checked against eager in the tests
        ckpt_export(
            net_id="network_def", filepath=str(out / "models" / "model.ts"), ckpt_file=str(out / "models" / "model.pt"),
            meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"), key_in_ckpt="model",
            use_trace=True, input_shape=[1, 1, size[0], size[1], 8], ckpt_dir=str(out / "models"),
            bundle_root=str(bundle),
        )  # fmt: skip
    times["export"] = time.perf_counter() - t
    volume = sorted((raw / "training").glob("patient*/patient*_frame01.nii.gz"))[0]
    step("inference", "inference.json", input=str(volume), output_dir=str(out / "predictions"), torchscript="true",
         ckpt_dir=str(out / "models"))  # fmt: skip
    summary = _summary(out, times, time.perf_counter() - t_start, bundle)
    write_json_atomic(out / "demo_summary.json", summary)
    _print_table(summary)
    return summary


def _summary(out: Path, times: dict[str, float], total: float, bundle: Path) -> dict[str, Any]:
    history = json.loads((out / "eval" / "search_history.json").read_text())
    evaluation = json.loads((out / "eval" / "evaluation" / "evaluation.json").read_text())
    retrain_cells = out / "eval" / "cell_contribution.json"
    last = history["epochs"][-1]
    comparison = evaluation.get("comparison", {}).get("vs_reference", {}).get("iac", {})
    return {
        "bundle": str(bundle),
        "total_s": total,
        "step_s": times,
        "search": {
            "wall_clock_s": history["total_wall_clock_s"],
            "epochs": last["epoch"],
            "max_epochs": DEMO_OVERRIDES["search"]["epochs"],
            "arch_steps": last["arch_steps"],
            "ops_alive_start": history["ops_alive_start"],
            "ops_alive_end": last["ops_alive"],
            "decided_by_pruning": history["decided_at"] is not None,
            "decided_epoch": history["decided_at"]["epoch"] if history["decided_at"] else None,
            "decided_arch_step": history["decided_at"]["arch_step"] if history["decided_at"] else None,
            "pruning_events": len(history["events"]),
            "rule": history["rule"],
            "overrides": {k: v for k, v in DEMO_OVERRIDES["search"].items() if k != "epochs"},
        },
        "cells": {
            "search": last.get("cells"),
            "retrain": json.loads(retrain_cells.read_text()) if retrain_cells.is_file() else None,
        },
        "dice": {
            "baseline": evaluation["baseline"]["mean_dice"],
            "iac": evaluation["iac"]["mean_dice"],
            "diff": comparison.get("mean_diff"),
            "ci95": comparison.get("ci95"),
            "wilcoxon_p": comparison.get("wilcoxon_p"),
            "test_patients": evaluation["iac"]["num_patients"],
        },
        "outputs": {
            "genotype": str(out / "models" / "genotype.json"),
            "search_history": str(out / "eval" / "search_history.json"),
            "evaluation": str(out / "eval" / "evaluation"),
            "model_ts": str(out / "models" / "model.ts"),
            "prediction": str(out / "predictions"),
            "logs": str(out / "logs"),
        },
    }


def _print_table(s: dict[str, Any]) -> None:
    se, d = s["search"], s["dice"]
    decided = (f"yes, by the JSD rule at epoch {se['decided_epoch']} of {se['max_epochs']} "
               f"({se['decided_epoch'] / se['max_epochs']:.2f} of the cap; arch step {se['decided_arch_step']})"
               if se["decided_by_pruning"] else
               f"no: stopped at its cap of {se['max_epochs']} epochs; the genotype is derived from α/β there")
    rows = [
        ("search wall-clock", f"{se['wall_clock_s']:.0f} s over {se['epochs']} epochs ({se['arch_steps']} arch steps)"),
        ("cell decided early", decided),
        ("ops alive", f"{se['ops_alive_start']} -> {se['ops_alive_end']} ({se['pruning_events']} pruning events)"),
        ("test Dice, baseline U-Net", f"{d['baseline']:.3f}"),
        ("test Dice, U-Net + IAC", f"{d['iac']:.3f}"),
    ]
    if d["diff"] is not None:
        rows.append(("IAC - baseline (paired)", f"{d['diff']:+.3f} (95% CI {d['ci95'][0]:+.3f}..{d['ci95'][1]:+.3f}, "
                                               f"Wilcoxon p={d['wilcoxon_p']:.2g}, {d['test_patients']} patients)"))
        # the retrain also fine-tunes the backbone: part of any gain is the extra training, not the cells
        rows.append(("caveat", f"IAC had {DEMO_OVERRIDES['retrain']['epochs']} more epochs of training; `iac benchmark` "
                               "controls for it (no-cell and random-cell arms)"))
    for stage in ("search", "retrain"):
        c = (s.get("cells") or {}).get(stage)
        if c:
            rows.append((f"cells after {stage}", "max |γ| " + "/".join(f"{g:.3f}" for g in c["gamma_max_abs"])
                         + ", ‖γ·cell‖/‖skip‖ " + "/".join(f"{r:.3f}" for r in c["ratio"]) + " (levels 0..3)"))
    rows.append(("demo's search settings", ", ".join(
        f"{k} {'/'.join(v) if isinstance(v, list) else v}" for k, v in se["overrides"].items())
        + " (the rest is the bundle's: its rule's epsilon, margin and patience; the demo differs where the bundle's "
          "would not fit 5 minutes on 2 cores: 5 of 8 ops, width 16, batch 8, a larger arch lr and a warm-up of "
          "6 epochs for its small data, a window of 16 arch steps for its 13-step epochs, and ties settled after "
          "3 x patience checks, as skip_connect and avg_pool_3x3 are on some edges; docs/method.md)"))
    rows.append(("what this shows", "the pipeline runs end to end; one seed and a handful of test patients cannot "
                                    "show that cells or the search help (that is `iac benchmark`'s job)"))
    rows.append(("time per stage", ", ".join(f"{k} {v:.0f} s" for k, v in s["step_s"].items())))
    rows.append(("total time", f"{s['total_s']:.0f} s (with the synthetic data)"))
    width = max(len(r[0]) for r in rows)
    print("\n" + "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows))
    print("\n  outputs:")
    for k, v in s["outputs"].items():
        print(f"    {k}: {v}")
