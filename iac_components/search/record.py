"""What a search leaves behind, apart from deciding anything: one entry per epoch (α, β, the rule's checks, the
structure, the cells' contribution, time and memory), the history file, the genotype file and the progress line.

:class:`~iac_components.search.pruning.JSDPruningHandler` decides and cuts; it hands each epoch to a
:class:`SearchRecord`, which measures and writes. The history (``search_history.json``, format
``iac-search-history/2``), one entry per epoch: raw α and β, importance (``softmax(β)·softmax(α)``), the paper's raw
product ``α·β``, ``p_e``, ``q_j``, the checks of the epoch (each with the arch step, the arch learning rate, the live
α/β logits and, per edge and node, the rule's verdict: divergence, threshold in force, lead, margin in force, and
what blocked a decision), ops alive, pruning events, the cells' γ and their contribution ``‖γ·cell‖/‖skip‖`` per
level, the epoch's wall-clock and the arch steps so far. :func:`~iac_components.search.rule.replay_history` and
``iac report`` read it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine

from iac_components.cell import SearchCells
from iac_components.distributed import is_main_process, unwrap
from iac_components.genotype import edge_key, save_genotypes
from iac_components.search.rule import CellTracks
from iac_components.utils import write_json_atomic

__all__ = ["HISTORY_FORMAT", "PROGRESS", "SearchRecord", "contribution_text", "measure_cells", "progress_line"]

HISTORY_FORMAT = "iac-search-history/2"

#: One line per search epoch (epoch, ops alive, last loss, epoch time, time left at that pace): a long search
#: is not silent. Propagates to the root logger; ``iac demo`` also shows it on the console.
PROGRESS = logging.getLogger("iac_components.progress")


def engine_device(engine: Engine) -> torch.device:
    return torch.device(getattr(engine.state, "device", None) or "cpu")


def named_floats(names: Sequence[Any], values: torch.Tensor) -> dict[str, float]:
    """``{name: value}`` of a 1-D tensor, in plain floats (JSON and the pure rule take them)."""
    return {str(n): float(v) for n, v in zip(names, values.tolist())}


def progress_line(engine: Engine, entry: Mapping[str, Any], prune: bool) -> str:
    output = getattr(engine.state, "output", None)
    loss = output.get("loss") if isinstance(output, dict) else None
    loss = loss.detach() if hasattr(loss, "detach") else loss
    left = (engine.state.max_epochs - entry["epoch"]) * entry["wall_clock_s"]
    return (
        f"search epoch {entry['epoch']}/{engine.state.max_epochs}: {entry['ops_alive']} ops alive, "
        + (f"loss {float(loss):.4f}, " if loss is not None else "")
        + f"{entry['wall_clock_s']:.0f} s"
        + (" (warm-up)" if entry["warmup"] else "")
        # after the warm-up, pruning only makes epochs cheaper; during it, the arch steps are still to come
        + (f", {'at least' if entry['warmup'] else 'at most'} {left / 60:.1f} min left at this pace" if left > 0 else "")
        + ("" if prune else " (full search)")
    )


def measure_cells(engine: Engine) -> dict[str, Any] | None:
    """γ and the cells' contribution ``‖γ·cell‖/‖skip‖`` per level, on the epoch's last weight batch."""
    network, batch = unwrap(engine.network), getattr(engine.state, "batch", None)
    if not hasattr(network, "cell_contribution") or batch is None:
        return None
    try:
        x = engine.prepare_batch(batch, engine.state.device, engine.non_blocking)[0]
    except Exception:  # noqa: BLE001 - a measurement, never a reason to stop the search
        return None
    return network.cell_contribution(x)


def contribution_text(c: Mapping[str, Any]) -> str:
    return "; ".join(
        f"level {n}: |γ| mean {g:.3g}, ‖γ·cell‖/‖skip‖ {r:.3g}"
        for n, (g, r) in enumerate(zip(c["gamma_mean_abs"], c["ratio"]))
    )


def epoch_entry(engine: Engine, cells: SearchCells, checks: list[dict[str, Any]], tracks: Sequence[CellTracks],
                wall: float, elapsed: float) -> dict[str, Any]:  # fmt: skip
    """The history's entry for the epoch that just ended: per group α, β, importance, α·β, ``p_e``, ``q_j``, the
    divergences of the epoch's checks, the structure and the genotype read from it; the checks and their cuts; the
    cells' contribution; time, arch steps and (on CUDA) the epoch's peak memory."""
    groups = []
    d_edges = [c["d_edge"] for c in checks]
    d_nodes = [c["d_node"] for c in checks]
    for g, arch in enumerate(cells.archs):
        alphas, betas, imp = arch.alpha_dict(), arch.beta_dict(), arch.importance()
        alpha_beta = {}
        for j, inputs in arch.node_inputs.items():
            for n, i in enumerate(inputs):
                key = edge_key(i, j)
                alpha_beta[key] = named_floats(arch.edge_ops[key], alphas[key].float() * float(betas[j][n]))
        groups.append(
            {
                "alpha": {k: named_floats(arch.edge_ops[k], v.float()) for k, v in alphas.items()},
                "beta": {str(j): named_floats(arch.node_inputs[j], v.float()) for j, v in betas.items()},
                "importance": {k: named_floats(arch.edge_ops[k], v) for k, v in imp.items()},
                "alpha_beta": alpha_beta,
                "p": {k: named_floats(arch.edge_ops[k], v) for k, v in arch.edge_probs().items()},
                "q": {str(j): named_floats(arch.node_inputs[j], v) for j, v in arch.node_probs().items()},
                "d_edge": {k: d for de in d_edges for k, d in de[g].items() if k in arch.edge_ops},
                "d_node": {k: d for dn in d_nodes for k, d in dn[g].items()},
                "stable_edge": {k: t.stable for k, t in tracks[g].edge.items() if k in arch.edge_ops},
                "ops_alive": arch.ops_alive(),
                "edges_alive": len(arch.edge_ops),
                "genotype": arch.derive().to_dict(),
            }
        )
    entry = {
        "epoch": engine.state.epoch,
        "iteration": engine.state.iteration,
        "arch_steps": engine.arch_steps,
        # arch steps a grad scaler skipped (fp16 overflow on CUDA): not counted in arch_steps
        "skipped_arch_steps": int(getattr(engine.state, "skipped_arch_steps", 0)),
        "warmup": engine.in_warmup(),
        "wall_clock_s": wall,
        "elapsed_s": elapsed,
        "ops_alive": sum(gr["ops_alive"] for gr in groups),
        "weight_parameters": sum(p.numel() for p in engine.network.weight_parameters()),
        "checks": checks,
        "events": [e for c in checks for e in c["events"]],
        "groups": groups,
        "cells": measure_cells(engine),
    }
    if engine_device(engine).type == "cuda":
        entry["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(engine_device(engine)))
    return entry


class SearchRecord:
    """The epochs, the cuts and the time of one search, and the files they go to (rank 0 writes).

    Args:
        history_path: ``search_history.json``, rewritten atomically after every epoch (None: kept in memory).
        genotype_path: ``genotype.json``, written when the search ends (None: not written).
    """

    def __init__(self, history_path: str | os.PathLike | None = None, genotype_path: str | os.PathLike | None = None):
        self.history_path = None if history_path is None else os.fspath(history_path)
        self.genotype_path = None if genotype_path is None else os.fspath(genotype_path)
        self.epochs: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.elapsed = 0.0  # wall-clock of finished epochs

    def add_epoch(self, entry: dict[str, Any]) -> None:
        self.epochs.append(entry)

    def document(self, method: str, rule: Mapping[str, Any], cells: SearchCells,
                 decided_at: Mapping[str, int] | None) -> dict[str, Any]:  # fmt: skip
        """The whole history: what decided, with which numbers, in which space; when; every epoch and cut."""
        return {
            "format": HISTORY_FORMAT,
            "method": method,
            "rule": dict(rule),
            "search_space": cells.config,
            # before the first cut: the epochs' counts are taken after each epoch's checks
            "ops_alive_start": sum(a.ops_in_space() for a in cells.archs),
            "decided_at": decided_at,
            "total_wall_clock_s": self.elapsed,
            "events": self.events,
            "epochs": self.epochs,
            "final_genotypes": [g.to_dict() for g in cells.genotypes()],
        }

    def write_history(self, document: Mapping[str, Any]) -> None:
        if self.history_path is not None and is_main_process():
            write_json_atomic(self.history_path, document, indent=None)

    def write_genotype(self, cells: SearchCells, search: Mapping[str, Any]) -> None:
        if self.genotype_path is not None and is_main_process():
            save_genotypes(self.genotype_path, cells.genotypes(), cells.share_genotype, n_nodes=cells.config["n_nodes"],
                           ops=cells.config["ops"], search=dict(search))  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "events": self.events, "elapsed": self.elapsed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epochs = list(state["epochs"])
        self.events = list(state["events"])
        self.elapsed = float(state["elapsed"])
