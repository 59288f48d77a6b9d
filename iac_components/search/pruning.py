"""IAC-LTH: Jensen-Shannon-divergence progressive pruning of the IAC search, as an Ignite handler.

The observation behind IAC-LTH (Benedykciuk et al. 2026): the ops that end up in the final cell emerge among
the strongest early and their architecture parameters stabilise long before the end of a 200-epoch search.
:class:`JSDPruningHandler` watches, per edge, the distribution ``p_e = softmax(α_e)`` over the edge's live ops
and, per node, ``q_j = softmax(β_j)`` over its live inputs, and prunes what has settled.

The rule (DESIGN.md; every number an argument):

* A check runs every ``interval`` architecture steps, counted from the first architecture step (warm-up epochs
  never count: α does not move then).
* ``d_e = JSD(p_e(t) ‖ p_e(t - window))`` in bits (0..1), over the ops both distributions hold, renormalised.
* Stable is not enough: a near-uniform α that barely moves is stable but undecided. An edge prunes only when,
  for ``patience`` consecutive checks, ``d_e < epsilon`` with the same ops on top (the ops it would keep), AND
  those ops lead the ones it would drop by at least ``margin`` in probability (lowest kept minus highest
  dropped). Requiring the same leaders is our addition: when α drifts as a random walk (little signal), JSD is
  small at every check while the leaders keep swapping, and that is not a decision. It then keeps its best ops down to the next
  size of ``keep_schedule`` (e.g. 8 -> 4 -> 2 -> 1) and its counter resets.
* A node with more than two live inputs does the same with ``q_j``; when stable and decided it keeps its top-2
  inputs, scored by ``q_j(i) × max_o p_(i,j)(o)`` (normalised over the node's inputs), and the other edges go.
* Pruned ops and edges are deleted from the network (weights freed, no compute) and their parameters leave the
  optimisers. When every node has two inputs and every edge one op, the handler writes the genotype and
  terminates the engine.

With ``prune=False`` (observe-only) it records the same history for a full-length search and prunes nothing.

History (``search_history.json``), one entry per epoch: raw α and β, importance (``softmax(β)·softmax(α)``), the
paper's raw product ``α·β``, ``p_e``, ``q_j``, the latest ``d`` per edge and node, the checks of the epoch, ops
alive, pruning events, the epoch's wall-clock and the arch steps so far.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events

from iac_components.cell import CellArchitecture, SearchCells
from iac_components.genotype import edge_key, parse_edge_key, save_genotypes
from iac_components.search.engine import SearchEvents
from iac_components.search.optim import sync_optimizer
from iac_components.utils import as_bool, write_json_atomic

__all__ = ["HISTORY_FORMAT", "JSDPruningHandler", "jsd", "next_keep_size"]

HISTORY_FORMAT = "iac-search-history/1"


def jsd(p: Mapping[str, float] | Sequence[float], q: Mapping[str, float] | Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits (0 for identical, 1 for disjoint distributions).

    Mappings (op -> probability) are compared on the keys both hold, each renormalised over them; sequences
    must have the same length.
    """
    if isinstance(p, Mapping) and isinstance(q, Mapping):
        keys = [k for k in p if k in q]
        p, q = [p[k] for k in keys], [q[k] for k in keys]
    pt = torch.as_tensor(p, dtype=torch.float64)
    qt = torch.as_tensor(q, dtype=torch.float64)
    if pt.shape != qt.shape:
        raise ValueError(f"distributions of different lengths: {tuple(pt.shape)} vs {tuple(qt.shape)}")
    if pt.numel() == 0 or pt.sum() <= 0 or qt.sum() <= 0:
        return 0.0
    pt, qt = pt / pt.sum(), qt / qt.sum()
    m = 0.5 * (pt + qt)
    kl_pm = torch.sum(torch.xlogy(pt, pt) - torch.xlogy(pt, m))
    kl_qm = torch.sum(torch.xlogy(qt, qt) - torch.xlogy(qt, m))
    return float(max(0.0, 0.5 * (kl_pm + kl_qm) / math.log(2.0)))


def next_keep_size(n: int, keep_schedule: Sequence[int]) -> int | None:
    """The largest size of ``keep_schedule`` below ``n`` (None when there is none)."""
    smaller = [k for k in keep_schedule if k < n]
    return max(smaller) if smaller else None


def _device(engine: Engine) -> torch.device:
    return torch.device(getattr(engine.state, "device", None) or "cpu")


def _as_dict(names: Sequence[Any], values: torch.Tensor) -> dict[str, float]:
    return {str(n): float(v) for n, v in zip(names, values.tolist())}


class _Tracker:
    """Stability bookkeeping of one edge or node: the last ``window + 1`` distributions, the set it would keep,
    and how many consecutive checks it has been stable (JSD below ε with the same set on top)."""

    def __init__(self) -> None:
        self.past: list[dict[str, float]] = []
        self.stable = 0
        self.d: float | None = None
        self.top: list[str] | None = None

    def update(self, dist: dict[str, float], top: list[str], window: int, epsilon: float) -> float | None:
        self.past.append(dist)
        del self.past[: -(window + 1)]
        self.d = jsd(self.past[-1], self.past[0]) if len(self.past) > window else None
        if self.d is None or self.d >= epsilon:
            self.stable = 0
        else:
            # a distribution that barely moves while its leaders swap is not settled
            self.stable = self.stable + 1 if top == self.top else 1
        self.top = list(top)
        return self.d

    def reset(self) -> None:
        self.past, self.stable, self.top = [], 0, None

    def state_dict(self) -> dict[str, Any]:
        return {"past": self.past, "stable": self.stable, "d": self.d, "top": self.top}

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        self.past, self.stable, self.d = [dict(x) for x in s["past"]], int(s["stable"]), s["d"]
        self.top = s.get("top")


class JSDPruningHandler:
    """Progressive pruning of the IAC search by the JSD stability rule (IAC-LTH).

    Attach it to an :class:`~iac_components.search.engine.IACSearchTrainer` whose network has
    :class:`~iac_components.cell.SearchCells` (``network.cells``). List it before the ``CheckpointSaver`` in the
    trainer's handlers so that a checkpoint holds the epoch's pruning.

    Args:
        epsilon: JSD threshold in bits below which a check counts as stable.
        window: compare ``p(t)`` with ``p(t - window)`` (in checks).
        patience: consecutive stable checks needed before pruning.
        margin: lead in probability that the kept ops (inputs) must have over the dropped ones.
        keep_schedule: op counts an edge steps down through (e.g. ``(4, 2, 1)`` from 8 ops).
        interval: architecture steps between checks (None: one check per epoch). Counting in arch steps keeps
            ε meaningful across dataset sizes.
        prune: False for observe-only (a full search: history, no pruning, no early stop).
        prune_nodes: also decide nodes' inputs early.
        genotype_path: where the genotype is written (when decided, or when the run ends).
        history_path: where the history is written (every epoch, atomically).
        terminate: stop the engine when the cell is fully decided.

    The defaults were calibrated on synthetic ACDC (``iac benchmark``; ``benchmarks/results/lth_vs_full.md``
    records the sweep and the runs). The thresholds depend on how fast α moves (the arch learning rate):
    recalibrate with ``iac benchmark`` on your own data.
    """

    def __init__(
        self,
        epsilon: float = 1e-3,
        window: int = 1,
        patience: int = 2,
        margin: float = 0.001,
        keep_schedule: Sequence[int] = (4, 2, 1),
        interval: int | None = 4,
        prune: bool | str = True,
        prune_nodes: bool | str = True,
        genotype_path: str | os.PathLike | None = None,
        history_path: str | os.PathLike | None = None,
        terminate: bool | str = True,
    ) -> None:
        if epsilon <= 0 or window < 1 or patience < 1 or margin < 0:
            raise ValueError(
                f"need epsilon > 0, window >= 1, patience >= 1, margin >= 0; got {epsilon}, {window}, {patience}, {margin}"
            )
        schedule = sorted({int(k) for k in keep_schedule}, reverse=True)
        if not schedule or schedule[-1] != 1:
            raise ValueError(f"keep_schedule must end at 1 (one op per edge), got {list(keep_schedule)}")
        self.epsilon = float(epsilon)
        self.window = int(window)
        self.patience = int(patience)
        self.margin = float(margin)
        self.keep_schedule = schedule
        self.interval = None if interval is None else int(interval)
        self.prune = as_bool(prune)
        self.prune_nodes = as_bool(prune_nodes)
        self.terminate = as_bool(terminate)
        self.genotype_path = None if genotype_path is None else os.fspath(genotype_path)
        self.history_path = None if history_path is None else os.fspath(history_path)
        self._engine: Engine | None = None
        self._edges: list[dict[str, _Tracker]] = []
        self._nodes: list[dict[int, _Tracker]] = []
        self.epochs: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._checks: list[dict[str, Any]] = []  # checks of the running epoch
        self._elapsed = 0.0  # wall-clock of finished epochs
        self._epoch_start: float | None = None
        self.decided_at: dict[str, int] | None = None

    # --- wiring ---------------------------------------------------------------------------------------------
    @property
    def cells(self) -> SearchCells:
        if self._engine is None:
            raise RuntimeError("JSDPruningHandler is not attached to a search engine yet")
        cells = getattr(self._engine.network, "cells", None)
        if not isinstance(cells, SearchCells):
            raise TypeError(f"the engine's network has no SearchCells (got {type(cells).__name__})")
        return cells

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        cells = self.cells
        self._edges = [{k: _Tracker() for k in a.edge_ops} for a in cells.archs]
        self._nodes = [{j: _Tracker() for j in a.node_inputs} for a in cells.archs]
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(SearchEvents.ARCH_STEP_COMPLETED, self._arch_step_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _interval(self, engine: Engine) -> int:
        return self.interval or int(engine.state.epoch_length)

    # --- events ---------------------------------------------------------------------------------------------
    def _epoch_started(self, engine: Engine) -> None:
        self._epoch_start = time.perf_counter()
        self._checks = []
        if _device(engine).type == "cuda":
            torch.cuda.reset_peak_memory_stats(_device(engine))

    def _arch_step_completed(self, engine: Engine) -> None:
        if engine.arch_steps % self._interval(engine) == 0:
            self(engine)

    def __call__(self, engine: Engine) -> None:
        """Run one check: measure every undecided edge and node, prune what the rule allows."""
        cells = self.cells
        check: dict[str, Any] = {
            "arch_step": engine.arch_steps,
            "p": [{k: _as_dict(a.edge_ops[k], v) for k, v in a.edge_probs().items()} for a in cells.archs],
            "q": [{str(j): _as_dict(a.node_inputs[j], v) for j, v in a.node_probs().items()} for a in cells.archs],
            "d_edge": [],
            "d_node": [],
            "events": [],
        }
        for g, arch in enumerate(cells.archs):
            check["d_node"].append(self._check_nodes(engine, g, arch, check["events"]))
            check["d_edge"].append(self._check_edges(engine, g, arch, check["events"]))
        self._checks.append(check)
        self.events.extend(check["events"])
        if self.prune and cells.is_decided() and self.decided_at is None:
            self.decided_at = {"epoch": engine.state.epoch, "arch_step": engine.arch_steps}
            if self.terminate:
                engine.terminate()

    def _check_edges(self, engine: Engine, g: int, arch: CellArchitecture, events: list) -> dict[str, float | None]:
        ds: dict[str, float | None] = {}
        for key, p in arch.edge_probs().items():
            ops = arch.edge_ops[key]
            if len(ops) == 1:
                continue
            tracker = self._edges[g][key]
            k = next_keep_size(len(ops), self.keep_schedule)
            # rank the ops; the last op standing is never `none` (a cell edge must compute something)
            order = sorted(range(len(ops)), key=lambda n: ((k == 1 and ops[n] == "none"), -float(p[n])))
            keep = [ops[n] for n in sorted(order[:k])] if k is not None else list(ops)
            ds[key] = tracker.update(_as_dict(ops, p), keep, self.window, self.epsilon)
            if not self.prune or k is None or tracker.stable < self.patience:
                continue
            lead = float(p[order[k - 1]] - p[order[k]])
            if (k == 1 and ops[order[0]] == "none") or lead < self.margin:
                continue
            event = self._event(engine, g, "edge", key, keep, [o for o in ops if o not in keep], lead, ds[key])
            event["p"] = _as_dict(ops, p)
            self._apply(engine, self.cells.prune_edge(g, *parse_edge_key(key), keep))
            tracker.reset()
            events.append(event)
        return ds

    def _check_nodes(self, engine: Engine, g: int, arch: CellArchitecture, events: list) -> dict[str, float | None]:
        ds: dict[str, float | None] = {}
        probs = arch.edge_probs()
        for j, q in arch.node_probs().items():
            inputs = arch.node_inputs[j]
            if len(inputs) <= 2:
                continue
            tracker = self._nodes[g][j]
            best = []
            for n, i in enumerate(inputs):
                key, ops = edge_key(i, j), arch.edge_ops[edge_key(i, j)]
                p = [float(v) for o, v in zip(ops, probs[key]) if o != "none"] or [0.0]
                best.append(float(q[n]) * max(p))
            total = sum(best) or 1.0
            score = [b / total for b in best]
            order = sorted(range(len(inputs)), key=lambda n: -score[n])
            keep = sorted(inputs[n] for n in order[:2])
            ds[str(j)] = tracker.update(_as_dict(inputs, q), [str(i) for i in keep], self.window, self.epsilon)
            if not (self.prune and self.prune_nodes) or tracker.stable < self.patience:
                continue
            lead = score[order[1]] - score[order[2]]
            if lead < self.margin:
                continue
            dropped = [i for i in inputs if i not in keep]
            event = self._event(engine, g, "node", str(j), keep, dropped, lead, ds[str(j)])
            event["q"] = _as_dict(inputs, q)
            self._apply(engine, self.cells.prune_node(g, j, keep))
            for i in dropped:
                self._edges[g].pop(edge_key(i, j), None)
            tracker.reset()
            events.append(event)
        return ds

    def _event(self, engine: Engine, g: int, kind: str, where: str, keep: list, dropped: list, lead: float, d: Any) -> dict:
        return {
            "epoch": engine.state.epoch,
            "arch_step": engine.arch_steps,
            "group": g,
            "kind": kind,
            "where": where,
            "kept": keep,
            "dropped": dropped,
            "lead": lead,
            "d": d,
        }

    def _apply(self, engine: Engine, remap: Mapping) -> None:
        """Take what was deleted out of both optimisers (and carry the kept α/β state over)."""
        net = engine.network
        sync_optimizer(engine.arch_optimizer, net.arch_parameters(), remap)
        sync_optimizer(engine.optimizer, net.weight_parameters())

    def _epoch_completed(self, engine: Engine) -> None:
        wall = time.perf_counter() - (self._epoch_start or time.perf_counter())
        self._elapsed += wall
        self.epochs.append(self._snapshot(engine, wall))
        self._write_history()

    def _completed(self, engine: Engine) -> None:
        if not self.epochs or self.epochs[-1]["epoch"] != engine.state.epoch:
            # terminated inside an epoch (decided): Ignite skips EPOCH_COMPLETED, but the partial epoch counts
            self._epoch_completed(engine)
            self.epochs[-1]["partial"] = True
        self._write_history()
        if self.genotype_path is not None:
            cells = self.cells
            save_genotypes(
                self.genotype_path,
                cells.genotypes(),
                cells.share_genotype,
                n_nodes=cells.config["n_nodes"],
                ops=cells.config["ops"],
                search={
                    "method": "IAC-LTH (JSD pruning)" if self.prune else "full search (observe-only)",
                    "decided_by_pruning": self.decided_at is not None,
                    "epochs": engine.state.epoch,
                    "arch_steps": engine.arch_steps,
                    "search_wall_clock_s": self._elapsed,
                    "cell_config": cells.config,
                },
            )

    # --- history --------------------------------------------------------------------------------------------
    def _snapshot(self, engine: Engine, wall: float) -> dict[str, Any]:
        groups = []
        for g, arch in enumerate(self.cells.archs):
            alphas, betas, imp = arch.alpha_dict(), arch.beta_dict(), arch.importance()
            alpha_beta = {}
            for j, inputs in arch.node_inputs.items():
                for n, i in enumerate(inputs):
                    key = edge_key(i, j)
                    alpha_beta[key] = _as_dict(arch.edge_ops[key], alphas[key].float() * float(betas[j][n]))
            groups.append(
                {
                    "alpha": {k: _as_dict(arch.edge_ops[k], v.float()) for k, v in alphas.items()},
                    "beta": {str(j): _as_dict(arch.node_inputs[j], v.float()) for j, v in betas.items()},
                    "importance": {k: _as_dict(arch.edge_ops[k], v) for k, v in imp.items()},
                    "alpha_beta": alpha_beta,
                    "p": {k: _as_dict(arch.edge_ops[k], v) for k, v in arch.edge_probs().items()},
                    "q": {str(j): _as_dict(arch.node_inputs[j], v) for j, v in arch.node_probs().items()},
                    "d_edge": {k: t.d for k, t in self._edges[g].items() if k in arch.edge_ops},
                    "d_node": {str(j): t.d for j, t in self._nodes[g].items()},
                    "stable_edge": {k: t.stable for k, t in self._edges[g].items() if k in arch.edge_ops},
                    "ops_alive": arch.ops_alive(),
                    "edges_alive": len(arch.edge_ops),
                    "genotype": arch.derive().to_dict(),
                }
            )
        entry = {
            "epoch": engine.state.epoch,
            "iteration": engine.state.iteration,
            "arch_steps": engine.arch_steps,
            "warmup": engine.in_warmup(),
            "wall_clock_s": wall,
            "elapsed_s": self._elapsed,
            "ops_alive": sum(gr["ops_alive"] for gr in groups),
            "weight_parameters": sum(p.numel() for p in engine.network.weight_parameters()),
            "checks": self._checks,
            "events": [e for c in self._checks for e in c["events"]],
            "groups": groups,
        }
        if _device(engine).type == "cuda":
            entry["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(_device(engine)))
        return entry

    def history(self) -> dict[str, Any]:
        cells = self.cells
        return {
            "format": HISTORY_FORMAT,
            "method": "IAC-LTH (JSD pruning)" if self.prune else "full search (observe-only)",
            "rule": {
                "epsilon": self.epsilon,
                "window": self.window,
                "patience": self.patience,
                "margin": self.margin,
                "keep_schedule": self.keep_schedule,
                "interval": self.interval,
                "prune": self.prune,
                "prune_nodes": self.prune_nodes,
            },
            "search_space": cells.config,
            "decided_at": self.decided_at,
            "total_wall_clock_s": self._elapsed,
            "events": self.events,
            "epochs": self.epochs,
            "final_genotypes": [g.to_dict() for g in cells.genotypes()],
        }

    def _write_history(self) -> None:
        if self.history_path is not None:
            write_json_atomic(self.history_path, self.history(), indent=None)

    # --- checkpointing --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the pruned structure first, then the rule's counters and the history.
        Plain JSON-like data, so it loads with ``torch.load(weights_only=True)``."""
        return {
            "structure": self.cells.structure(),
            "edges": [{k: t.state_dict() for k, t in e.items()} for e in self._edges],
            "nodes": [{str(j): t.state_dict() for j, t in n.items()} for n in self._nodes],
            "epochs": self.epochs,
            "events": self.events,
            "elapsed": self._elapsed,
            "decided_at": self.decided_at,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Re-prune the (fresh) network to the saved structure and rebuild the optimisers' parameter groups, so
        that the network's and optimisers' saved states load after this one (list this handler first in the
        checkpoint's ``load_dict``).

        Raises:
            ValueError: one line, when the checkpoint comes from another search space.
        """
        engine = self._engine
        if engine is None:
            raise RuntimeError("attach JSDPruningHandler to the search engine before loading its state")
        remap = self.cells.apply_structure(state["structure"])
        self._apply(engine, remap)
        self._edges = [{k: _Tracker() for k in a.edge_ops} for a in self.cells.archs]
        self._nodes = [{j: _Tracker() for j in a.node_inputs} for a in self.cells.archs]
        for g, saved in enumerate(state["edges"]):
            for k, s in saved.items():
                if k in self._edges[g]:
                    self._edges[g][k].load_state_dict(s)
        for g, saved in enumerate(state["nodes"]):
            for j, s in saved.items():
                if int(j) in self._nodes[g]:
                    self._nodes[g][int(j)].load_state_dict(s)
        self.epochs = list(state["epochs"])
        self.events = list(state["events"])
        self._elapsed = float(state["elapsed"])
        self.decided_at = state["decided_at"]
