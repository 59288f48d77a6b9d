"""The ``multi_gpu_*.json`` overlays: the model-zoo way to run a bundle's workflow on N GPUs (or N CPU processes)
under ``torchrun``, merged over the workflow's own config::

    torchrun --nproc_per_node=N -m monai.bundle run \\
        --config_file "['configs/train.json','configs/multi_gpu_train.json']"

Every overlay joins the process group in ``initialize`` (NCCL with GPUs, gloo on the CPU; each rank on
``cuda:<LOCAL_RANK>``), shards the loaders with ``DistributedSampler`` (the engines call ``set_epoch`` every epoch),
keeps the console handlers on rank 0 and leaves the group in ``finalize``. Checkpoints are written by rank 0 alone
(Ignite's savers only write there); the rank-aware pieces of :mod:`iac_components` do the rest: rank 0 prepares
the cache while the others wait, the search's pruning handler and the evaluation write from rank 0.

* train / retrain (``multi_gpu_train.json`` for both): the network is wrapped in ``DistributedDataParallel``;
  validation is sharded and its Dice gathered (MONAI's metric handlers do that).
* search: the network is *not* wrapped: the engine averages the gradients of each of its two steps itself, so
  α/β stay identical on every rank and a cut needs no rebuilt wrapper (:mod:`iac_components.distributed` says why).
* evaluate: each rank evaluates its share of the patients; the per-patient rows are gathered and written once.

Learning rates are not scaled with the world size: the effective batch is N times ``batch_size``, and the JSD
rule's thresholds follow the arch learning rate and the steps between checks, not the batch. BatchNorm is per rank
(DDP's default buffer broadcast from rank 0 in training; the search normalises each rank's own batch).

The search's step counts are given for one process and divided by N under ``torchrun`` (``warmup_steps`` and the
rule's ``window``): with N ranks an epoch has N times fewer steps of N times more images, so a warm-up and a window
counted in steps would last N times as many epochs, and the search would decide later in epochs, not sooner in
wall-clock (the demo's search on 2 ranks cut nothing in its 18 epochs). Counted in images, the decision comes after
as many epochs as on one process, each taking about 1/N of the time (docs/method.md, "several ranks").
"""

from __future__ import annotations

from typing import Any

from iac_components.bundles.config_parts import CHECK_OVERRIDES, patch_check
from iac_components.bundles.table import BundleSpec

__all__ = ["MULTI_GPU_WORKFLOWS", "multi_gpu_config"]

#: retrain merges over train.json, so ``multi_gpu_train.json`` serves it too (``['train.json','retrain.json',
#: 'multi_gpu_train.json']``): one file per set of keys
MULTI_GPU_WORKFLOWS = ("train", "search", "evaluate")

_DIST = "iac_components.distributed"
_RANK0_ONLY = "$[h for h in {handlers} if dist.get_rank() == 0 or type(h).__name__ != 'StatsHandler']"


def _sampler(dataset: str, shuffle: bool, even: bool) -> dict[str, Any]:
    return {"_target_": "DistributedSampler", "dataset": dataset, "shuffle": shuffle, "even_divisible": even}


def _sharded(loader: str, dataset: str, shuffle: bool = True, even: bool = True) -> dict[str, Any]:
    return {f"{loader}#sampler": _sampler(dataset, shuffle, even), f"{loader}#shuffle": False}


def multi_gpu_config(spec: BundleSpec, workflow: str) -> dict[str, Any]:
    """The overlay of ``workflow`` (one of :data:`MULTI_GPU_WORKFLOWS`) for bundle ``spec``."""
    common: dict[str, Any] = {
        "device": f"${_DIST}.local_device()",
        "initialize": [
            CHECK_OVERRIDES,
            *patch_check(spec),
            "$import torch.distributed as dist",
            f"$import {_DIST}",
            f"${_DIST}.init_process_group()",
            "$monai.utils.set_determinism(seed=@seed)",
        ],
        "finalize": [f"${_DIST}.destroy_process_group()"],
    }
    if workflow == "evaluate":
        common["initialize"] = common["initialize"][:-1]  # evaluate.json has no seed: nothing random in it
        return common  # evaluate_models shards the patients and gathers the rows itself
    config = dict(common)
    if workflow == "search":
        config.update(_sharded("train#dataloader", "@train#dataset"))
        config.update(_sharded("train#arch_dataloader", "@train#arch_dataset"))
        # the warm-up and the window in images, as on one process (see the module docstring)
        ranks = f"{_DIST}.world_size()"
        config["train#trainer#warmup_steps"] = f"$max(1, round(@warmup_steps / {ranks}))"
        config["train#handlers#0#window"] = f"$max(1, round(@pruning#window / {ranks}))"
        config["train#trainer#train_handlers"] = _RANK0_ONLY.format(handlers="@train#handlers")
        return config
    if workflow != "train":
        raise ValueError(f"no multi-GPU overlay for {workflow!r}; one of {MULTI_GPU_WORKFLOWS}")
    config["network"] = (
        "$torch.nn.parallel.DistributedDataParallel(@network_def.to(@device), "
        "device_ids=[@device] if torch.device(@device).type == 'cuda' else None)"
    )
    config.update(_sharded("train#dataloader", "@train#dataset"))
    config.update(_sharded("validate#dataloader", "@validate#dataset", shuffle=False, even=False))
    config["train#trainer#train_handlers"] = _RANK0_ONLY.format(handlers="@train#handlers")
    config["validate#evaluator#val_handlers"] = _RANK0_ONLY.format(handlers="@validate#handlers")
    return config
