"""What the engines, the pruning handler, the data and the evaluation need under ``torchrun``: who writes, one
synchronised architecture, gradients averaged across ranks, and per-patient results gathered once.

Everything here is a no-op in a single process (no process group initialised), so the same code runs with and
without ``torchrun``.

Why the search does not wrap its network in ``DistributedDataParallel``: its two steps update disjoint parameter
sets (α/β, then the cell weights) with ``torch.autograd.grad``, and a cut deletes parameters. DDP would all-reduce
(and zero-fill) the gradients of the set not being stepped, which corrupts the momentum and weight decay of the
other optimiser, would need ``find_unused_parameters`` as requires-grad flips, and would have to be rebuilt after
every cut. Instead :func:`average_gradients` all-reduces exactly the gradients an optimiser is about to step, in
one flat buffer, and the network starts identical on every rank (:func:`broadcast_module`). Training and retraining
use DDP the model-zoo way (``multi_gpu_train.json``); the engines then let DDP's backward do the reduction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "agree",
    "average_gradients",
    "barrier",
    "broadcast_module",
    "broadcast_tensors",
    "destroy_process_group",
    "gather_rows",
    "init_process_group",
    "is_distributed",
    "is_main_process",
    "local_device",
    "rank",
    "shard",
    "unwrap",
    "world_size",
]


def is_distributed() -> bool:
    """A process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0, or a single process: the one that writes files and logs progress."""
    return rank() == 0


def local_device() -> torch.device:
    """This rank's device: ``cuda:<LOCAL_RANK>`` with GPUs (torchrun sets ``LOCAL_RANK``), else the CPU."""
    import os

    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def init_process_group(backend: str | None = None) -> None:
    """Join the ``torchrun`` process group (NCCL with GPUs, gloo on the CPU) unless already in one, and select
    this rank's GPU. The ``multi_gpu_*.json`` overlays call it first in ``initialize``.

    It also makes Ignite build its view of the group now, on every rank: Ignite does that lazily with a collective
    (``new_group``) at its first ``idist.get_rank()``, and a handler built on rank 0 only would otherwise leave
    rank 0 waiting there while the others are in another collective."""
    import ignite.distributed as idist

    cuda = torch.cuda.is_available()
    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if cuda else "gloo"))
    idist.get_rank()
    if cuda:
        torch.cuda.set_device(local_device())


def destroy_process_group() -> None:
    """Leave the process group (the overlays' ``finalize``); nothing when there is none."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DistributedDataParallel`` (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def broadcast_tensors(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s values, in place (one flat buffer per dtype)."""
    if not is_distributed():
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        if t is not None and t.numel():
            by_dtype.setdefault(t.dtype, []).append(t)
    with torch.no_grad():
        for group in by_dtype.values():
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            dist.broadcast(flat, src)
            offset = 0
            for t in group:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Make every parameter and buffer of ``module`` rank ``src``'s: the search starts from one network."""
    broadcast_tensors([*module.parameters(), *module.buffers()], src)


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """All-reduce (mean) the gradients of ``params`` across ranks, in one flat buffer.

    A parameter without a gradient is left without one; every rank must have the same ones (the same network),
    which is checked first with one small all-reduce, so a mismatch fails with a message instead of a hang.

    Raises:
        RuntimeError: the ranks hold gradients for different numbers of parameters.
    """
    if not is_distributed():
        return
    with_grad = [p for p in params if p.grad is not None]
    count = torch.tensor([len(with_grad), -len(with_grad)], dtype=torch.float64, device=_device_of(params))
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    if int(count[0]) != -int(count[1]):
        raise RuntimeError(
            f"rank {rank()}: the ranks step different parameter sets ({int(-count[1])} to {int(count[0])} gradients): "
            "their networks differ (a cut applied on one rank only?)"
        )
    if not with_grad:
        return
    grads = [p.grad for p in with_grad]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def _device_of(params: Sequence[torch.nn.Parameter]) -> torch.device:
    for p in params:
        return p.device
    return torch.device("cpu")


def agree(what: str, value: Any) -> None:
    """Check that every rank holds the same ``value`` (JSON-able), e.g. the cuts of a pruning check.

    Raises:
        RuntimeError: naming ``what`` and the ranks' digests, when they differ.
    """
    if not is_distributed():
        return
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
    digests: list[Any] = [None] * world_size()
    dist.all_gather_object(digests, digest)
    if len(set(digests)) > 1:
        raise RuntimeError(f"the ranks disagree on {what} (digests per rank: {digests}); stopping before they diverge")


def shard(items: Sequence[Any]) -> list[Any]:
    """This rank's share of ``items`` (every ``world_size``-th, from ``rank``): each item on exactly one rank."""
    return list(items[rank() :: world_size()]) if is_distributed() else list(items)


def gather_rows(rows: list[Any], order: Sequence[Any], key: str) -> list[Any]:
    """All ranks' ``rows`` (dicts with ``key``), on every rank, in the order of ``order``.

    Raises:
        RuntimeError: a key of ``order`` is missing, or comes back more than once.
    """
    if not is_distributed():
        return rows
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, rows)
    by_key: dict[Any, Any] = {}
    for part in parts:
        for row in part:
            if row[key] in by_key:
                raise RuntimeError(f"{key} {row[key]!r} was evaluated on more than one rank")
            by_key[row[key]] = row
    missing = [k for k in order if k not in by_key]
    if missing:
        raise RuntimeError(f"no rank evaluated {key} {missing[:5]}")
    return [by_key[k] for k in order]
