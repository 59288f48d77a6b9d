"""Optimiser surgery after the search space shrinks.

Pruning deletes parameters (ops' weights, edges' α) and replaces others by smaller ones (an edge's α over its
kept ops). :func:`sync_optimizer` makes an optimiser hold exactly the live parameters, in the network's own
(canonical) order, carrying the state of kept entries (Adam moments, SGD momentum) over by index. Because the
order is the network's, an optimiser rebuilt on a resumed, re-pruned network lines up with a saved optimiser
state, whatever sequence of pruning events led there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn as nn

__all__ = ["sync_optimizer"]


def sync_optimizer(
    optimizer: torch.optim.Optimizer,
    live_params: Iterable[nn.Parameter],
    remap: Mapping[nn.Parameter, tuple[nn.Parameter, torch.Tensor]] | None = None,
) -> None:
    """Make ``optimizer`` hold the live parameters it owned (or that replace ones it owned), in ``live_params``
    order; drop the state of parameters that are gone.

    Args:
        optimizer: any ``torch.optim`` optimiser.
        live_params: the network's parameters now, in canonical order (e.g. ``network.arch_parameters()``).
        remap: replaced parameter -> (its replacement, indices of the old entries it keeps).
    """
    remap = remap or {}
    owner: dict[int, int] = {}
    for g, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            owner[id(p)] = g
    for old, (new, idx) in remap.items():
        if id(old) not in owner:
            continue
        owner[id(new)] = owner[id(old)]
        state = optimizer.state.pop(old, None)
        if state:
            optimizer.state[new] = {
                k: (v[idx.to(v.device)].clone() if torch.is_tensor(v) and v.shape == old.shape else v)
                for k, v in state.items()
            }
    live = list(live_params)
    live_ids = {id(p) for p in live}
    for g, group in enumerate(optimizer.param_groups):
        group["params"] = [p for p in live if owner.get(id(p)) == g]
    for p in list(optimizer.state.keys()):
        if id(p) not in live_ids:
            del optimizer.state[p]
