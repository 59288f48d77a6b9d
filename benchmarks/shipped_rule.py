"""Does the search the bundles ship end early by its own rule? ``search.json`` as shipped, measured to its decision.

Synthetic ACDC at a small in-plane size (32 x 32 at 4 mm) with as many patients as real ACDC needs to give an
epoch of the search as many architecture steps as real ACDC at the bundle's batch size: real ACDC's search-train
fold is 35 % of 100 patients x 2 frames x about 10 slices = about 700 slices, 44 arch steps per epoch at batch 16;
here 140 synthetic patients (35 % = 49, 2 frames x 6-9 slices) give about 46. The rule counts arch steps (its
window, its scale), and the warm-up counts weight steps, so what matters for *when* it decides is that count, not
the image size (docs/method.md, "the scale argument").

Stages (each resumes; a stage whose output exists is skipped):

* ``data``, ``baseline``: the dataset and the baseline U-Net (``train.json``);
* ``full``: ``search.json`` with every shipped value, observe-only (``--prune false``) to its 200-epoch budget:
  the history records each check's logits and the rule's verdicts (what the shipped rule would have done);
* ``lth``: ``search.json`` as shipped (the rule cutting), to its decision or the budget;
* ``retrain``: both cells retrained and evaluated per patient with ``retrain.json`` / ``evaluate.json``;
* ``report``: ``benchmarks/results/shipped_rule.{json,md}`` (replays of the rule values on the recorded full
  search, the live search's decision, the retrained cells side by side).

* ``nnunet``: nnU-Net v2's own IAC search (``nnUNetTrainerIACSearch`` at its defaults: the bundles' recipe, a check
  every 50 arch steps) on a synthetic nnU-Net dataset of the same size, to its decision or its budget.

Run: ``python benchmarks/shipped_rule.py --out benchmarks/runs/shipped_rule --stages data,baseline,full,lth,retrain,report``
(each stage in the order given; the long ones, ``full`` and ``lth``, resume where they stopped).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from iac_components.bundles.run import find_bundle, run_workflow
from iac_components.data import synthesize
from iac_components.search.recipe import SEARCH_RECIPE

#: The rule as it shipped before this measurement (ε 0.1, window 32, patience 2, margin 1.0, one keep size at a time),
#: replayed from its own code at that commit for the comparison.
PREVIOUS_RULE_COMMIT = "b64bda3"
RETRAIN = {"epochs": 20}

#: The data: 140 synthetic ACDC patients (all in ``training/``), the bundle's own split fractions.
PATIENTS = 140
GEOMETRY = {"spacing": [4.0, 4.0], "spatial_size": [32, 32]}
#: What this run changes from the bundle: the device and the loaders (no workers, no AMP on the CPU, where the
#: bundle's AMP would mean bf16 autocast), and the geometry above. Every value of the search recipe is shipped.
RUN = {"device": "cpu", "amp": False, "num_workers": 0, **GEOMETRY}
BASELINE = {"epochs": 50}

#: How the committed results were made (the stages before the report; each from this script).
RUNS_AS_MADE = (
    "python benchmarks/shipped_rule.py --out benchmarks/runs/shipped_rule --stages data,baseline,full (started "
    "before commit dfc4280; observe-only, so the rule's code does not change its trajectory and the replays read its "
    "logits; stopped by hand at epoch 49 of 200 to free the core)",
    "python benchmarks/shipped_rule.py --out benchmarks/runs/shipped_rule --stages lth (commit dfc4280, the rule as "
    "shipped; later commits change only settling, which the bundles leave off, and the events' labels)",
    "python benchmarks/shipped_rule.py --out benchmarks/runs/shipped_rule --stages retrain (commit 4f3bd8e)",
    "python benchmarks/shipped_rule.py --out benchmarks/runs/shipped_rule --stages nnunet (commit 8938872, from a "
    "fresh run folder on a fresh machine of the same kind: plan, nnU-Net's baseline, the IAC search to its decision; "
    "one thread, the other core and part of this one busy with other runs)",
    "the report re-reads the bundle-search stages (data, baseline, full, lth, retrain) from the raw files committed "
    "beside it (benchmarks/results/shipped_rule/), since their run folder was on an earlier machine",
)


def _common(out: Path, seed: int) -> dict[str, Any]:
    return {**RUN, "dataset_dir": str(out / "raw"), "cache_dir": str(out / "cache"), "bundle_root": str(out),
            "seed": seed, "split_seed": 0}  # fmt: skip


def stage_data(out: Path) -> None:
    if not (out / "raw" / "training").is_dir():
        synthesize("acdc", out / "raw", patients=PATIENTS, seed=0, test_fraction=0.0)


def stage_baseline(out: Path, configs: Path, seed: int) -> None:
    b = out / "baseline"
    if (b / "baseline.pt").is_file() and (out / "baseline_s.txt").is_file():
        return
    t = run_workflow(configs / "train.json", "run", out / "logs" / "baseline.log",
                     {**_common(out, seed), **BASELINE, "ckpt_dir": str(b), "output_dir": str(b)})  # fmt: skip
    (out / "baseline_s.txt").write_text(f"{t}\n")


def stage_search(out: Path, configs: Path, seed: int, arm: str, extra: dict[str, Any] | None = None) -> None:
    """``arm`` ``full`` (observe-only) or ``lth`` (the shipped rule cutting); resumes from its last epoch."""
    d = out / f"search_{arm}"
    if (d / "genotype.json").is_file():
        return
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "baseline" / "baseline.pt", d / "baseline.pt")
    resume = any((d / "search_checkpoints").glob("*.pt"))
    run_workflow(configs / "search.json", "search", out / "logs" / f"search_{arm}{'_resumed' if resume else ''}.log",
                 {**_common(out, seed), "prune": arm != "full", "resume": resume, "ckpt_dir": str(d),
                  "output_dir": str(d), **(extra or {})})  # fmt: skip


#: The nnU-Net stage: nnU-Net's own baseline trainer shortened (nnU-Net's way, a subclass that changes the budget),
#: and the IAC search at its defaults but for the name of that baseline.
NNUNET_TRAINERS = """
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from iac_components.nnunet.trainers import nnUNetTrainerIACSearch


class nnUNetTrainer_shipped(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 20, 50, 10


class nnUNetTrainerIACSearch_shipped(nnUNetTrainerIACSearch):
    baseline_trainer = "nnUNetTrainer_shipped"
"""


def stage_nnunet(out: Path, seed: int) -> None:
    """nnU-Net v2's IAC search at its defaults on a synthetic nnU-Net dataset: to its decision or its budget."""
    import os

    from iac_components.nnunet import trainers_dir

    work = out / "nnunet"
    result = out / "nnunet_result.json"
    if result.is_file():
        return
    raw = work / "nnUNet_raw"
    if not raw.is_dir():
        # 32 x 32 like the bundle stage: nnU-Net plans a smaller network for it, and the rule counts arch steps
        synthesize("nnunet", raw, patients=20, seed=seed, size=32, slices=(8, 10), dataset_id=502)
    (work / "trainers").mkdir(parents=True, exist_ok=True)
    (work / "trainers" / "shipped_trainers.py").write_text(NNUNET_TRAINERS)
    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(work / "preprocessed"),
           "nnUNet_results": str(work / "results"), "nnUNet_extTrainer": os.pathsep.join([trainers_dir(), str(work / "trainers")]),
           "nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "nnUNet_compile": "false", "OMP_NUM_THREADS": "1"}  # fmt: skip
    binaries = Path(sys.executable).parent
    steps = [["nnUNetv2_plan_and_preprocess", "-d", "502", "-c", "2d", "-np", "1", "--verify_dataset_integrity"],
             ["nnUNetv2_train", "502", "2d", "0", "-tr", "nnUNetTrainer_shipped", "-device", "cpu"],
             ["nnUNetv2_train", "502", "2d", "0", "-tr", "nnUNetTrainerIACSearch_shipped", "-device", "cpu"]]  # fmt: skip
    for n, cmd in enumerate(steps):
        folder = "nnUNetTrainer_shipped" if n == 1 else "nnUNetTrainerIACSearch_shipped"
        done = list((work / "results").rglob(f"{folder}__*/fold_0/{'checkpoint_final.pth' if n == 1 else 'genotype.json'}"))
        if n and done:
            continue
        step_env = {**env, "nnUNet_n_proc_DA": "1"} if n == 0 else env  # the planner sets torch's threads to it
        with open(work / f"step{n}.log", "w") as log:
            subprocess.run([str(binaries / cmd[0]), *cmd[1:]], env=step_env, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                           check=True)  # fmt: skip
    history = json.loads(next((work / "results").rglob("nnUNetTrainerIACSearch_shipped__*/fold_0/search_history.json")).read_text())
    from iac_components.nnunet.trainers import NNUNET_CHECK_INTERVAL, nnUNetTrainerIACSearch

    decided = history["decided_at"]
    budget = 50
    iterations = 250
    result.write_text(json.dumps({
        "decided": decided is not None, "decided_epoch": decided["epoch"] if decided else None,
        "decided_arch_step": decided["arch_step"] if decided else None, "budget_epochs": budget,
        "arch_steps_per_epoch": iterations, "decided_fraction_of_budget": (decided["epoch"] / budget) if decided else None,
        "ops_alive": [e["ops_alive"] for e in history["epochs"]], "wall_clock_s": history["total_wall_clock_s"],
        "config": {**SEARCH_RECIPE.to_dict(), "interval": NNUNET_CHECK_INTERVAL, "trainer": nnUNetTrainerIACSearch.__name__,
                   "device": "cpu"},
        "note": "nnU-Net's epochs are 250 iterations; the rule checks every 50 arch steps; the baseline is nnU-Net's own "
                "trainer shortened to 20 epochs of 50 iterations",
    }, indent=1))  # fmt: skip


def _history(out: Path, arm: str) -> dict[str, Any]:
    return json.loads((out / f"search_{arm}" / "search_history.json").read_text())


def stage_retrain(out: Path, configs: Path, seed: int) -> None:
    """Retrain and evaluate the live search's cell and the full search's (its genotype at its last epoch)."""
    from iac_components.genotype import derive_from_logits, save_genotypes

    full = _history(out, "full")
    last = [c for e in full["epochs"] for c in e.get("checks", [])][-1]
    full_cell = out / "genotypes" / "full.json"
    full_cell.parent.mkdir(exist_ok=True)
    save_genotypes(full_cell, [derive_from_logits(last["alpha"][0], last["beta"][0])], share_genotype=True, n_nodes=4,
                   full_search_epochs=full["epochs"][-1]["epoch"])  # fmt: skip
    for arm, genotype in (("lth", out / "search_lth" / "genotype.json"), ("full", full_cell)):
        d = out / f"retrain_{arm}"
        if (d / "evaluation" / "iac" / "metrics_per_case.csv").is_file():
            continue
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "baseline" / "baseline.pt", d / "baseline.pt")
        common = {**_common(out, seed), "ckpt_dir": str(d), "output_dir": str(d), "genotype_file": str(genotype),
                  "cell_channels": SEARCH_RECIPE.cell_channels}  # fmt: skip
        t = time.perf_counter()
        run_workflow(configs / "retrain.json", "run", out / "logs" / f"retrain_{arm}.log", {**common, **RETRAIN})
        (d / "retrain_s.txt").write_text(f"{time.perf_counter() - t}\n")
        run_workflow(configs / "evaluate.json", "run", out / "logs" / f"evaluate_{arm}.log",
                     {k: v for k, v in common.items() if k != "batch_size"})  # fmt: skip


def previous_rule():
    """The JSDRule class as it was at :data:`PREVIOUS_RULE_COMMIT` (its module, loaded from git)."""
    import types

    repo = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{PREVIOUS_RULE_COMMIT}:iac_components/search/rule.py"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    module = types.ModuleType("rule_previous")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is built
    exec(compile(source, f"rule.py@{PREVIOUS_RULE_COMMIT}", "exec"), module.__dict__)
    return module


def replay(history: dict[str, Any], rule: Any, replay_fn: Any) -> dict[str, Any]:
    """One rule replayed on a recorded full search: when it would decide (arch step, epoch, fraction of the
    search's budget), ops alive after each check, and whether its first cuts kept the full search's final ops."""
    from iac_components.genotype import Genotype, edge_key

    r = replay_fn(history, rule)
    steps = [(e["epoch"], e["arch_steps"]) for e in history["epochs"]]
    epoch_of = lambda step: next((ep for ep, s in steps if s >= step), None)  # noqa: E731
    final = Genotype.from_dict(history["epochs"][-1]["groups"][0]["genotype"])
    final_ops = {edge_key(i, j): op for i, j, op in final.edges()}
    first: dict[str, bool] = {}
    for c in r["cuts"]:
        if c["kind"] == "edge" and c["where"] not in first and c["where"] in final_ops:
            first[c["where"]] = final_ops[c["where"]] in c["kept"]
    decided = r["decided_step"]
    return {"rule": r["rule"], "decided_arch_step": decided, "decided_epoch": epoch_of(decided) if decided else None,
            "ops_alive_end": r["ops_alive_end"], "cuts": len(r["cuts"]),
            "first_cuts_keep_final_op": (sum(first.values()) / len(first)) if first else None,
            "first_cut_arch_step": min((c["arch_step"] for c in r["cuts"]), default=None)}  # fmt: skip


def stage_report(out: Path, results: Path, commands: list[str]) -> dict[str, Any]:
    """``<results>.json`` / ``.md``: the replays, the live search, the retrained cells, the nnU-Net search."""
    from iac_components.evidence.runner import per_patient_metrics
    from iac_components.search.rule import JSDRule, replay_history
    from iac_components.stats import paired_comparison
    from iac_components.utils import machine_info, write_json_atomic

    raw = results.parent / results.name
    committed = _committed_histories(raw)  # what an earlier report wrote beside the results: re-read when not run here
    full = _history(out, "full") if (out / "search_full").is_dir() else committed["shipped_full_search"]
    old = previous_rule()
    recorded = {"shipped_full_search": full}
    recorded.update({k: v for k, v in sorted(committed.items()) if k.startswith("demo_config_")})
    for extra in sorted((out.parent / "study_shift14").glob("search_full_s*/search_history.json")):
        if not (extra.parent / "genotype.json").is_file():  # still running
            continue
        recorded[f"demo_config_{extra.parent.name}"] = json.loads(extra.read_text())
    shipped = JSDRule()
    replays = {}
    for name, h in recorded.items():
        replays[name] = {
            "arch_steps": h["epochs"][-1]["arch_steps"], "epochs": h["epochs"][-1]["epoch"],
            "shipped_rule": replay(h, shipped, replay_history),
            "previous_rule": replay(h, old.JSDRule(epsilon=0.1, window=32, patience=2, margin=1.0), old.replay_history),
        }  # fmt: skip
    lth = _history(out, "lth") if (out / "search_lth").is_dir() else committed["shipped_live_search"]
    per_epoch = [e["arch_steps"] for e in lth["epochs"]]
    arch_epochs = [b - a for a, b in zip([0] + per_epoch, per_epoch) if b - a > 0]
    live = {
        "decided": lth["decided_at"] is not None, "decided_epoch": lth["decided_at"]["epoch"] if lth["decided_at"] else None,
        "decided_arch_step": lth["decided_at"]["arch_step"] if lth["decided_at"] else None,
        "budget_epochs": SEARCH_RECIPE.epochs, "arch_steps_per_epoch": max(arch_epochs) if arch_epochs else None,
        "config": {**SEARCH_RECIPE.to_dict(), "amp": False, "device": "cpu", "note": "every value of the shipped search.json; "
                   "AMP off because on the CPU it would mean bf16 autocast"},
        "ops_alive": [e["ops_alive"] for e in lth["epochs"]], "wall_clock_s": lth["total_wall_clock_s"],
        "epoch_wall_clock_s": [e["wall_clock_s"] for e in lth["epochs"]],
        "full_search_epochs_run": full["epochs"][-1]["epoch"],
    }  # fmt: skip
    if live["decided_epoch"]:
        live["decided_fraction_of_budget"] = live["decided_epoch"] / SEARCH_RECIPE.epochs
    retrained = {}
    for arm in ("lth", "full"):
        csv = out / f"retrain_{arm}" / "evaluation" / "iac" / "metrics_per_case.csv"
        csv = csv if csv.is_file() else raw / f"retrained_{arm}_metrics_per_case.csv"
        if csv.is_file():
            retrained[arm] = {p: m["dice"] for p, m in per_patient_metrics(csv).items()}
    comparison = paired_comparison(retrained["lth"], retrained["full"]) if len(retrained) == 2 else None
    nnunet = out / "nnunet_result.json"
    report = {
        "live": live, "nnunet": json.loads(nnunet.read_text()) if nnunet.is_file() else _nnunet_unfinished(out), "replays": replays,
        "retrained": {"mean_dice": {k: sum(v.values()) / len(v) for k, v in retrained.items()},
                      "lth_vs_full": comparison, "retrain": RETRAIN},
        "data": {"patients": PATIENTS, **GEOMETRY, "fractions": "the bundle's 35/35/10/20 %"},
        "commands": commands, "commit": _commit(), "machine": machine_info(),
    }  # fmt: skip
    report["raw_files"] = _write_raw(out, results, {**recorded, "shipped_live_search": lth}, retrained)
    write_json_atomic(Path(f"{results}.json"), report, indent=1)
    Path(f"{results}.md").write_text(render(report))
    return report


def _committed_histories(raw: Path) -> dict[str, Any]:
    """The search histories an earlier report wrote beside its results (``<name>_search_history.json.gz``)."""
    import gzip

    found = {}
    for gz in sorted(raw.glob("*_search_history.json.gz")):
        with gzip.open(gz, "rt") as f:
            found[gz.name.removesuffix("_search_history.json.gz")] = json.load(f)
    return found


def _nnunet_unfinished(out: Path) -> dict[str, Any]:
    """The nnU-Net search's entry when it has not reached its decision: the required keys unset, and what its log
    shows (epochs completed; its last line)."""
    from iac_components.nnunet.trainers import NNUNET_CHECK_INTERVAL

    log = out / "nnunet" / "step2.log"
    lines = log.read_text().splitlines() if log.is_file() else []
    return {"decided": None, "decided_epoch": None, "budget_epochs": 50, "arch_steps_per_epoch": 250,
            "config": {**SEARCH_RECIPE.to_dict(), "interval": NNUNET_CHECK_INTERVAL, "device": "cpu"},
            "status": "not run to its decision" if lines else "not run",
            "epochs_completed": sum("search epoch" in ln for ln in lines), "log_last_line": lines[-1] if lines else None}  # fmt: skip


def _write_raw(out: Path, results: Path, recorded: dict[str, Any], retrained: dict[str, Any]) -> str:
    """The files the report is computed from, beside it: every search history (gzipped), the live search's, the
    retrained cells' per-patient metrics, the nnU-Net search's history."""
    import gzip

    raw = results.parent / results.name
    raw.mkdir(parents=True, exist_ok=True)
    histories = dict(recorded)
    nnunet = list((out / "nnunet" / "results").rglob("nnUNetTrainerIACSearch_shipped__*/fold_0/search_history.json"))
    if nnunet:
        histories["nnunet_search"] = json.loads(nnunet[0].read_text())
    committed = _committed_histories(raw)
    for name, h in histories.items():
        path = raw / f"{name}_search_history.json.gz"
        if committed.get(name) == json.loads(json.dumps(h)):
            continue  # the same history: leave the committed file as it is
        with gzip.open(path, "wt") as f:
            json.dump(h, f)
    for arm in retrained:
        csv = out / f"retrain_{arm}" / "evaluation" / "iac" / "metrics_per_case.csv"
        if csv.is_file():  # else the committed copy is what was read
            shutil.copy2(csv, raw / f"retrained_{arm}_metrics_per_case.csv")
    if (out / "genotypes" / "full.json").is_file():
        shutil.copy2(out / "genotypes" / "full.json", raw / "full_search_cell.json")
    if (out / "search_lth" / "genotype.json").is_file():
        shutil.copy2(out / "search_lth" / "genotype.json", raw / "live_search_cell.json")
    repo = Path(__file__).resolve().parents[1]
    return str(raw.resolve().relative_to(repo)) if raw.resolve().is_relative_to(repo) else str(raw)


def _commit() -> str:
    repo = Path(__file__).resolve().parents[1]
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def render(r: dict[str, Any]) -> str:
    m, live = r["machine"], r["live"]
    lines = ["# The search the bundles ship, measured to its decision", ""]
    lines += [f"Command: `{c}`  " for c in r["commands"]]
    lines += [f"Commit: {r['commit']}  ", f"Machine: {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')}, CPU only.",
              "", f"Data: synthetic ACDC, {r['data']['patients']} patients at {r['data']['spatial_size']} pixels, "
              f"{r['data']['spacing']} mm, the bundle's folds: {live['arch_steps_per_epoch']} arch steps per epoch at "
              "batch 16, about real ACDC's at the bundle's batch.", "", "## The live search (search.json as shipped)", ""]  # fmt: skip
    if live["decided"]:
        lines.append(f"Decided by the rule at epoch {live['decided_epoch']} of {live['budget_epochs']} "
                     f"({live['decided_fraction_of_budget']:.3f} of the budget; arch step {live['decided_arch_step']}), "
                     f"{live['wall_clock_s']:.0f} s. Ops alive per epoch: {live['ops_alive']}.")  # fmt: skip
    else:
        lines.append(f"Not decided within the {len(live['ops_alive'])} epochs run. Ops alive: {live['ops_alive']}.")
    ret = r["retrained"]
    if ret.get("lth_vs_full"):
        c = ret["lth_vs_full"]
        lines += ["", f"Retrained ({ret['retrain']['epochs']} epochs) and evaluated on the test fold: LTH's cell "
                      f"{c['mean_a']:.4f}, the full search's cell (its epoch {live['full_search_epochs_run']}) "
                      f"{c['mean_b']:.4f}: {c['mean_diff']:+.4f} (95 % CI {c['ci95'][0]:+.4f}..{c['ci95'][1]:+.4f}, "
                      f"Wilcoxon p = {c['wilcoxon_p']:.2g}, {c['n_patients']} patients; one seed, one cell each)."]  # fmt: skip
    lines += ["", f"The full search of the same seed (observe-only) ran {live['full_search_epochs_run']} of its "
              f"{live['budget_epochs']} epochs (its history is what the replays below read; it was not run to its budget).",
              "", "## Replays on recorded full searches", "",
              "| history | arch steps (epochs) | rule | decided at arch step (epoch) | ops at the end | first cuts keep the final op |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, rep in r["replays"].items():
        for rule in ("previous_rule", "shipped_rule"):
            x = rep[rule]
            dec = f"{x['decided_arch_step']} ({x['decided_epoch']})" if x["decided_arch_step"] else "not decided"
            safe = "-" if x["first_cuts_keep_final_op"] is None else f"{x['first_cuts_keep_final_op']:.2f}"
            lines.append(f"| {name} | {rep['arch_steps']} ({rep['epochs']}) | {rule} | {dec} | {x['ops_alive_end']} | {safe} |")
    if r.get("nnunet"):
        n = r["nnunet"]
        lines += ["", "## nnU-Net v2's search at its defaults", ""]
        if n["decided"] is None:
            lines.append(f"{n['status'].capitalize()}: {n['epochs_completed']} of its {n['budget_epochs']} nnU-Net epochs "
                         f"({n['arch_steps_per_epoch']} iterations each) completed; no decision to report.")  # fmt: skip
        else:
            frac = n.get("decided_fraction_of_budget")
            lines.append(f"Decided: {n['decided']}: at arch step {n.get('decided_arch_step')}, nnU-Net epoch {n['decided_epoch']} "
                         f"of {n['budget_epochs']} ({'-' if frac is None else f'{frac:.2f}'} of the budget; {n['arch_steps_per_epoch']} "
                         f"iterations per epoch, the first 600 weight steps only). Ops alive per epoch: {n.get('ops_alive')}; "
                         f"{n.get('wall_clock_s', 0):.0f} s in all on one thread of a shared CPU. {n.get('note', '')}. Its cell "
                         "was not retrained (no nnU-Net full search to compare it with).")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/runs/shipped_rule")
    ap.add_argument("--stages", default="data,baseline,full")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", default="benchmarks/results/shipped_rule")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out).resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    configs = find_bundle("acdc_iac") / "configs"
    for stage in args.stages.split(","):
        print(f"[shipped_rule] {stage}", flush=True)
        if stage == "data":
            stage_data(out)
        elif stage == "baseline":
            stage_baseline(out, configs, args.seed)
        elif stage in ("full", "lth"):
            stage_search(out, configs, args.seed, stage)
        elif stage == "nnunet":
            stage_nnunet(out, args.seed)
        elif stage == "retrain":
            stage_retrain(out, configs, args.seed)
        elif stage == "report":
            stage_report(out, Path(args.results),
                         [*RUNS_AS_MADE, " ".join(["python", "benchmarks/shipped_rule.py", *(argv or sys.argv[1:])])])
        else:
            sys.exit(f"error: unknown stage {stage!r} (data, baseline, full, lth, nnunet, retrain, report)")


if __name__ == "__main__":
    main()
