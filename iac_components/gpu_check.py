"""``iac gpu-check``: every CUDA path and every GPU figure of the project in one command, for a short GPU lease.

Each part runs in its own process under a time box (one failure or hang costs that part, not the rest) and writes
``<out>/<part>.json``; ``<out>/summary.json`` lists every part's exit status, seconds and result file. The parts:

* ``search_amp``: the acdc_iac search through ``monai.bundle`` on synthetic data with the bundle's AMP (fp16 and a
  grad scaler, then bf16), to the rule's decision or a small cap: finite, decided or not, arch steps skipped by the
  scaler;
* ``workflows``: retrain, evaluate, export (TorchScript) and inference (model.ts, then the eager model) on the device;
* ``torchrun``: the search through ``multi_gpu_search.json`` under ``torchrun --nproc_per_node 1`` (NCCL on CUDA);
* ``nnunet``: nnU-Net v2's own pipeline with the IAC search and retrain trainers for a few iterations;
* ``throughput``: a search iteration against the straightforward reference supernet, a fixed-cell step against
  the plain one, fp32 and bf16, at the reference configuration (FlexibleUNet-resnet50, batch 32, 256², K 4,
  width 32), each pair in one process (``benchmarks/bench_throughput.py``);
* ``memory``: peak memory of a search iteration per backbone at the bundles' sizes (``bench_peak_memory.py``);
* ``inference``: seconds per volume with and without cells, traced and compiled (``bench_inference.py``).

``--dry_run`` runs the same parts on the CPU at toy sizes (the slow test tier does, so that the command cannot rot).
The time boxes add up to under 8 minutes on a GPU (:data:`PARTS`); ``benchmarks/gpu/README.md`` says how to carry
MONAI and Ignite to a GPU machine that lacks them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["PARTS", "run_gpu_check", "run_part"]

#: Part -> (time box on a GPU in seconds, time box of the CPU dry run). The GPU boxes add up to 465 s.
PARTS: dict[str, tuple[int, int]] = {
    "search_amp": (90, 600),
    "workflows": (60, 600),
    "torchrun": (45, 300),
    "nnunet": (75, 900),
    "throughput": (90, 300),
    "memory": (45, 300),
    "inference": (60, 300),
}
REPO = Path(__file__).resolve().parents[1]


def _sizes(dry: bool) -> dict[str, Any]:
    """The data and run sizes: small on a GPU (seconds per part), toy on the CPU."""
    if dry:
        return {"patients": 6, "size": 40, "slices": (4, 5), "geometry": {"spacing": [2.0, 2.0], "spatial_size": [48, 48]},
                "batch": 4, "train_epochs": 1, "search_epochs": 3, "warmup": 2, "retrain_epochs": 1}  # fmt: skip
    return {"patients": 12, "size": 80, "slices": (6, 9), "geometry": {"spacing": [2.0, 2.0], "spatial_size": [64, 64]},
            "batch": 16, "train_epochs": 3, "search_epochs": 12, "warmup": 20, "retrain_epochs": 2}  # fmt: skip


def _write(out: Path, part: str, result: dict[str, Any]) -> None:
    from iac_components.utils import write_json_atomic

    write_json_atomic(out / f"{part}.json", {"part": part, **result}, indent=1)


def _device(dry: bool) -> str:
    import torch

    if dry:
        return "cpu"
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device (iac gpu-check --dry_run runs the parts on the CPU at toy sizes)")
    return "cuda"


def _acdc(work: Path, dry: bool) -> tuple[Path, dict[str, Any], Path]:
    """Synthetic ACDC, the bundle copied into ``work``, the common overrides."""
    import shutil

    from iac_components.bundles.run import find_bundle
    from iac_components.data import synthesize

    s = _sizes(dry)
    raw = work / "raw"
    if not (raw / "training").is_dir():
        synthesize("acdc", raw, patients=s["patients"], seed=0, size=s["size"], slices=s["slices"], test_fraction=0.0)
    bundle = work / "acdc_iac"
    if not bundle.is_dir():
        shutil.copytree(find_bundle("acdc_iac"), bundle)
    common = {"dataset_dir": str(raw), "bundle_root": str(bundle), "num_workers": 0, "batch_size": s["batch"],
              "device": _device(dry), **s["geometry"]}  # fmt: skip
    return bundle, common, raw


def _baseline(bundle: Path, common: dict[str, Any], dry: bool) -> None:
    from iac_components.bundles.run import run_workflow

    if not (bundle / "models" / "baseline.pt").is_file():
        run_workflow(bundle / "configs" / "train.json", "run", bundle / "train.log",
                     {**common, "epochs": _sizes(dry)["train_epochs"]})  # fmt: skip


def _history_summary(path: Path) -> dict[str, Any]:
    import math

    h = json.loads(path.read_text())
    last = h["epochs"][-1]
    finite = all(math.isfinite(float(v)) for e in h["epochs"] for c in e.get("checks", [])
                 for g in c["alpha"] for edge in g.values() for v in edge.values())  # fmt: skip
    return {"epochs": last["epoch"], "arch_steps": last["arch_steps"], "decided_at": h["decided_at"],
            "ops_alive": [e["ops_alive"] for e in h["epochs"]], "skipped_arch_steps": last.get("skipped_arch_steps"),
            "alpha_finite": finite, "wall_clock_s": h["total_wall_clock_s"]}  # fmt: skip


def part_search_amp(work: Path, dry: bool) -> dict[str, Any]:
    from iac_components.bundles.run import run_workflow
    from iac_components.search.recipe import demo_search

    bundle, common, _ = _acdc(work, dry)
    _baseline(bundle, common, dry)
    s = _sizes(dry)
    demo = demo_search().overrides()
    results = {}
    for dtype in ("float16", "bfloat16") if not dry else ("bfloat16",):  # CPU autocast is bf16 only
        out = work / f"search_{dtype}"
        t = time.perf_counter()
        run_workflow(bundle / "configs" / "search.json", "search", out / "search.log",
                     {**common, **{k: v for k, v in demo.items() if k not in ("epochs", "batch_size")},
                      "epochs": s["search_epochs"], "warmup_steps": s["warmup"], "amp": True, "amp_dtype": dtype,
                      "ckpt_dir": str(bundle / "models"), "output_dir": str(out),
                      "genotype_file": str(out / "genotype.json")})  # fmt: skip
        results[dtype] = {**_history_summary(out / "search_history.json"), "seconds": time.perf_counter() - t}
    return {"device": common["device"], "runs": results}


def part_workflows(work: Path, dry: bool) -> dict[str, Any]:
    import shutil

    import nibabel as nib
    import numpy as np

    from iac_components.bundles.export import export_torchscript
    from iac_components.bundles.run import run_workflow
    from iac_components.evidence.genotypes import random_genotype
    from iac_components.genotype import save_genotypes

    bundle, common, raw = _acdc(work, dry)
    _baseline(bundle, common, dry)
    models = bundle / "models"
    if not (models / "genotype.json").is_file():
        save_genotypes(models / "genotype.json", [random_genotype(0)], share_genotype=True, n_nodes=4)
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Any) -> None:
        t = time.perf_counter()
        fn()
        seconds[name] = time.perf_counter() - t

    timed("retrain", lambda: run_workflow(bundle / "configs" / "retrain.json", "run", work / "retrain.log",
                                          {**common, "epochs": _sizes(dry)["retrain_epochs"], "amp": True}))
    timed("evaluate", lambda: run_workflow(bundle / "configs" / "evaluate.json", "run", work / "evaluate.log",
                                           {k: v for k, v in common.items() if k != "batch_size"}))
    size = common["spatial_size"]
    timed("export", lambda: export_torchscript(str(bundle), str(models), [1, 1, size[0], size[1], 16]))
    volume = sorted((raw / "training").glob("patient*/patient*_frame01.nii.gz"))[0]
    labels = {}
    for mode in ("true", "false"):
        out = work / f"infer_{mode}"
        shutil.rmtree(out, ignore_errors=True)
        timed(f"inference_torchscript_{mode}", lambda: run_workflow(
            bundle / "configs" / "inference.json", "run", work / f"infer_{mode}.log",
            {"bundle_root": str(bundle), "input": str(volume), "output_dir": str(out), "torchscript": mode,
             "device": common["device"]}))  # fmt: skip
        labels[mode] = np.asarray(nib.load(next(out.glob("*.nii.gz"))).dataobj)
    summary = json.loads((bundle / "eval" / "evaluation" / "iac" / "metrics_summary.json").read_text())
    return {"device": common["device"], "seconds": seconds, "test_mean_dice": summary["mean_dice"],
            "torchscript_equals_eager_voxels": float((labels["true"] == labels["false"]).mean())}  # fmt: skip


def part_torchrun(work: Path, dry: bool) -> dict[str, Any]:
    bundle, common, _ = _acdc(work, dry)
    _baseline(bundle, common, dry)
    s = _sizes(dry)
    out = work / "search_torchrun"
    args = {**{k: v for k, v in common.items() if k != "device"}, "epochs": s["search_epochs"], "warmup_steps": s["warmup"],
            "amp": not dry, "ckpt_dir": str(bundle / "models"), "output_dir": str(out),
            "genotype_file": str(out / "genotype.json")}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(_free_port()),
           "-m", "monai.bundle", "run", "search", "--config_file",
           f"['{bundle}/configs/train.json','{bundle}/configs/search.json','{bundle}/configs/multi_gpu_search.json']"]  # fmt: skip
    for k, v in args.items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    backend = "nccl" if not dry else "gloo"
    return {"backend": backend, "seconds": time.perf_counter() - t, **_history_summary(out / "search_history.json")}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Short variants of the nnU-Net trainers (nnU-Net's way: subclasses that change the budget), written where
#: ``nnUNet_extTrainer`` finds them: a baseline of a few iterations, a search of a few hundred, a short retrain.
_NNUNET_TRAINERS = """
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from iac_components.nnunet.trainers import nnUNetTrainerIAC, nnUNetTrainerIACSearch


def _toy_threads(device):
    # nnU-Net's -device cpu gives torch every core; the dry run's tensors are tiny and share the cores with other
    # processes, where spinning OpenMP threads slow it several times over
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)


class nnUNetTrainer_gpucheck(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _toy_threads(device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 2, {iters}, 2


class nnUNetTrainerIACSearch_gpucheck(nnUNetTrainerIACSearch):
    baseline_trainer = "nnUNetTrainer_gpucheck"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _toy_threads(device)
        self.num_epochs, self.num_iterations_per_epoch, self.warmup_iterations = 4, {iters}, {warmup}


class nnUNetTrainerIAC_gpucheck(nnUNetTrainerIAC):
    baseline_trainer = "nnUNetTrainer_gpucheck"
    search_trainer = "nnUNetTrainerIACSearch_gpucheck"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _toy_threads(device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 2, {iters}, 2
"""


def part_nnunet(work: Path, dry: bool) -> dict[str, Any]:
    """nnU-Net v2's own entry points (plan, train) with the IAC search and retrain trainers, a few iterations."""
    from iac_components.data import synthesize
    from iac_components.nnunet import trainers_dir

    raw_root = work / "nnUNet_raw"
    if not raw_root.is_dir():
        synthesize("nnunet", raw_root, patients=6, seed=0, size=40 if dry else 64, slices=(5, 6), dataset_id=501)
    extra = work / "trainers"
    extra.mkdir(exist_ok=True)
    (extra / "gpucheck_trainers.py").write_text(_NNUNET_TRAINERS.format(iters=4 if dry else 25, warmup=2 if dry else 10))
    env = {**os.environ, "nnUNet_raw": str(raw_root), "nnUNet_preprocessed": str(work / "nnUNet_preprocessed"),
           "nnUNet_results": str(work / "nnUNet_results"), "nnUNet_extTrainer": os.pathsep.join([trainers_dir(), str(extra)]),
           "nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "nnUNet_compile": "false", "OMP_NUM_THREADS": "1"}  # fmt: skip
    device = "cpu" if dry else "cuda"
    binaries = Path(sys.executable).parent
    steps = [
        ["nnUNetv2_plan_and_preprocess", "-d", "501", "-c", "2d", "-np", "1", "--verify_dataset_integrity"],
        ["nnUNetv2_train", "501", "2d", "0", "-tr", "nnUNetTrainer_gpucheck", "-device", device],
        ["nnUNetv2_train", "501", "2d", "0", "-tr", "nnUNetTrainerIACSearch_gpucheck", "-device", device],
        ["nnUNetv2_train", "501", "2d", "0", "-tr", "nnUNetTrainerIAC_gpucheck", "-device", device],
    ]
    seconds = {}
    for cmd in steps:
        t = time.perf_counter()
        # the planner sets torch's threads to nnUNet_n_proc_DA: 0 (no augmentation workers) would be an error there
        step_env = {**env, "nnUNet_n_proc_DA": "1"} if cmd[0] == "nnUNetv2_plan_and_preprocess" else env
        proc = subprocess.run([str(binaries / cmd[0]), *cmd[1:]], capture_output=True, text=True, env=step_env, cwd=work)
        seconds[cmd[0] + (" " + cmd[5] if cmd[0] == "nnUNetv2_train" else "")] = round(time.perf_counter() - t, 1)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}")
    search = next((work / "nnUNet_results").rglob("nnUNetTrainerIACSearch_gpucheck__*/fold_0/search_history.json"))
    return {"device": device, "seconds": seconds, "search": _history_summary(search)}


def _script(name: str, args: list[str], work: Path) -> dict[str, Any]:
    out = work / name
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *args, "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"benchmarks/{name}.py exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return json.loads(Path(f"{out}.json").read_text())


def part_throughput(work: Path, dry: bool) -> dict[str, Any]:
    # batch 2: a ResNet encoder brings a 32-pixel image to 1x1, where batch norm needs more than one value
    size = ["--batch", "2", "--size", "32", "--steps", "1"] if dry else ["--batch", "32", "--size", "256", "--steps", "3"]
    device = "cpu" if dry else "cuda"
    return {
        "search_vs_reference": _script("bench_throughput", ["--device", device, *size, "--dtypes", "fp32,bf16",
                                                            "--arms", "reference,search"], work),
        "fixed_vs_plain": _script("bench_throughput", ["--device", device, *size, "--dtypes", "fp32,bf16",
                                                       "--arms", "plain,fixed"], work),
    }  # fmt: skip


def part_memory(work: Path, dry: bool) -> dict[str, Any]:
    args = ["--backbones", "unet", "resnet50", "--batch", "1", "--size", "32", "--device", "cpu"] if dry else [
        "--device", "cuda", "--cap_gb", "80"]  # fmt: skip
    return _script("bench_peak_memory", args, work)


def part_inference(work: Path, dry: bool) -> dict[str, Any]:
    args = ["--cases", "acdc_like", "--backbones", "unet", "--windows", "16", "--rounds", "1"]
    args += ["--size", "64", "--slices", "4", "--device", "cpu"] if dry else ["--compile", "--device", "cuda",
                                                                              "--backbones", "unet,resnet50"]  # fmt: skip
    return _script("bench_inference", args, work)


def run_part(part: str, out: str | os.PathLike, dry_run: bool = False) -> None:
    """One part in this process: its result (or its error, in one line) in ``<out>/<part>.json``."""
    out = Path(out).resolve()
    work = out / "work" / ("shared" if part in ("search_amp", "workflows", "torchrun") else part)
    work.mkdir(parents=True, exist_ok=True)
    fn = globals()[f"part_{part}"]
    t = time.perf_counter()
    try:
        result = fn(work, bool(dry_run))
        _write(out, part, {"ok": True, "seconds": time.perf_counter() - t, "dry_run": bool(dry_run), "result": result})
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the part's failure is its result; the other parts go on
        message = str(e.code if isinstance(e, SystemExit) else e).strip()
        _write(out, part, {"ok": False, "seconds": time.perf_counter() - t, "dry_run": bool(dry_run),
                           "error": f"{type(e).__name__}: {message.splitlines()[0] if message else ''}"})
        raise SystemExit(1) from None


def run_gpu_check(out: str | os.PathLike, dry_run: bool = False, parts: str | None = None) -> dict[str, Any]:
    """Every part (or the comma-separated ``parts``) in its own process under its time box; ``summary.json``."""
    from iac_components.utils import machine_info, write_json_atomic

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(parts, str):
        parts = parts.split(",")
    names = [str(p).strip() for p in (parts or PARTS) if str(p).strip()]  # fire hands "a,b" over as a tuple
    unknown = [p for p in names if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; the parts are {', '.join(PARTS)}")
    if not dry_run:
        _device(False)
    summary: dict[str, Any] = {"machine": machine_info(), "dry_run": bool(dry_run), "parts": {}}
    for name in names:
        box = PARTS[name][1 if dry_run else 0]
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "iac_components.gpu_check", name, str(out)] + (["--dry_run"] if dry_run else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=box)
            rc, tail = proc.returncode, (err or "")[-2000:]
        except subprocess.TimeoutExpired:
            # the part's whole process group: torchrun's workers, nnU-Net's and the benchmarks' processes too
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            rc, tail = "timeout", (err or "")[-2000:]
            if not (out / f"{name}.json").is_file():
                _write(out, name, {"ok": False, "seconds": box, "error": f"over its time box of {box} s"})
        summary["parts"][name] = {"rc": rc, "seconds": round(time.perf_counter() - t, 1), "time_box_s": box,
                                  "result_file": f"{name}.json", "stderr_tail": tail if rc != 0 else ""}  # fmt: skip
        print(f"[gpu-check] {name}: rc {rc}, {summary['parts'][name]['seconds']} s (box {box} s)", flush=True)
        write_json_atomic(out / "summary.json", summary, indent=1)
    return summary


if __name__ == "__main__":
    dry = "--dry_run" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--dry_run"]
    run_part(args[0], args[1], dry)
